// Witness cosignatures of the log's checkpoints (issue 22), kept in PostgreSQL: after the worker signs a
// checkpoint it submits it to each configured witness with a consistency proof from the last size that
// witness cosigned, verifies the cosignature line it gets back and stores it (audit_tlog_cosignatures,
// append-only). A witness that is down or refuses never stops a checkpoint: it is tried again next time.
import type { DataSource, EntityManager } from 'typeorm';
import { addSignatureLines } from './tlog-note.js';
import { consistencyOf, integratedSize, type TlogCheckpoint } from './merkle-log.js';
import {
  addCheckpointBody,
  postAddCheckpoint,
  witnessCosignatures,
  type Witness,
  type WitnessAnswer,
} from './witness-client.js';

type Queryable = Pick<DataSource | EntityManager, 'query'>;

/** What submitting one checkpoint to one witness came to. */
export type WitnessOutcome =
  { status: 'cosigned'; oldSize: number } | { status: 'already' } | { status: 'failed'; reason: string };

/** The cosignature lines stored for the checkpoint of `size`, by witness name. */
export async function storedCosignatures(db: Queryable, size: number): Promise<string[]> {
  const rows = (await db.query(`SELECT line FROM audit_tlog_cosignatures WHERE size = $1 ORDER BY witness`, [
    String(size),
  ])) as Array<{ line: string }>;
  return rows.map((row) => row.line);
}

/** The checkpoint with the witness cosignatures stored for it added to its note. */
export async function withCosignatures(db: Queryable, checkpoint: TlogCheckpoint): Promise<TlogCheckpoint> {
  const lines = await storedCosignatures(db, checkpoint.size);
  return { ...checkpoint, note: addSignatureLines(checkpoint.note, lines) };
}

/** The largest size `witness` has cosigned for this log (0 when none): the `old` of the next submission. */
async function witnessedSize(db: Queryable, witness: string): Promise<number> {
  const [row] = (await db.query(
    `SELECT max(size)::text AS size FROM audit_tlog_cosignatures WHERE witness = $1`,
    [witness],
  )) as Array<{ size: string | null }>;
  return Number(row.size ?? 0);
}

async function alreadyCosigned(db: Queryable, size: number, witness: string): Promise<boolean> {
  const rows = (await db.query(`SELECT 1 FROM audit_tlog_cosignatures WHERE size = $1 AND witness = $2`, [
    String(size),
    witness,
  ])) as unknown[];
  return rows.length > 0;
}

/** One add-checkpoint call from `oldSize`, with the consistency proof the tree gives for it. */
async function submitFrom(
  db: Queryable,
  witness: Witness,
  checkpoint: TlogCheckpoint,
  oldSize: number,
  timeoutMs?: number,
): Promise<WitnessAnswer> {
  const { proof } = await consistencyOf(db, oldSize, checkpoint.size);
  return postAddCheckpoint(witness, addCheckpointBody(oldSize, proof, checkpoint.note), timeoutMs);
}

/**
 * Submits a stored checkpoint to one witness and stores its verified cosignature. A 409 (the witness knows
 * another size than ours) is retried once from the size it reports, when the tree can prove it.
 */
export async function submitToWitness(
  dataSource: DataSource,
  witness: Witness,
  checkpoint: TlogCheckpoint,
  timeoutMs?: number,
): Promise<WitnessOutcome> {
  const name = witness.verifier.name;
  if (await alreadyCosigned(dataSource, checkpoint.size, name)) return { status: 'already' };
  let oldSize = await witnessedSize(dataSource, name);
  if (oldSize > checkpoint.size) return { status: 'failed', reason: `it cosigned size ${oldSize} already` };
  let answer = await submitFrom(dataSource, witness, checkpoint, oldSize, timeoutMs);
  if (answer.status === 'conflict') {
    const integrated = await integratedSize(dataSource);
    if (answer.size > checkpoint.size || answer.size > integrated) {
      return {
        status: 'failed',
        reason: `it holds size ${answer.size}, past this checkpoint's ${checkpoint.size}: a fork or a lost tree?`,
      };
    }
    oldSize = answer.size;
    answer = await submitFrom(dataSource, witness, checkpoint, oldSize, timeoutMs);
  }
  if (answer.status === 'conflict') return { status: 'failed', reason: `409 again (size ${answer.size})` };
  if (answer.status === 'refused') return { status: 'failed', reason: answer.reason };
  const [line] = witnessCosignatures(checkpoint.note, answer.lines, witness);
  await dataSource.query(
    `INSERT INTO audit_tlog_cosignatures (size, witness, line) VALUES ($1, $2, $3)
     ON CONFLICT (size, witness) DO NOTHING`,
    [String(checkpoint.size), name, line],
  );
  return { status: 'cosigned', oldSize };
}

/** Submits the checkpoint to every witness at once; a witness that throws (down, timeout) is a failure. */
export async function submitToWitnesses(
  dataSource: DataSource,
  witnesses: readonly Witness[],
  checkpoint: TlogCheckpoint,
  timeoutMs?: number,
): Promise<Record<string, WitnessOutcome>> {
  const outcomes = await Promise.all(
    witnesses.map((witness) =>
      submitToWitness(dataSource, witness, checkpoint, timeoutMs).catch((error: unknown): WitnessOutcome => ({
        status: 'failed',
        reason: describe(error),
      })),
    ),
  );
  return Object.fromEntries(witnesses.map((witness, i) => [witness.name, outcomes[i]]));
}

/** fetch's "fetch failed" hides the cause (ECONNREFUSED, timeout): name both. */
function describe(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const cause = (error as { cause?: { message?: string; code?: string } }).cause;
  return cause ? `${message} (${cause.code ?? cause.message})` : message;
}
