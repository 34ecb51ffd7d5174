import {
  createHash,
  generateKeyPairSync,
  randomBytes,
  sign,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto';
import { encodeCBOR, type CBORType } from '@levischuck/tiny-cbor';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';

/** How one software authenticator behaves; every ceremony it performs follows these unless overridden. */
export interface SoftAuthenticatorOptions {
  origin: string;
  rpId?: string;
  aaguid?: string;
  attestation?: 'none' | 'packed';
  backupEligible?: boolean;
  backedUp?: boolean;
  userVerification?: boolean;
}

/** Per-ceremony tampering, so e2e tests can prove the server refuses what a broken or hostile client sends. */
export interface CeremonyOverrides {
  origin?: string;
  rpId?: string;
  userVerified?: boolean;
  userPresent?: boolean;
  challenge?: string;
  credentialId?: string;
  type?: string;
  /** Raw members added to (or replacing) those of clientDataJSON, signed as sent: e.g. topOrigin, tokenBinding. */
  clientDataFields?: Record<string, unknown>;
  /** Sign this counter instead of the next one (0: an authenticator that keeps no counter). */
  signCount?: number;
  /** The attestation object's `fmt` (registration only), whatever it says. */
  attestationFormat?: string;
}

/** What a test may see of a stored credential: never the private key. */
export interface SoftCredential {
  id: string;
  publicKeyJwk: JsonWebKey;
  signCount: number;
  userHandle: string | null;
  rpId: string;
}

interface StoredCredential {
  id: string;
  rpId: string;
  userHandle: string | null;
  privateKey: KeyObject;
  publicKey: KeyObject;
  signCount: number;
}

// Authenticator data flag bits (WebAuthn L3 §6.1).
const FLAG_USER_PRESENT = 0x01;
const FLAG_USER_VERIFIED = 0x04;
const FLAG_BACKUP_ELIGIBLE = 0x08;
const FLAG_BACKED_UP = 0x10;
const FLAG_ATTESTED_CREDENTIAL_DATA = 0x40;

const COSE_ALG_ES256 = -7;
const MAX_SIGN_COUNT = 0xffff_ffff;

/** A software FIDO2 platform authenticator with real ES256 keys, so no WebAuthn verification is ever mocked. */
export class SoftAuthenticator {
  private readonly origin: string;
  private readonly rpId: string;
  private readonly aaguid: Uint8Array;
  private readonly attestation: 'none' | 'packed';
  private readonly backupEligible: boolean;
  private readonly backedUp: boolean;
  private readonly userVerification: boolean;
  private readonly stored: StoredCredential[] = [];

  constructor(options: SoftAuthenticatorOptions) {
    this.origin = new URL(options.origin).origin;
    this.rpId = options.rpId ?? new URL(options.origin).hostname;
    this.aaguid = parseAaguid(options.aaguid ?? '00000000-0000-0000-0000-000000000000');
    this.attestation = options.attestation ?? 'none';
    this.backupEligible = options.backupEligible ?? false;
    this.backedUp = options.backedUp ?? false;
    this.userVerification = options.userVerification ?? true;
  }

  /** Snapshot of the stored credentials, oldest first. */
  get credentials(): ReadonlyArray<SoftCredential> {
    return this.stored.map((credential) => ({
      id: credential.id,
      publicKeyJwk: credential.publicKey.export({ format: 'jwk' }),
      signCount: credential.signCount,
      userHandle: credential.userHandle,
      rpId: credential.rpId,
    }));
  }

  /** navigator.credentials.create(): a new resident ES256 credential and its attestation. */
  register(
    options: PublicKeyCredentialCreationOptionsJSON,
    overrides: CeremonyOverrides = {},
  ): RegistrationResponseJSON {
    const rpId = options.rp.id ?? this.rpId;
    this.assertRpIdFitsOrigin(rpId);
    if (
      !options.pubKeyCredParams.some((param) => param.type === 'public-key' && param.alg === COSE_ALG_ES256)
    ) {
      throw new DOMException('the relying party does not accept ES256 (alg -7)', 'NotSupportedError');
    }
    const excluded = new Set((options.excludeCredentials ?? []).map((descriptor) => descriptor.id));
    if (this.stored.some((credential) => credential.rpId === rpId && excluded.has(credential.id))) {
      // A browser reports this as InvalidStateError so the page can say "already registered".
      throw new DOMException('this authenticator already holds an excluded credential', 'InvalidStateError');
    }

    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const credentialId = new Uint8Array(randomBytes(32));
    const credential: StoredCredential = {
      id: toBase64Url(credentialId),
      rpId,
      userHandle: options.user.id,
      privateKey,
      publicKey,
      signCount: 0,
    };

    const attestedCredentialData = concat(
      this.aaguid,
      uint16(credentialId.length),
      credentialId,
      coseKey(publicKey),
    );
    const authenticatorData = concat(
      sha256(overrides.rpId ?? rpId),
      Uint8Array.of(this.flags(overrides) | FLAG_ATTESTED_CREDENTIAL_DATA),
      uint32(credential.signCount),
      attestedCredentialData,
    );
    const clientDataJSON = this.clientData('webauthn.create', options.challenge, overrides);
    const attestationObject = encodeCBOR(
      new Map<string, CBORType>([
        ['fmt', overrides.attestationFormat ?? this.attestation],
        ['attStmt', this.attestationStatement(authenticatorData, clientDataJSON, privateKey)],
        ['authData', authenticatorData],
      ]),
    );

    // A resident credential replaces any earlier one for the same account on this RP (authenticatorMakeCredential step 7).
    const sameAccount = this.stored.findIndex(
      (existing) => existing.rpId === rpId && existing.userHandle === credential.userHandle,
    );
    if (sameAccount >= 0) this.stored.splice(sameAccount, 1);
    this.stored.push(credential);

    return {
      id: credential.id,
      rawId: credential.id,
      type: 'public-key',
      authenticatorAttachment: 'platform',
      clientExtensionResults: {},
      response: {
        clientDataJSON: toBase64Url(clientDataJSON),
        attestationObject: toBase64Url(attestationObject),
        authenticatorData: toBase64Url(authenticatorData),
        transports: ['internal'],
        publicKeyAlgorithm: COSE_ALG_ES256,
        publicKey: toBase64Url(publicKey.export({ type: 'spki', format: 'der' })),
      },
    };
  }

  /** navigator.credentials.get(): an assertion over authData ‖ sha256(clientDataJSON), counter incremented. */
  authenticate(
    options: PublicKeyCredentialRequestOptionsJSON,
    overrides: CeremonyOverrides = {},
  ): AuthenticationResponseJSON {
    const rpId = options.rpId ?? this.rpId;
    this.assertRpIdFitsOrigin(rpId);
    const credential = this.chooseCredential(rpId, options, overrides.credentialId);
    if (credential.signCount >= MAX_SIGN_COUNT)
      throw new Error(`sign counter of ${credential.id} is exhausted`);
    credential.signCount += 1;

    const authenticatorData = concat(
      sha256(overrides.rpId ?? rpId),
      Uint8Array.of(this.flags(overrides)),
      uint32(overrides.signCount ?? credential.signCount),
    );
    const clientDataJSON = this.clientData('webauthn.get', options.challenge, overrides);
    const signature = sign(
      'sha256',
      concat(authenticatorData, sha256(clientDataJSON)),
      credential.privateKey,
    );

    return {
      id: credential.id,
      rawId: credential.id,
      type: 'public-key',
      authenticatorAttachment: 'platform',
      clientExtensionResults: {},
      response: {
        clientDataJSON: toBase64Url(clientDataJSON),
        authenticatorData: toBase64Url(authenticatorData),
        signature: toBase64Url(signature),
        ...(credential.userHandle === null ? {} : { userHandle: credential.userHandle }),
      },
    };
  }

  /** Test hook: the next assertion from this credential carries value + 1 (e.g. a cloned or rolled-back key). */
  setSignCount(credentialId: string, value: number): void {
    if (!Number.isInteger(value) || value < 0 || value > MAX_SIGN_COUNT) {
      throw new RangeError(`sign count must be an unsigned 32-bit integer, got ${value}`);
    }
    this.credentialById(credentialId).signCount = value;
  }

  private chooseCredential(
    rpId: string,
    options: PublicKeyCredentialRequestOptionsJSON,
    forcedId: string | undefined,
  ): StoredCredential {
    if (forcedId !== undefined) return this.credentialById(forcedId);
    const allowed = options.allowCredentials ?? [];
    const candidates = this.stored.filter(
      (credential) =>
        credential.rpId === rpId &&
        (allowed.length === 0 || allowed.some((descriptor) => descriptor.id === credential.id)),
    );
    // Discoverable sign-in shows a chooser; the newest passkey stands in for the user's pick.
    const chosen = candidates.at(-1);
    if (chosen === undefined) {
      // A browser answers NotAllowedError so a page cannot probe which credentials exist.
      throw new DOMException(`no credential for ${rpId} matches the request`, 'NotAllowedError');
    }
    return chosen;
  }

  private credentialById(credentialId: string): StoredCredential {
    const credential = this.stored.find((candidate) => candidate.id === credentialId);
    if (credential === undefined) throw new Error(`this authenticator holds no credential ${credentialId}`);
    return credential;
  }

  // A browser refuses an rp.id that is not the origin's host or a parent domain of it (SecurityError);
  // the rpId override skips this on purpose, to let the server be the one that refuses.
  private assertRpIdFitsOrigin(rpId: string): void {
    const host = new URL(this.origin).hostname;
    if (host !== rpId && !host.endsWith(`.${rpId}`)) {
      throw new DOMException(`rp id ${rpId} is not valid for origin ${this.origin}`, 'SecurityError');
    }
  }

  private flags(overrides: CeremonyOverrides): number {
    let flags = 0;
    if (overrides.userPresent ?? true) flags |= FLAG_USER_PRESENT;
    if (overrides.userVerified ?? this.userVerification) flags |= FLAG_USER_VERIFIED;
    if (this.backupEligible) flags |= FLAG_BACKUP_ELIGIBLE;
    // BS without BE is invalid (simplewebauthn throws InvalidBackupFlags), so backedUp only counts when eligible.
    if (this.backupEligible && this.backedUp) flags |= FLAG_BACKED_UP;
    return flags;
  }

  // Key order matches what browsers emit; the challenge is echoed as the options' base64url string, never re-encoded.
  private clientData(type: string, challenge: string, overrides: CeremonyOverrides): Uint8Array {
    const json = JSON.stringify({
      type: overrides.type ?? type,
      challenge: overrides.challenge ?? challenge,
      origin: overrides.origin ?? this.origin,
      crossOrigin: false,
      ...overrides.clientDataFields,
    });
    return new TextEncoder().encode(json);
  }

  // Packed self-attestation: signed by the credential key itself, so there is no x5c chain to validate.
  private attestationStatement(
    authenticatorData: Uint8Array,
    clientDataJSON: Uint8Array,
    credentialKey: KeyObject,
  ): CBORType {
    if (this.attestation === 'none') return new Map<string, CBORType>();
    const sig = sign('sha256', concat(authenticatorData, sha256(clientDataJSON)), credentialKey);
    return new Map<string, CBORType>([
      ['alg', COSE_ALG_ES256],
      ['sig', new Uint8Array(sig)],
    ]);
  }
}

// COSE_Key for an EC2 P-256 key (RFC 9053 §7.1): integer labels, as simplewebauthn decodes them.
function coseKey(publicKey: KeyObject): Uint8Array {
  const jwk = publicKey.export({ format: 'jwk' });
  if (jwk.x === undefined || jwk.y === undefined) throw new Error('EC public key without coordinates');
  return encodeCBOR(
    new Map<number, CBORType>([
      [1, 2], // kty: EC2
      [3, COSE_ALG_ES256], // alg: ES256
      [-1, 1], // crv: P-256
      [-2, new Uint8Array(Buffer.from(jwk.x, 'base64url'))],
      [-3, new Uint8Array(Buffer.from(jwk.y, 'base64url'))],
    ]),
  );
}

function parseAaguid(aaguid: string): Uint8Array {
  const hex = aaguid.replaceAll('-', '');
  if (!/^[0-9a-f]{32}$/i.test(hex)) throw new Error(`AAGUID must be a UUID, got ${aaguid}`);
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

function sha256(data: string | Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(data).digest());
}

function uint16(value: number): Uint8Array {
  const bytes = new Uint8Array(2);
  new DataView(bytes.buffer).setUint16(0, value, false);
  return bytes;
}

// Big-endian, as the signCount field of authenticator data requires.
function uint32(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value, false);
  return bytes;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

function toBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64url');
}
