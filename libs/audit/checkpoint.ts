// Signed checkpoints of the audit chain head (DESIGN §8 `checkpoint`, §9). Pure: node:crypto and JCS only, so
// the offline verifier can import it without pulling in the database layer.
import { createPublicKey, sign, verify, type JsonWebKey, type KeyObject } from 'node:crypto';
import { canonicalJson } from '../domain/canonical-json.js';

/** What a checkpoint attests: the chain head (seq, hash hex) at PostgreSQL time `at` (ISO 8601). */
export interface CheckpointStatement {
  seq: number;
  hash: string;
  at: string;
}

/** `data` of an audit.checkpoint event: the statement, the audit key id and its Ed25519 signature (base64url). */
export interface CheckpointData extends CheckpointStatement {
  kid: string;
  alg: 'EdDSA';
  signature: string;
}

const HEX_32 = /^[0-9a-f]{64}$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/**
 * The exact bytes a checkpoint signature covers: JCS of the statement plus `type`, so a checkpoint signature
 * can never be taken for a manifest signature made with the same key (manifests carry `type: "manifest"`).
 */
export function checkpointSigningInput(statement: CheckpointStatement): Buffer {
  const { seq, hash, at } = statement;
  return Buffer.from(canonicalJson({ type: 'checkpoint', seq, hash, at }), 'utf8');
}

/** Signs a statement with the Ed25519 audit key. */
export function signCheckpoint(
  statement: CheckpointStatement,
  kid: string,
  privateKey: KeyObject,
): CheckpointData {
  const signature = sign(null, checkpointSigningInput(statement), privateKey).toString('base64url');
  return { seq: statement.seq, hash: statement.hash, at: statement.at, kid, alg: 'EdDSA', signature };
}

/** Reads an audit.checkpoint event's data, or says what is wrong with it. */
export function parseCheckpointData(value: Record<string, unknown>): CheckpointData | string {
  const { seq, hash, at, kid, alg, signature } = value;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1)
    return 'checkpoint seq is not a positive integer';
  if (typeof hash !== 'string' || !HEX_32.test(hash)) return 'checkpoint hash is not 64 lowercase hex digits';
  if (typeof at !== 'string' || Number.isNaN(Date.parse(at))) return 'checkpoint at is not a time';
  if (typeof kid !== 'string' || kid === '') return 'checkpoint kid is missing';
  if (alg !== 'EdDSA') return 'checkpoint alg is not "EdDSA"';
  if (typeof signature !== 'string' || !BASE64URL.test(signature))
    return 'checkpoint signature is not base64url';
  return { seq, hash, at, kid, alg, signature };
}

/** True when `checkpoint.signature` is an Ed25519 signature of its statement by `jwk`. */
export function checkpointSignatureValid(checkpoint: CheckpointData, jwk: JsonWebKey): boolean {
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') return false;
  try {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: jwk.x }, format: 'jwk' });
    return verify(
      null,
      checkpointSigningInput(checkpoint),
      key,
      Buffer.from(checkpoint.signature, 'base64url'),
    );
  } catch {
    return false;
  }
}
