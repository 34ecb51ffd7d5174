// Which witnesses must have cosigned a checkpoint (issue 22): a verifier names the witnesses it knows by their
// tlog-cosignature vkeys and how many of them must have cosigned; a checkpoint with fewer valid cosignatures
// fails, naming the witnesses that are missing. Pure, on tlog-note alone, so the offline verifier can use it.
import { parseVkey, verifyNote, type NoteVerifier } from './tlog-note.js';

/** The witnesses a verifier knows and how many of them must have cosigned. */
export interface WitnessPolicy {
  witnesses: NoteVerifier[];
  threshold: number;
}

/** A policy from witness vkeys (type 0x04) and a threshold, all of them by default; throws with the reason. */
export function witnessPolicy(vkeys: readonly string[], threshold: number = vkeys.length): WitnessPolicy {
  if (vkeys.length === 0) throw new Error('name at least one witness vkey');
  const witnesses = vkeys.map((vkey) => {
    const verifier = parseVkey(vkey);
    if (verifier.type !== 0x04)
      throw new Error(`vkey ${verifier.name} is not a witness (cosignature/v1, type 0x04) key`);
    return verifier;
  });
  const names = witnesses.map((witness) => witness.name);
  const repeated = names.find((name, i) => names.indexOf(name) !== i);
  if (repeated !== undefined) throw new Error(`witness ${repeated} is named twice`);
  if (!Number.isSafeInteger(threshold) || threshold < 1 || threshold > witnesses.length)
    throw new Error(`the witness threshold must be between 1 and ${witnesses.length}`);
  return { witnesses, threshold };
}

export type WitnessCheck =
  { ok: true; cosignedBy: string[] } | { ok: false; reason: string; cosignedBy: string[]; missing: string[] };

/**
 * Counts the policy's witnesses whose cosignature on the note verifies. A cosignature by a known witness that
 * does not verify fails the note (signed-note §Verification); lines of unknown keys are ignored. The log's own
 * signature is not checked here (checkpointSignedBy does that).
 */
export function checkWitnesses(note: string, policy: WitnessPolicy): WitnessCheck {
  let cosigned: Set<string>;
  try {
    cosigned = new Set(verifyNote(note, policy.witnesses).cosignedBy.map((entry) => entry.name));
  } catch (error) {
    const reason = (error as Error).message;
    return { ok: false, reason, cosignedBy: [], missing: policy.witnesses.map((w) => w.name) };
  }
  const cosignedBy = policy.witnesses.map((w) => w.name).filter((name) => cosigned.has(name));
  const missing = policy.witnesses.map((w) => w.name).filter((name) => !cosigned.has(name));
  if (cosignedBy.length >= policy.threshold) return { ok: true, cosignedBy };
  const required = `${policy.threshold} of ${policy.witnesses.length}`;
  return {
    ok: false,
    reason:
      `${cosignedBy.length} witness cosignature(s), ${required} required: not cosigned by ` +
      missing.join(', '),
    cosignedBy,
    missing,
  };
}

/** The signed note of a checkpoint as saved: the note itself, or GET /api/audit/checkpoint's JSON holding it. */
export function checkpointNoteOf(text: string): string {
  const trimmed = text.trimStart();
  const note = trimmed.startsWith('{') ? (JSON.parse(trimmed) as { note?: unknown }).note : text;
  if (typeof note !== 'string') throw new Error('no signed checkpoint note in it');
  return note;
}

/** The witness check of a saved checkpoint (the note, or GET /api/audit/checkpoint's JSON), as one line. */
export function witnessedCheckpoint(
  text: string,
  policy: WitnessPolicy,
): { ok: true; line: string } | { ok: false; reason: string } {
  let check: WitnessCheck;
  try {
    check = checkWitnesses(checkpointNoteOf(text), policy);
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
  if (!check.ok) return { ok: false, reason: check.reason };
  return {
    ok: true,
    line:
      `cosigned by ${check.cosignedBy.join(', ')} ` +
      `(${policy.threshold} of ${policy.witnesses.length} required)`,
  };
}
