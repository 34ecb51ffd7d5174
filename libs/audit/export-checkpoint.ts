// Does an export reproduce a signed checkpoint of the Merkle tree (issue 22)? An export verifies on its own
// (chain, assertions, manifest), but whoever holds the audit key can rewrite history and sign it again; a
// checkpoint taken earlier, kept by an auditor or a witness, cannot be rewritten with it. Recomputing the tree
// over the export's first `size` events must give the checkpoint's root. Pure: the offline verifier uses it.
import type { JsonWebKey } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { ExportedEvent } from './manifest.js';
import { auditLeafHash, MemoryTree, rootAt } from './merkle.js';
import { checkpointSignedBy, type Checkpoint } from './tlog-note.js';

export type CheckpointMatch = { ok: true; size: number; origin: string } | { ok: false; reason: string };

/**
 * The tree head of a signed checkpoint (the note itself, or GET /api/audit/checkpoint's JSON holding it),
 * once one of the pinned audit keys has signed it under its origin.
 */
export function pinnedCheckpoint(text: string, keys: readonly JsonWebKey[]) {
  const trimmed = text.trimStart();
  const note = trimmed.startsWith('{') ? (JSON.parse(trimmed) as { note?: unknown }).note : text;
  if (typeof note !== 'string') throw new Error('no signed checkpoint note in it');
  return checkpointSignedBy(note, keys);
}

/** Recomputes the tree over an unfiltered NDJSON export and compares it with the checkpoint. */
export async function matchExportToCheckpoint(
  file: string,
  checkpointText: string,
  keys: readonly JsonWebKey[],
): Promise<CheckpointMatch> {
  let head: Checkpoint;
  try {
    head = pinnedCheckpoint(checkpointText, keys);
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
  const tree = new MemoryTree();
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  for await (const line of lines) {
    if (tree.size === head.size) break;
    const event = JSON.parse(line) as ExportedEvent & { type?: string };
    if (event.type === 'manifest') break;
    if (event.seq !== tree.size + 1)
      return {
        ok: false,
        reason: 'only an unfiltered NDJSON export, from seq 1, can be matched to a checkpoint',
      };
    tree.append(auditLeafHash(event));
  }
  lines.close();
  if (tree.size < head.size)
    return {
      ok: false,
      reason: `the export ends at seq ${tree.size}, before the checkpoint's size ${head.size}`,
    };
  if (!(await rootAt(tree, head.size)).equals(head.root)) {
    return {
      ok: false,
      reason: `its first ${head.size} events do not give the root of the signed checkpoint: the log was rewritten`,
    };
  }
  return { ok: true, size: head.size, origin: head.origin };
}
