import { createHash, createPublicKey, verify, type JsonWebKey, type KeyObject } from 'node:crypto';
import { decodeCBOR } from '@levischuck/tiny-cbor';
import type { AuditedEvidence } from '../webauthn/evidence.js';
import { stepUpChallenge } from '../webauthn/step-up-binding.js';

/** The signature algorithms of the COSE keys a verifier accepts. */
export type CoseAlgorithm = 'ES256' | 'EdDSA' | 'RS256';

/** Where the assertions of an export must come from: the broker's rpID and allowed origins. */
export interface RelyingParty {
  rpId: string;
  origins: readonly string[];
}

const EVIDENCE_FIELDS = [
  'userId',
  'action',
  'subjectId',
  'subjectDigest',
  'nonce',
  'credentialId',
  'authenticatorData',
  'clientDataJSON',
  'signature',
  'publicKey',
] as const satisfies ReadonlyArray<keyof AuditedEvidence>;
const BINARY_FIELDS = [
  'credentialId',
  'authenticatorData',
  'clientDataJSON',
  'signature',
  'publicKey',
] as const;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

// Authenticator data: rpIdHash (32) ‖ flags (1) ‖ signCount (4) ‖ …; flag bits from WebAuthn L3 §6.1.
const AUTH_DATA_MIN_BYTES = 37;
const FLAG_USER_PRESENT = 0x01;
const FLAG_USER_VERIFIED = 0x04;

/** Reads `data.evidence` into AuditedEvidence, or says what is wrong with it. */
export function parseStepUpEvidence(value: unknown): AuditedEvidence | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'evidence is not an object';
  const record = value as Record<string, unknown>;
  for (const field of EVIDENCE_FIELDS) {
    if (typeof record[field] !== 'string' || record[field] === '') {
      return `evidence.${field} is missing or not a string`;
    }
  }
  for (const field of BINARY_FIELDS) {
    if (decodeBase64Url(record[field] as string) === null) return `evidence.${field} is not base64url`;
  }
  return record as unknown as AuditedEvidence;
}

/**
 * Verifies one assertion offline: the challenge recomputed from (nonce, userId, action, subjectId,
 * subjectDigest), clientDataJSON's type and origin, the rpID hash, user presence and verification, and the
 * signature over authenticatorData ‖ sha256(clientDataJSON) with the COSE public key. Returns null when it
 * holds, else the first reason it does not. Binding the evidence to its event and subject is the caller's.
 */
export function checkStepUpAssertion(evidence: AuditedEvidence, relyingParty: RelyingParty): string | null {
  const prepared = prepareStepUpAssertion(evidence, relyingParty);
  if (typeof prepared === 'string') return prepared;
  return assertionSignatureHolds(prepared) ? null : assertionSignatureFailure(prepared.alg);
}

/** An assertion whose every check but the signature held: what the signature check needs, nothing else. */
export interface PreparedAssertion {
  alg: CoseAlgorithm;
  key: KeyObject;
  /** authenticatorData ‖ sha256(clientDataJSON). */
  signedData: Buffer;
  signature: Buffer;
}

/** The reason checkStepUpAssertion gives for a signature that does not verify. */
export function assertionSignatureFailure(alg: CoseAlgorithm): string {
  return `assertion signature does not verify with the ${alg} public key`;
}

/**
 * checkStepUpAssertion up to the signature: the first reason the assertion does not hold, or what its
 * signature check needs (run it with assertionSignatureHolds, here or on another thread).
 */
