import { createHash, createPublicKey, verify, type JsonWebKey, type KeyObject } from 'node:crypto';
import { FlattenedSign, flattenedVerify } from 'jose';
import { canonicalJson } from '../domain/canonical-json.js';
import { decodeBase64Url } from './evidence-check.js';

export type { ExportedEvent } from './audit-wire.js';

export const EXPORT_FORMATS = Object.freeze(['ndjson', 'csv', 'json'] as const);

/** The file formats of an audit export (DESIGN §9). */
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** Media types for serving an export over HTTP. */
export const EXPORT_MEDIA_TYPES: Readonly<Record<ExportFormat, string>> = Object.freeze({
  ndjson: 'application/x-ndjson; charset=utf-8',
  csv: 'text/csv; charset=utf-8; header=present',
  json: 'application/json; charset=utf-8',
});

/** CSV columns, in order; `data` holds the event's data as JSON text, an empty `requestId` means null. */
export const EXPORT_COLUMNS = Object.freeze([
  'seq',
  'at',
  'actorId',
  'action',
  'subjectType',
  'subjectId',
  'requestId',
  'data',
  'prevHash',
  'hash',
] as const);

/** First field of the CSV record that carries the manifest (its `data` field holds the manifest JSON). */
export const CSV_MANIFEST_MARKER = '#manifest';

/** The filters an export was made with, as its manifest records them: only those set, times as ISO 8601. */
export interface ExportFilters {
  /** Inclusive lower bound on `at`. */
  from?: string;
  /** Exclusive upper bound on `at`. */
  to?: string;
  actorId?: string;
  entitlementId?: string;
  requestId?: string;
  action?: string;
}

/** The public half of the audit signing key (Ed25519), as published and as embedded in manifests. */
export interface AuditPublicJwk extends JsonWebKey {
  kty: 'OKP';
  crv: 'Ed25519';
  x: string;
  kid: string;
  alg: 'EdDSA';
  use?: 'sig';
}

/** Everything a manifest states about the export; the signer adds kid, alg, publicJwk and jws. */
export interface ManifestBody {
  type: 'manifest';
  version: 1;
  format: ExportFormat | 'bundle';
  /** Events in the file. */
  count: number;
  firstSeq: number | null;
  lastSeq: number | null;
  /** Hash (hex) of the last exported event. */
  lastHash: string | null;
  /** sha256 (hex) over the concatenated raw 32-byte hashes of the exported events, in file order. */
  eventsDigest: string;
  filters: ExportFilters;
  /** The chain head when the export started: the export holds no event after it. */
  chainHead: { seq: number; hash: string };
  /** Who exported (user id). */
  exporter: string;
  exportedAt: string;
  /** The relying party every assertion in the file must name, and the origins it may come from. */
  rpId: string;
  origins: string[];
  /** Bundles only: sha256 (hex) of JCS({ request, policyVersion, grants }), the parts that are not events. */
  attachmentsDigest?: string;
}

/**
 * A manifest's signature as a flattened JWS (RFC 7515 §7.2.2) with its payload detached (RFC 7515 appendix F):
 * the payload is manifestSigningInput, the protected header `{ alg: 'EdDSA', kid }`. `jose.flattenedVerify`
 * checks it with `{ ...jws, payload }` and the key from /.well-known/audit-jwks.json.
 */
export interface ManifestJws {
  protected: string;
  signature: string;
}

/** What a signer returns. */
export interface ManifestSignature {
  kid: string;
  alg: 'EdDSA';
  /** The signer's public key, for a reader without a pinned JWKS; a verifier must say it was not pinned. */
  publicJwk?: AuditPublicJwk;
  jws: ManifestJws;
}

/**
 * A manifest as read back: exports made before issue 13 carry `signature` (base64url raw Ed25519 over the same
 * bytes) instead of `jws`. Verifiers accept either, never both; signers write only `jws`.
 */
export type ExportManifest = ManifestBody &
  Omit<ManifestSignature, 'jws'> & { jws?: ManifestJws; signature?: string };

/** Signs a manifest body: must return a JWS over JCS of the body plus the kid, alg and publicJwk it returns. */
export type ManifestSigner = (body: ManifestBody) => Promise<ManifestSignature>;

/** The exact bytes a manifest signature covers (the JWS payload): JCS of the manifest without `jws` or `signature`. */
export function manifestSigningInput(manifest: Omit<ExportManifest, 'jws' | 'signature'>): Buffer {
  const { jws: _jws, signature: _signature, ...unsigned } = manifest as ExportManifest;
  return Buffer.from(canonicalJson(unsigned), 'utf8');
}

/** A ManifestSigner over an Ed25519 private key held in memory (tests, the CLI, the audit key of libs/keys). */
export function manifestSignerFromKey(kid: string, privateKey: KeyObject): ManifestSigner {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519') {
    throw new TypeError('the audit manifest key must be an Ed25519 private key');
  }
  const exported = createPublicKey(privateKey).export({ format: 'jwk' });
  const publicJwk: AuditPublicJwk = {
    kty: 'OKP',
    crv: 'Ed25519',
    x: String(exported.x),
    kid,
    alg: 'EdDSA',
    use: 'sig',
  };
  return async (body) => {
    const unsigned = { ...body, kid, alg: 'EdDSA' as const, publicJwk };
    const signed = await new FlattenedSign(manifestSigningInput(unsigned))
      .setProtectedHeader({ alg: 'EdDSA', kid })
      .sign(privateKey);
    const jws = { protected: signed.protected!, signature: signed.signature };
    return { kid, alg: 'EdDSA', publicJwk, jws };
  };
}

/**
 * True when the manifest's JWS verifies with the Ed25519 key `x` and names the manifest's kid; for an export
 * made before issue 13, when its raw `signature` verifies over the same bytes.
 */
export async function manifestSignatureHolds(manifest: ExportManifest, x: string): Promise<boolean> {
  const payload = manifestSigningInput(manifest);
  try {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
    if (manifest.jws === undefined) {
      const signature = decodeBase64Url(manifest.signature ?? '');
      return signature !== null && verify(null, payload, key, signature);
    }
    const { protected: header, signature } = manifest.jws;
    // The payload travels detached: a JWS with the default b64 header takes it base64url-encoded.
    const encoded = payload.toString('base64url');
    const verified = await flattenedVerify({ protected: header, signature, payload: encoded }, key, {
      algorithms: ['EdDSA'],
    });
    return verified.protectedHeader?.kid === manifest.kid;
  } catch {
    return false;
  }
}

/** Accumulates eventsDigest: sha256 over each exported event's raw 32-byte hash, in order. */
export class EventsDigest {
  private readonly hash = createHash('sha256');

  add(hashHex: string): void {
    this.hash.update(Buffer.from(hashHex, 'hex'));
  }

  hex(): string {
    return this.hash.digest('hex');
  }
}

/** sha256 (hex) of JCS(value). */
export function canonicalDigest(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value), 'utf8').digest('hex');
}
