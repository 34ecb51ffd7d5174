import type { OnApplicationShutdown } from '@nestjs/common';
import { exportJWK, exportPKCS8, generateKeyPair, importPKCS8, type JWK } from 'jose';
import { IsNull, type DataSource } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { AuditAction } from '../audit/audit-actions.js';
import { appendAuditEvent } from '../audit/audit-log.js';
import { SigningKeyEntity } from '../db/index.js';
import { openWithMasterKey, sealWithMasterKey } from './master-key.js';

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

/** What a rotation did: the key it retired (none when there was no key yet) and the one now current. */
export interface RotatedSigningKey {
  purpose: SigningKeyPurpose;
  retiredKid: string | null;
  retiredAt: Date | null;
  kid: string;
}

/** How often each process re-reads which keys are current, so a rotation reaches it without a restart. */
export const CURRENT_KEY_REFRESH_MS = 2_000;
/**
 * How long after its retirement a key may still sign somewhere: a process signs with the key it last read
 * (CURRENT_KEY_REFRESH_MS), and a refresh can wait behind a busy connection pool or a slow database.
 */
export const RETIRED_KEY_SIGNING_GRACE_SECONDS = 60;
// Fixed first key of the rotation's advisory lock, so it never meets another lock of ours.
const ROTATION_LOCK_CLASS = 0x6a69746b; // "jitk"

/**
 * The broker's signing keys, generated on first use and kept encrypted at rest in PostgreSQL. Which key is
 * current is re-read in the background every CURRENT_KEY_REFRESH_MS, so a rotation by the CLI or another
 * process takes effect everywhere without a restart. Signing itself never waits for the database once a
 * key is loaded: it runs inside the caller's transaction, and a second connection taken there could
 * exhaust the pool (every connection held by a transaction waiting for one more).
 */
export class SigningKeyStore implements OnApplicationShutdown {
  private readonly loaded = new Map<string, Promise<unknown>>();
  private readonly currentKids = new Map<SigningKeyPurpose, string>();
  /** When each retired jwt key leaves the JWKS, once that can no longer change. */
  private readonly publishedUntil = new Map<string, Date | null>();
  private refreshTimer: NodeJS.Timeout | undefined;
  private refreshing = false;

  constructor(
    private readonly dataSource: DataSource,
    private readonly masterKey: Buffer,
  ) {}

  /** The key that signs now for a purpose (`jwt` or `audit`), created on first call. */
  async currentKey(purpose: 'jwt' | 'audit'): Promise<LoadedSigningKey> {
    return this.importedKey(await this.currentKid(purpose));
  }

  /** The SSH user CA's current Ed25519 key as PKCS#8 (sshpk signs with it), created on first call. */
  async currentSshCaKey(): Promise<UnsealedSigningKey> {
    return this.unsealedKey(await this.currentKid('ssh'));
  }

  /**
   * Public JWKs of every key of a purpose that may still verify something, current first. A retired jwt
   * key stays until the last token it can have signed has expired; audit keys stay forever (old
   * manifests and checkpoints must verify), and so do SSH CA keys (not rotated yet).
   */
  async publicJwks(purpose: SigningKeyPurpose): Promise<JWK[]> {
    let keys = await this.keysOf(purpose);
    if (!keys.some((key) => key.retired_at === null)) {
      await this.currentKid(purpose);
      keys = await this.keysOf(purpose);
    }
    const published: JWK[] = [];
    for (const key of keys) {
      if (
        purpose !== 'jwt' ||
        key.retired_at === null ||
        ((await this.jwtPublishedUntil(key.kid, key.retired_at, key.now)) ?? key.now) > key.now
      ) {
        published.push(key.public_jwk as JWK);
      }
    }
    return published;
  }

