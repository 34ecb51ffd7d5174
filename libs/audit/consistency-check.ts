// Is a later view of the audit log an extension of an earlier one (issue 22)? Two ways to tell, offline:
// - two signed checkpoints and the consistency proof the broker gave between them (RFC 9162 §2.1.4.2): an
//   auditor who kept the older checkpoint learns that nothing it covered was rewritten since;
// - two unfiltered NDJSON exports: recompute both trees from the events (auditLeafHash) and require the older
//   export's root from the newer export's first events, naming the first event that differs.
// Pure (node:crypto and the file read only): the offline verifier uses it.
import type { JsonWebKey } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { ExportedEvent } from './manifest.js';
import { auditLeafHash, MemoryTree, rootAt, verifyConsistency } from './merkle.js';
import { checkpointSignedBy, type Checkpoint } from './tlog-note.js';

/** A tree head: its size and root hash. */
export interface TreeHead {
  size: number;
  root: Buffer;
}

export type CheckpointsCheck =
  { ok: true; origin: string; older: TreeHead; newer: TreeHead } | { ok: false; reason: string };

export type ExportsCheck =
  { ok: true; older: TreeHead; newer: TreeHead } | { ok: false; seq: number | null; reason: string };

const HASH_BASE64 = /^[A-Za-z0-9+/]{43}=$/;

/**
 * The signed note a saved checkpoint holds: the note itself, the JSON of GET /api/audit/checkpoint (or POST
 * /api/audit/checkpoints), or a request bundle, whose `transparency.checkpoint` is one.
 */
export function checkpointNoteIn(text: string): string {
  const trimmed = text.trimStart();
  if (!trimmed.startsWith('{')) return text;
  const document = JSON.parse(trimmed) as { note?: unknown; transparency?: { checkpoint?: unknown } } | null;
  const note = document?.note ?? document?.transparency?.checkpoint;
  if (typeof note !== 'string') throw new Error('it holds no signed checkpoint note');
  return note;
}

/** The proof file: the JSON GET /api/audit/proofs/consistency?from=&to= answers, or why it is not one. */
function parseProof(text: string): { from: number; to: number; proof: Buffer[] } | string {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    return `the proof is not JSON: ${(error as Error).message}`;
  }
  const { from, to, proof } = (document ?? {}) as { from?: unknown; to?: unknown; proof?: unknown };
  if (
    !Number.isSafeInteger(from) ||
    !Number.isSafeInteger(to) ||
    !Array.isArray(proof) ||
    !proof.every((hash) => typeof hash === 'string' && HASH_BASE64.test(hash))
  )
    return 'the proof is not a consistency proof ({ "from", "to", "proof": [base64 SHA-256 hashes] })';
  return { from: from as number, to: to as number, proof: proof.map((hash) => Buffer.from(hash, 'base64')) };
}

/** The tree head of one saved checkpoint, signed by a pinned key; throws with `which` in the reason. */
function signedHead(which: string, text: string, keys: readonly JsonWebKey[]): Checkpoint {
  try {
    return checkpointSignedBy(checkpointNoteIn(text), keys);
  } catch (error) {
    throw new Error(`the ${which} checkpoint: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Checks that the newer signed checkpoint extends the older: both signed by one of the pinned audit keys under
 * the same origin, sizes in order, and the consistency proof between exactly their sizes leads to both roots.
 */
export function checkpointsConsistent(
  olderText: string,
  newerText: string,
  proofText: string,
  keys: readonly JsonWebKey[],
): CheckpointsCheck {
  let older: Checkpoint;
  let newer: Checkpoint;
  try {
    older = signedHead('older', olderText, keys);
    newer = signedHead('newer', newerText, keys);
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
  if (older.origin !== newer.origin)
    return {
      ok: false,
      reason: `the checkpoints are of different logs: "${older.origin}" and "${newer.origin}"`,
    };
  if (older.size > newer.size)
    return {
      ok: false,
      reason: `sizes reversed: the older checkpoint is of size ${older.size}, the newer of ${newer.size} (give the older first)`,
    };
  const proof = parseProof(proofText);
  if (typeof proof === 'string') return { ok: false, reason: proof };
  if (proof.from !== older.size || proof.to !== newer.size)
    return {
      ok: false,
      reason: `the proof is between sizes ${proof.from} and ${proof.to}, not the checkpoints' ${older.size} and ${newer.size}`,
    };
  const check = verifyConsistency(older.size, newer.size, older.root, newer.root, proof.proof);
  if (!check.ok) return { ok: false, reason: `the proof does not match the checkpoints: ${check.reason}` };
  return {
    ok: true,
    origin: older.origin,
    older: { size: older.size, root: older.root },
    newer: { size: newer.size, root: newer.root },
  };
}

/** The tree over an unfiltered NDJSON export's events (seq 1, 2, … up to its manifest line). */
async function exportTree(file: string): Promise<MemoryTree> {
  const tree = new MemoryTree();
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  try {
    for await (const line of lines) {
      if (line.trim().length === 0) continue;
      const event = JSON.parse(line) as ExportedEvent & { type?: string };
      if (event.type === 'manifest') break;
      if (event.seq !== tree.size + 1)
        throw new Error(
          `${file} is not an unfiltered NDJSON export from seq 1 (at its event ${tree.size + 1})`,
        );
      tree.append(auditLeafHash(event));
    }
  } finally {
    lines.close();
  }
  return tree;
}

/** The first leaf (as a seq) below `size` where the two trees differ; null when none does. */
async function firstDifferingSeq(older: MemoryTree, newer: MemoryTree, size: number): Promise<number | null> {
  for (let index = 0; index < size; index++) {
    const ref = [{ level: 0, index }];
    const [a, b] = [(await older.subtrees(ref))[0], (await newer.subtrees(ref))[0]];
    if (!a.equals(b)) return index + 1;
  }
  return null;
}

/**
 * Recomputes the Merkle trees of two unfiltered NDJSON exports and checks that the older is a prefix of the
 * newer: the root of the newer's first n leaves is the older's root (n its size). Throws only on a read error.
 */
export async function exportsConsistent(olderFile: string, newerFile: string): Promise<ExportsCheck> {
  let older: MemoryTree;
  let newer: MemoryTree;
  try {
    [older, newer] = [await exportTree(olderFile), await exportTree(newerFile)];
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== undefined) throw error;
    return { ok: false, seq: null, reason: (error as Error).message };
  }
  if (older.size > newer.size)
    return {
      ok: false,
      seq: null,
      reason: `sizes reversed: the older export holds ${older.size} events, the newer ${newer.size} (give the older first)`,
    };
  const olderRoot = await rootAt(older, older.size);
  if (!(await rootAt(newer, older.size)).equals(olderRoot)) {
    const seq = await firstDifferingSeq(older, newer, older.size);
    return {
      ok: false,
      seq,
      reason: `the newer export's first ${older.size} events do not give the older export's root: event ${seq} differs, the log was rewritten`,
    };
  }
  return {
    ok: true,
    older: { size: older.size, root: olderRoot },
    newer: { size: newer.size, root: await rootAt(newer, newer.size) },
  };
}
