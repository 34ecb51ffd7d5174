import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { exportJWK, exportPKCS8, generateKeyPair, importPKCS8, type JWK } from 'jose';
import { IsNull, type DataSource } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { SigningKeyEntity } from '../db/index.js';

const IV_BYTES = 12;
const TAG_BYTES = 16;

/** AES-256-GCM with the master key; output is iv ‖ tag ‖ ciphertext. `purpose` is bound as associated data. */
export function sealWithMasterKey(masterKey: Buffer, plaintext: Buffer, purpose: string): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', masterKey, iv);
  cipher.setAAD(Buffer.from(purpose));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), ciphertext]);
}

/** Inverse of sealWithMasterKey; throws when the key is wrong or the data was altered. */
export function openWithMasterKey(masterKey: Buffer, sealed: Buffer, purpose: string): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', masterKey, sealed.subarray(0, IV_BYTES), {
    authTagLength: TAG_BYTES,
  });
  decipher.setAAD(Buffer.from(purpose));
  decipher.setAuthTag(sealed.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  return Buffer.concat([decipher.update(sealed.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
}

export interface LoadedSigningKey {
  kid: string;
  alg: string;
  privateKey: Awaited<ReturnType<typeof importPKCS8>>;
}

/** A key as unsealed from the table: its private half as PKCS#8 PEM, for libraries that cannot take a CryptoKey. */
export interface UnsealedSigningKey {
  kid: string;
  alg: string;
  pkcs8: string;
}

/** What a key signs: `jwt` access tokens, `audit` checkpoints, `ssh` user certificates (the SSH CA). */
export type SigningKeyPurpose = 'jwt' | 'audit' | 'ssh';

const ALGORITHM_OF: Record<SigningKeyPurpose, string> = { jwt: 'ES256', audit: 'EdDSA', ssh: 'EdDSA' };

/** The broker's signing keys, generated on first use and kept encrypted at rest in PostgreSQL. */
export class SigningKeyStore {
  private readonly current = new Map<string, Promise<unknown>>();

  constructor(
    private readonly dataSource: DataSource,
    private readonly masterKey: Buffer,
  ) {}

  /** The key that signs now for a purpose (`jwt` or `audit`), created on first call. */
  currentKey(purpose: 'jwt' | 'audit'): Promise<LoadedSigningKey> {
    return this.cached(`imported:${purpose}`, async () => {
      const key = await this.loadOrCreate(purpose);
      return { kid: key.kid, alg: key.alg, privateKey: await importPKCS8(key.pkcs8, key.alg) };
    });
  }

  /** The SSH user CA's current Ed25519 key as PKCS#8 (sshpk signs with it), created on first call. */
  currentSshCaKey(): Promise<UnsealedSigningKey> {
    return this.cached('unsealed:ssh', () => this.loadOrCreate('ssh'));
  }

  /** Public JWKs of every key of a purpose that may still verify something: current and retired ones. */
  async publicJwks(purpose: SigningKeyPurpose): Promise<JWK[]> {
    if (purpose === 'ssh') await this.currentSshCaKey();
    else await this.currentKey(purpose);
    const keys = await this.dataSource
      .getRepository(SigningKeyEntity)
      .find({ where: { purpose }, order: { createdAt: 'DESC' } });
    return keys.map((key) => key.publicJwk as JWK);
  }

  /** One load per process and cache key; a failed load is forgotten so the next call retries. */
  private cached<T>(cacheKey: string, load: () => Promise<T>): Promise<T> {
    let key = this.current.get(cacheKey) as Promise<T> | undefined;
    if (!key) {
      key = load();
      key.catch(() => this.current.delete(cacheKey));
      this.current.set(cacheKey, key);
    }
    return key;
  }

  private async loadOrCreate(purpose: SigningKeyPurpose): Promise<UnsealedSigningKey> {
    const repository = this.dataSource.getRepository(SigningKeyEntity);
    const existing = await repository.findOne({ where: { purpose, retiredAt: IsNull() } });
    if (existing) return this.unseal(existing);
    const alg = ALGORITHM_OF[purpose];
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
    const kid = uuidv7();
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
    const pkcs8 = await exportPKCS8(privateKey);
    // Two processes booting together may both generate: the partial unique index keeps one, the other reloads.
    const inserted = await this.dataSource.query(
      `INSERT INTO signing_keys (kid, purpose, alg, public_jwk, private_key_encrypted)
       VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING kid`,
      [
        kid,
        purpose,
        alg,
        publicJwk,
        sealWithMasterKey(this.masterKey, Buffer.from(pkcs8), `signing-key:${kid}`),
      ],
    );
    if (inserted.length === 1) return { kid, alg, pkcs8 };
    return this.unseal(await repository.findOneOrFail({ where: { purpose, retiredAt: IsNull() } }));
  }

  private unseal(key: SigningKeyEntity): UnsealedSigningKey {
    const pkcs8 = openWithMasterKey(this.masterKey, key.privateKeyEncrypted, `signing-key:${key.kid}`);
    return { kid: key.kid, alg: key.alg, pkcs8: pkcs8.toString() };
  }
}
