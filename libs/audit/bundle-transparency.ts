// A request bundle's place in the audit log's Merkle tree (issue 22): a signed C2SP checkpoint and the
// inclusion proof of each of the bundle's events against it. Anyone holding the bundle and the pinned audit
// keys can check that these events are in the log every other auditor sees, without the rest of the log.
// Pure: the offline verifier imports it.
import type { JsonWebKey } from 'node:crypto';
import type { ExportedEvent } from './manifest.js';
import { auditLeafHash, verifyInclusion } from './merkle.js';
import { ed25519PublicKey, noteVerifier, parseCheckpoint, verifyNote } from './tlog-note.js';

/** What a bundle carries beside its signed manifest: its events' inclusion in a signed checkpoint. */
export interface BundleTransparency {
  /** The signed note of a C2SP checkpoint (origin, size, root), signed by the audit key. */
  checkpoint: string;
  /** One per event of the bundle: base64 hashes, leaf side first. */
  proofs: Array<{ seq: number; proof: string[] }>;
}

export type TransparencyCheck =
  { ok: true; size: number; events: number } | { ok: false; seq: number | null; reason: string };

const HASH_BASE64 = /^[A-Za-z0-9+/]{43}=$/;

/** Ed25519 audit keys (JWKs) as note verifiers under the checkpoint's origin. */
function verifiersOf(origin: string, keys: readonly JsonWebKey[]) {
  return keys
    .filter((key) => key.kty === 'OKP' && key.crv === 'Ed25519' && typeof key.x === 'string')
    .map((key) => noteVerifier(origin, ed25519PublicKey(Buffer.from(key.x as string, 'base64url'))));
}

/** The checkpoint's tree head, once its note is signed by one of `keys`. */
function signedHead(note: unknown, keys: readonly JsonWebKey[]) {
  if (typeof note !== 'string') throw new Error('the transparency checkpoint is not a signed note');
  const lines = note.split('\n');
  const head = parseCheckpoint(`${lines.slice(0, lines.indexOf('')).join('\n')}\n`);
  const verified = verifyNote(note, verifiersOf(head.origin, keys));
  if (!verified.signedBy.includes(head.origin))
    throw new Error(`the checkpoint of ${head.origin} is not signed by a pinned audit key`);
  return parseCheckpoint(verified.text);
}

/** Checks that every event of the bundle is in the tree of the signed checkpoint. */
export function verifyBundleTransparency(
  transparency: unknown,
  events: readonly ExportedEvent[],
  keys: readonly JsonWebKey[],
): TransparencyCheck {
  const record = transparency as Partial<BundleTransparency> | null;
  if (typeof record !== 'object' || record === null || !Array.isArray(record.proofs))
    return { ok: false, seq: null, reason: 'bundle.transparency lacks its checkpoint or proofs' };
  let head: ReturnType<typeof parseCheckpoint>;
  try {
    head = signedHead(record.checkpoint, keys);
  } catch (error) {
    return { ok: false, seq: null, reason: (error as Error).message };
  }
  const proofs = new Map(record.proofs.map((entry) => [entry?.seq, entry?.proof]));
  for (const event of events) {
    const proof = proofs.get(event.seq);
    if (!Array.isArray(proof) || !proof.every((hash) => typeof hash === 'string' && HASH_BASE64.test(hash)))
      return { ok: false, seq: event.seq, reason: 'no well-formed inclusion proof for this event' };
    const hashes = proof.map((hash) => Buffer.from(hash, 'base64'));
    const check = verifyInclusion(auditLeafHash(event), event.seq - 1, head.size, hashes, head.root);
    if (!check.ok)
      return { ok: false, seq: event.seq, reason: `not in the signed checkpoint: ${check.reason}` };
  }
  return { ok: true, size: head.size, events: events.length };
}
