// The verifier's reading of a manifest: every field it relies on checked for type and shape before use.
import { HEX_32, isRecord } from './event-checker.js';
import { EXPORT_FORMATS, type ExportFormat, type ExportManifest } from './manifest.js';

const FILTER_KEYS = new Set(['from', 'to', 'actorId', 'entitlementId', 'requestId', 'action']);

/** The manifest of a `format` file, or why it cannot be one. */
export function parseManifest(value: unknown, format: ExportFormat | 'bundle'): ExportManifest | string {
  if (!isRecord(value) || value.type !== 'manifest') {
    // A file cut between lines ends with an event: name the last seq that is there.
    return isRecord(value) && Number.isSafeInteger(value.seq)
      ? `no manifest after seq ${value.seq as number}: the export is truncated there`
      : 'no manifest at the end of the file: the export is truncated';
  }
  const manifest = value as unknown as ExportManifest;
  if (manifest.version !== 1) return `manifest version ${JSON.stringify(manifest.version)} is not supported`;
  if (manifest.format !== format) {
    return `the manifest says format ${JSON.stringify(manifest.format)}, the file is ${format}`;
  }
  if (format !== 'bundle' && !(EXPORT_FORMATS as readonly string[]).includes(manifest.format))
    return 'unknown manifest format';
  const isSeq = (seq: unknown) =>
    seq === null || (typeof seq === 'number' && Number.isSafeInteger(seq) && seq > 0);
  if (!Number.isSafeInteger(manifest.count) || manifest.count < 0)
    return 'manifest count is not a whole number';
  if (!isSeq(manifest.firstSeq) || !isSeq(manifest.lastSeq)) return 'manifest firstSeq/lastSeq are not seqs';
  if (
    manifest.lastHash !== null &&
    !(typeof manifest.lastHash === 'string' && HEX_32.test(manifest.lastHash))
  ) {
    return 'manifest lastHash is not a hash';
  }
  if (typeof manifest.eventsDigest !== 'string' || !HEX_32.test(manifest.eventsDigest))
    return 'manifest eventsDigest is not a hash';
  const { filters, chainHead } = manifest;
  if (
    !isRecord(filters) ||
    Object.entries(filters).some(([key, item]) => !FILTER_KEYS.has(key) || typeof item !== 'string')
  ) {
    return 'manifest filters are malformed';
  }
  if (
    !isRecord(chainHead) ||
    !Number.isSafeInteger(chainHead.seq) ||
    chainHead.seq < 0 ||
    typeof chainHead.hash !== 'string' ||
    !HEX_32.test(chainHead.hash)
  ) {
    return 'manifest chainHead is malformed';
  }
  if (typeof manifest.rpId !== 'string' || manifest.rpId === '') return 'manifest rpId is missing';
  if (!Array.isArray(manifest.origins) || manifest.origins.some((origin) => typeof origin !== 'string')) {
    return 'manifest origins are not a list of strings';
  }
  if (manifest.jws !== undefined && manifest.signature !== undefined)
    return 'the manifest carries both a JWS and a legacy signature';
  // `signature` (raw Ed25519) is how manifests were signed before issue 13: still verified, never written.
  const signature = manifest.jws ?? manifest.signature;
  if (typeof manifest.kid !== 'string' || manifest.alg !== 'EdDSA' || !isSignature(signature)) {
    return 'the manifest is not signed (kid, alg "EdDSA", jws { protected, signature })';
  }
  if (manifest.publicJwk !== undefined && !isRecord(manifest.publicJwk))
    return 'manifest publicJwk is not a JWK';
  return manifest;
}

function isSignature(value: unknown): boolean {
  if (typeof value === 'string') return true;
  return isRecord(value) && typeof value.protected === 'string' && typeof value.signature === 'string';
}