  /**
   * Retires the current key of `purpose` and makes a fresh one current, with a `signing-key.rotated`
   * audit event by `actorId` in the same transaction. Other processes switch within CURRENT_KEY_REFRESH_MS.
   */
  async rotate(purpose: 'jwt', actorId: string): Promise<RotatedSigningKey> {
    const fresh = await this.generate(purpose);
    const rotated = await this.dataSource.transaction(async (manager) => {
      // Two rotations at once would otherwise both retire the same key and collide on the new one.
      await manager.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [ROTATION_LOCK_CLASS, purpose]);
      const current = await manager.findOne(SigningKeyEntity, { where: { purpose, retiredAt: IsNull() } });
      // A new key sealed under another master key would be one no broker can open: signing would stop.
      if (current) this.assertOpens(current);
      let retiredAt: Date | null = null;
      if (current) {
        // TypeORM answers an UPDATE … RETURNING with [rows, affected].
        const [[retired]] = (await manager.query(
          'UPDATE signing_keys SET retired_at = now() WHERE kid = $1 RETURNING retired_at',
          [current.kid],
        )) as [Array<{ retired_at: Date }>, number];
        retiredAt = retired.retired_at;
      }
      await manager.query(
        `INSERT INTO signing_keys (kid, purpose, alg, public_jwk, private_key_encrypted) VALUES ($1, $2, $3, $4, $5)`,
        [fresh.kid, purpose, fresh.alg, fresh.publicJwk, fresh.sealed],
      );
      await appendAuditEvent(manager, {
        actorId,
        action: AuditAction.SigningKeyRotated,
        subjectType: 'signing-key',
        subjectId: fresh.kid,
        data: { purpose, alg: fresh.alg, kid: fresh.kid, retiredKid: current?.kid ?? null },
      });
      return { purpose, retiredKid: current?.kid ?? null, retiredAt, kid: fresh.kid };
    });
    if (this.currentKids.has(purpose)) this.currentKids.set(purpose, rotated.kid);
    return rotated;
  }

  /** Stops the background refresh; call once on shutdown. */
  close(): void {
    clearInterval(this.refreshTimer);
    this.refreshTimer = undefined;
  }

  /** Nest calls this on the provider (KeysModule) at shutdown; the CLI, which builds its own, calls close(). */
  onApplicationShutdown(): void {
    this.close();
  }

  /** One load per process and cache key; a failed load is forgotten so the next call retries. */
  private cached<T>(cacheKey: string, load: () => Promise<T>): Promise<T> {
    let key = this.loaded.get(cacheKey) as Promise<T> | undefined;
    if (!key) {
      key = load();
      key.catch(() => this.loaded.delete(cacheKey));
      this.loaded.set(cacheKey, key);
    }
    return key;
  }

  /** The current key's id as last read; the first call per purpose loads (or creates) it and starts refreshing. */
  private async currentKid(purpose: SigningKeyPurpose): Promise<string> {
    const known = this.currentKids.get(purpose);
    if (known) return known;
    const [current] = (await this.dataSource.query(
      'SELECT kid FROM signing_keys WHERE purpose = $1 AND retired_at IS NULL',
      [purpose],
    )) as Array<{ kid: string }>;
    const kid = current?.kid ?? (await this.create(purpose));
    await this.load(purpose, kid);
    if (!this.currentKids.has(purpose)) this.currentKids.set(purpose, kid);
    this.refreshTimer ??= setInterval(() => void this.refresh(), CURRENT_KEY_REFRESH_MS).unref();
    return this.currentKids.get(purpose)!;
  }

  /** Re-reads which keys are current; a new one is loaded before it is used, so signing never waits. */
  private async refresh(): Promise<void> {
    if (this.refreshing || !this.dataSource.isInitialized) return;
    this.refreshing = true;
    try {
      const rows = (await this.dataSource.query(
        'SELECT purpose, kid FROM signing_keys WHERE retired_at IS NULL',
      )) as Array<{ purpose: SigningKeyPurpose; kid: string }>;
      for (const { purpose, kid } of rows) {
        if (!this.currentKids.has(purpose) || this.currentKids.get(purpose) === kid) continue;
        await this.load(purpose, kid);
        this.currentKids.set(purpose, kid);
      }
    } catch {
      // The database is away or the key cannot be opened: keep signing with the last key; retry next tick.
    } finally {
      this.refreshing = false;
    }
  }

  private async load(purpose: SigningKeyPurpose, kid: string): Promise<void> {
    if (purpose === 'ssh') await this.unsealedKey(kid);
    else await this.importedKey(kid);
  }

  private importedKey(kid: string): Promise<LoadedSigningKey> {
    return this.cached(`imported:${kid}`, async () => {
      const key = await this.unsealedKey(kid);
      return { kid, alg: key.alg, privateKey: await importPKCS8(key.pkcs8, key.alg) };
    });
  }

  private unsealedKey(kid: string): Promise<UnsealedSigningKey> {
    return this.cached(`unsealed:${kid}`, async () =>
      this.unseal(await this.dataSource.getRepository(SigningKeyEntity).findOneByOrFail({ kid })),
    );
  }

  private async keysOf(
    purpose: SigningKeyPurpose,
  ): Promise<Array<{ kid: string; public_jwk: object; retired_at: Date | null; now: Date }>> {
    return this.dataSource.query(
      `SELECT kid, public_jwk, retired_at, now() AS now FROM signing_keys WHERE purpose = $1
        ORDER BY retired_at IS NULL DESC, created_at DESC`,
      [purpose],
    );
  }

  /**
   * The latest notAfter of the jwt grants issued up to RETIRED_KEY_SIGNING_GRACE_SECONDS after the key's
   * retirement (null: none): the key signed none after that. Grants of newer keys in that window only keep
   * it a little longer. Remembered once the window has passed, when it can no longer change.
   */
  private async jwtPublishedUntil(kid: string, retiredAt: Date, now: Date): Promise<Date | null> {
    if (this.publishedUntil.has(kid)) return this.publishedUntil.get(kid)!;
    const [{ until }] = (await this.dataSource.query(
      `SELECT max(not_after) AS until FROM grants
        WHERE connector_type = 'jwt' AND issued_at <= $1::timestamptz + make_interval(secs => $2)`,
      [retiredAt, RETIRED_KEY_SIGNING_GRACE_SECONDS],
    )) as Array<{ until: Date | null }>;
    if (now.getTime() > retiredAt.getTime() + RETIRED_KEY_SIGNING_GRACE_SECONDS * 1000) {
      this.publishedUntil.set(kid, until);
    }
    return until;
  }

  private async generate(
    purpose: SigningKeyPurpose,
  ): Promise<{ kid: string; alg: string; publicJwk: JWK; sealed: Buffer }> {
    const alg = ALGORITHM_OF[purpose];
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
    const kid = uuidv7();
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
    const pkcs8 = await exportPKCS8(privateKey);
    const sealed = sealWithMasterKey(this.masterKey, Buffer.from(pkcs8), `signing-key:${kid}`);
    return { kid, alg, publicJwk, sealed };
  }

  /** Makes the first key of a purpose; returns the kid that is current afterwards. */
  private async create(purpose: SigningKeyPurpose): Promise<string> {
    const key = await this.generate(purpose);
    // Two processes booting together may both generate: the partial unique index keeps one, the other reloads.
    const inserted = (await this.dataSource.query(
      `INSERT INTO signing_keys (kid, purpose, alg, public_jwk, private_key_encrypted)
       VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING kid`,
      [key.kid, purpose, key.alg, key.publicJwk, key.sealed],
    )) as Array<{ kid: string }>;
    if (inserted.length === 1) return key.kid;
    const current = await this.dataSource
      .getRepository(SigningKeyEntity)
      .findOneOrFail({ where: { purpose, retiredAt: IsNull() } });
    return current.kid;
  }

  private assertOpens(key: SigningKeyEntity): void {
    try {
      this.unseal(key);
    } catch (error) {
      throw new Error(
        `The master key does not open the current ${key.purpose} key ${key.kid}: it is not the brokers' BROKER_MASTER_KEY`,
        { cause: error },
      );
    }
  }

  private unseal(key: SigningKeyEntity): UnsealedSigningKey {
    const pkcs8 = openWithMasterKey(this.masterKey, key.privateKeyEncrypted, `signing-key:${key.kid}`);
    return { kid: key.kid, alg: key.alg, pkcs8: pkcs8.toString() };
  }
}