export function prepareStepUpAssertion(
  evidence: AuditedEvidence,
  relyingParty: RelyingParty,
): PreparedAssertion | string {
  let expectedChallenge: string;
  try {
    expectedChallenge = stepUpChallenge(evidence).toString('base64url');
  } catch (error) {
    return `evidence cannot be bound: ${(error as Error).message}`;
  }
  const clientDataBytes = decodeBase64Url(evidence.clientDataJSON) as Buffer;
  let clientData: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(clientDataBytes.toString('utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new TypeError();
    clientData = parsed as Record<string, unknown>;
  } catch {
    return 'clientDataJSON is not a JSON object';
  }
  if (clientData.type !== 'webauthn.get') {
    return `clientDataJSON.type is ${JSON.stringify(clientData.type)}, not "webauthn.get"`;
  }
  if (clientData.challenge !== expectedChallenge) {
    return 'clientDataJSON.challenge is not the step-up challenge recomputed from the evidence';
  }
  if (typeof clientData.origin !== 'string' || !relyingParty.origins.includes(clientData.origin)) {
    return `clientDataJSON.origin ${JSON.stringify(clientData.origin)} is not one of the manifest's origins`;
  }
  const authenticatorData = decodeBase64Url(evidence.authenticatorData) as Buffer;
  if (authenticatorData.length < AUTH_DATA_MIN_BYTES) return 'authenticatorData is too short';
  if (!authenticatorData.subarray(0, 32).equals(rpIdHash(relyingParty.rpId))) {
    return `authenticatorData is not for rpId ${JSON.stringify(relyingParty.rpId)}`;
  }
  const flags = authenticatorData[32];
  if ((flags & FLAG_USER_PRESENT) === 0) return 'authenticatorData does not have user presence (UP)';
  if ((flags & FLAG_USER_VERIFIED) === 0) return 'authenticatorData does not have user verification (UV)';

  const publicKey = cachedPublicKey(evidence.publicKey);
  if (typeof publicKey === 'string') return publicKey;
  const signedData = Buffer.concat([
    authenticatorData,
    createHash('sha256').update(clientDataBytes).digest(),
  ]);
  const signature = decodeBase64Url(evidence.signature) as Buffer;
  return { alg: publicKey.alg, key: publicKey.key, signedData, signature };
}

/** The signature check of a prepared assertion (EdDSA signs the data itself, ES256 and RS256 its sha256). */
export function assertionSignatureHolds(prepared: PreparedAssertion): boolean {
  const { alg, key, signedData, signature } = prepared;
  try {
    return verify(alg === 'EdDSA' ? null : 'sha256', signedData, key, signature);
  } catch {
    return false;
  }
}

/** Keys built from COSE, by the base64url text they came from: a verifier meets the same few passkeys often. */
const publicKeys = new Map<string, ReturnType<typeof coseToPublicKey>>();
const MAX_CACHED_KEYS = 10_000;
const rpIdHashes = new Map<string, Buffer>();

/** coseToPublicKey of base64url text (already checked to be base64url), built once per distinct key. */
function cachedPublicKey(text: string): ReturnType<typeof coseToPublicKey> {
  let key = publicKeys.get(text);
  if (key === undefined) {
    key = coseToPublicKey(decodeBase64Url(text) as Buffer);
    if (publicKeys.size >= MAX_CACHED_KEYS) publicKeys.clear();
    publicKeys.set(text, key);
  }
  return key;
}

function rpIdHash(rpId: string): Buffer {
  let hash = rpIdHashes.get(rpId);
  if (hash === undefined) {
    hash = createHash('sha256').update(rpId, 'utf8').digest();
    if (rpIdHashes.size >= MAX_CACHED_KEYS) rpIdHashes.clear();
    rpIdHashes.set(rpId, hash);
  }
  return hash;
}

// COSE (RFC 9052/9053) labels; integer keys, as WebAuthn credential public keys use them.
const COSE_KTY = 1;
const COSE_ALG = 3;
const COSE_CRV_OR_N = -1;
const COSE_X_OR_E = -2;
const COSE_Y = -3;
const KTY_OKP = 1;
const KTY_EC2 = 2;
const KTY_RSA = 3;
const ALG_ES256 = -7;
const ALG_EDDSA = -8;
const ALG_RS256 = -257;
const CRV_P256 = 1;
const CRV_ED25519 = 6;

/** A COSE_Key (ES256, EdDSA/Ed25519 or RS256) as a node:crypto public key, or the reason it is not usable. */
export function coseToPublicKey(bytes: Uint8Array): { alg: CoseAlgorithm; key: KeyObject } | string {
  let cose: unknown;
  try {
    // A copy: tiny-cbor reads `bytes.buffer` from offset 0, ignoring byteOffset, and a Buffer is often a
    // slice of Node's shared pool, so it would decode whatever else lies in that pool.
    cose = decodeCBOR(new Uint8Array(bytes));
  } catch {
    return 'publicKey is not CBOR';
  }
  if (!(cose instanceof Map)) return 'publicKey is not a COSE key map';
  const kty = cose.get(COSE_KTY);
  const alg = cose.get(COSE_ALG);
  const bytesOf = (label: number) => {
    const value = cose.get(label);
    return value instanceof Uint8Array ? Buffer.from(value).toString('base64url') : null;
  };
  let jwk: JsonWebKey;
  let name: CoseAlgorithm;
  if (alg === ALG_ES256 && kty === KTY_EC2 && cose.get(COSE_CRV_OR_N) === CRV_P256) {
    const x = bytesOf(COSE_X_OR_E);
    const y = bytesOf(COSE_Y);
    if (x === null || y === null) return 'publicKey (ES256) lacks x or y';
    jwk = { kty: 'EC', crv: 'P-256', x, y };
    name = 'ES256';
  } else if (alg === ALG_EDDSA && kty === KTY_OKP && cose.get(COSE_CRV_OR_N) === CRV_ED25519) {
    const x = bytesOf(COSE_X_OR_E);
    if (x === null) return 'publicKey (EdDSA) lacks x';
    jwk = { kty: 'OKP', crv: 'Ed25519', x };
    name = 'EdDSA';
  } else if (alg === ALG_RS256 && kty === KTY_RSA) {
    const n = bytesOf(COSE_CRV_OR_N);
    const e = bytesOf(COSE_X_OR_E);
    if (n === null || e === null) return 'publicKey (RS256) lacks n or e';
    jwk = { kty: 'RSA', n, e };
    name = 'RS256';
  } else {
    return `publicKey uses an unsupported COSE algorithm (${String(alg)}) or key type (${String(kty)})`;
  }
  try {
    return { alg: name, key: createPublicKey({ key: jwk, format: 'jwk' }) };
  } catch {
    return `publicKey is not a valid ${name} key`;
  }
}

/** Strict base64url (no padding, no stray characters, canonical final bits), or null. */
export function decodeBase64Url(text: string): Buffer | null {
  if (!BASE64URL.test(text) || text.length % 4 === 1) return null;
  const bytes = Buffer.from(text, 'base64url');
  return bytes.toString('base64url') === text ? bytes : null;
}
