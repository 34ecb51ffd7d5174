// The log's side of C2SP tlog-witness (c2sp.org/tlog-witness, issue 22): `POST <prefix>/add-checkpoint` with
// the witness's last size, a consistency proof from it and the signed checkpoint; the answer is cosignature
// lines (200), the witness's own size (409, text/x.tlog.size) or a refusal. No database here.
import { verifyNote, type NoteVerifier } from './tlog-note.js';

/** A configured witness: its submission prefix and the cosignature key it signs with. */
export interface Witness {
  name: string;
  url: string;
  verifier: NoteVerifier;
}

/** How long one add-checkpoint call may take before the witness counts as down. */
export const WITNESS_TIMEOUT_MS = 10_000;
/** The protocol's limit on consistency proof lines. */
const MAX_PROOF_LINES = 63;
/** A cosignature answer is a few lines; anything much longer is not one. */
const MAX_ANSWER_BYTES = 64 * 1024;

/** The add-checkpoint request body: `old <size>`, proof lines, a blank line, the signed checkpoint. */
export function addCheckpointBody(oldSize: number, proof: readonly string[], note: string): string {
  if (proof.length > MAX_PROOF_LINES) throw new Error(`a proof of ${proof.length} hashes is too long`);
  return `old ${oldSize}\n${proof.map((hash) => `${hash}\n`).join('')}\n${note}`;
}

export type WitnessAnswer =
  | { status: 'cosigned'; lines: string[] }
  | { status: 'conflict'; size: number }
  | { status: 'refused'; reason: string };

/** Sends one add-checkpoint request; a network failure or timeout throws. */
export async function postAddCheckpoint(
  witness: Witness,
  body: string,
  timeoutMs: number = WITNESS_TIMEOUT_MS,
): Promise<WitnessAnswer> {
  const response = await fetch(`${witness.url.replace(/\/$/, '')}/add-checkpoint`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain; charset=utf-8' },
    body,
    redirect: 'error',
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await response.text();
  if (text.length > MAX_ANSWER_BYTES) return { status: 'refused', reason: 'the answer is too long' };
  if (response.status === 409 && response.headers.get('content-type') === 'text/x.tlog.size') {
    const size = /^(0|[1-9][0-9]*)\n$/.exec(text);
    if (size && Number.isSafeInteger(Number(size[1]))) return { status: 'conflict', size: Number(size[1]) };
    return { status: 'refused', reason: `409 with a malformed size "${text.trim()}"` };
  }
  if (response.status !== 200) {
    return { status: 'refused', reason: `HTTP ${response.status}: ${text.trim().slice(0, 200)}` };
  }
  return { status: 'cosigned', lines: text.split('\n').filter((line) => line.length > 0) };
}

/**
 * The lines of an add-checkpoint answer that are the witness's valid cosignature of `note`; lines of other
 * keys are ignored (tlog-witness: the client MUST ignore unknown keys). Throws when the witness's own line
 * does not verify, or when there is none.
 */
export function witnessCosignatures(note: string, lines: readonly string[], witness: Witness): string[] {
  const ours = lines.filter((line) => line.startsWith(`\u2014 ${witness.verifier.name} `));
  const valid = ours.filter((line) => {
    const verified = verifyNote(`${note}${line}\n`, [witness.verifier]);
    return verified.cosignedBy.some((entry) => entry.name === witness.verifier.name);
  });
  if (valid.length === 0) throw new Error(`witness ${witness.name} answered without its cosignature`);
  return valid;
}
