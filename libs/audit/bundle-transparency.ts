// A request bundle's place in the audit log's Merkle tree (issue 22): a signed C2SP checkpoint and the
// inclusion proof of each of the bundle's events against it. Anyone holding the bundle and the pinned audit
// keys can check that these events are in the log every other auditor sees, without the rest of the log.
// Pure: the offline verifier imports it.
import type { JsonWebKey } from 'node:crypto';
import type { ExportedEvent } from './manifest.js';
import { auditLeafHash, verifyInclusion } from './merkle.js';
import { checkpointSignedBy, type Checkpoint } from './tlog-note.js';

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

/** The checkpoint's tree head, once its note is signed by one of `keys`. */
function signedHead(note: unknown, keys: readonly JsonWebKey[]) {
  if (typeof note !== 'string') throw new Error('the transparency checkpoint is not a signed note');
  return checkpointSignedBy(note, keys);
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
  let head: Checkpoint;
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
