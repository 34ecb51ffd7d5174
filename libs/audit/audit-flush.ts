import type {
  DataSource,
  EntityManager,
  EntitySubscriberInterface,
  QueryRunner,
  TransactionCommitEvent,
  TransactionRollbackEvent,
} from 'typeorm';
import { AuditEventEntity } from '../db/index.js';
import type { StorableAuditInput } from './audit-log.js';
import { chainHash, type ChainedEvent } from './chain.js';

// A transaction's audit events wait here, keyed on its query runner, until just before its COMMIT: then one
// statement locks the chain head (and reads the clock), the events are hashed here, and one more statement
// inserts them and moves the head. The head is held for those two round trips and the COMMIT, never across
// the transaction's own work (DESIGN §4.1).

interface Pending {
  /** The transaction depth (1, or deeper inside savepoints) the event was appended at. */
  depth: number;
  event: StorableAuditInput;
}

const pending = new WeakMap<QueryRunner, Pending[]>();

/** TypeORM's nesting depth of the query runner's transaction (1 outside any savepoint). */
function depthOf(queryRunner: QueryRunner): number {
  const depth = (queryRunner as unknown as { transactionDepth?: unknown }).transactionDepth;
  // A TypeORM that no longer keeps the depth must fail here, not lose events at a savepoint.
  if (typeof depth !== 'number') throw new Error('The query runner does not expose its transaction depth');
  return depth;
}

/** Writes pending events before COMMIT; forgets those of a rolled-back transaction or savepoint. */
class AuditFlushSubscriber implements EntitySubscriberInterface {
  async beforeTransactionCommit({ queryRunner }: TransactionCommitEvent): Promise<void> {
    const depth = depthOf(queryRunner);
    if (depth === 1) {
      await writePending(queryRunner);
      return;
    }
    // A released savepoint's events belong to the enclosing level from now on.
    for (const item of pending.get(queryRunner) ?? []) if (item.depth === depth) item.depth = depth - 1;
  }

  beforeTransactionRollback({ queryRunner }: TransactionRollbackEvent): void {
    const depth = depthOf(queryRunner);
    const kept = (pending.get(queryRunner) ?? []).filter((item) => item.depth < depth);
    if (kept.length > 0) pending.set(queryRunner, kept);
    else pending.delete(queryRunner);
  }
}

const flusher = new AuditFlushSubscriber();

/** Every data source that appends writes its events at commit: the hook is installed by the first append. */
function installFlush(dataSource: DataSource): void {
  if (!dataSource.subscribers.includes(flusher)) dataSource.subscribers.push(flusher);
}

/** Queues an event to be chained and written just before the transaction of `manager` commits. */
export function deferAuditEvent(manager: EntityManager, event: StorableAuditInput): void {
  const queryRunner = manager.queryRunner;
  if (!queryRunner?.isTransactionActive) throw new Error('appendAuditEvent must run inside a transaction');
  installFlush(queryRunner.connection);
  const list = pending.get(queryRunner) ?? [];
  list.push({ depth: depthOf(queryRunner), event });
  pending.set(queryRunner, list);
}

/**
 * Chains and writes the events queued in the transaction of `manager` now rather than at commit, for a
 * caller that reads them back in the same transaction; returns them as stored.
 */
export async function flushAuditEvents(manager: EntityManager): Promise<AuditEventEntity[]> {
  if (!manager.queryRunner?.isTransactionActive)
    throw new Error('flushAuditEvents must run inside a transaction');
  return writePending(manager.queryRunner);
}

/** Whether events are queued and not yet written (for tests). */
export function hasPendingAuditEvents(manager: EntityManager): boolean {
  return manager.queryRunner !== undefined && (pending.get(manager.queryRunner)?.length ?? 0) > 0;
}

// 10 parameters an event; PostgreSQL takes at most 65,535 in one statement.
const EVENTS_PER_STATEMENT = 1000;

async function writePending(queryRunner: QueryRunner): Promise<AuditEventEntity[]> {
  const queued = pending.get(queryRunner) ?? [];
  pending.delete(queryRunner);
  if (queued.length === 0) return [];
  // The clock is read as the head is locked: after a wait, the re-read row is projected again, so `at`
  // follows the previous event's commit (now() would be the transaction's start).
  const [head] = (await queryRunner.query(
    'SELECT seq, hash, clock_timestamp() AS now FROM audit_chain_head WHERE id = 1 FOR UPDATE',
  )) as Array<{ seq: string; hash: Buffer; now: Date }>;
  const events = chain(head, queued);
  for (let start = 0; start < events.length; start += EVENTS_PER_STATEMENT) {
    await insertAndMoveHead(queryRunner, events.slice(start, start + EVENTS_PER_STATEMENT));
  }
  return events;
}

/** Hashes the queued events onto the head: consecutive seqs, one `at` (millisecond precision, as stored). */
function chain(head: { seq: string; hash: Buffer; now: Date }, queued: Pending[]): AuditEventEntity[] {
  const at = new Date(head.now.getTime());
  let seq = Number(head.seq);
  let prevHash = head.hash;
  return queued.map(({ event }) => {
    seq += 1;
    const body: ChainedEvent = { seq, at: at.toISOString(), ...event, prevHash: prevHash.toString('hex') };
    const hash = chainHash(prevHash, body);
    const stored = Object.assign(new AuditEventEntity(), { ...event, seq: String(seq), at, prevHash, hash });
    prevHash = hash;
    return stored;
  });
}

/** One statement: the events' rows, and the head moved to the last of them. */
async function insertAndMoveHead(queryRunner: QueryRunner, events: AuditEventEntity[]): Promise<void> {
  const values: unknown[] = [];
  const rows = events.map((event) => {
    const fields = [
      event.seq,
      event.at,
      event.actorId,
      event.action,
      event.subjectType,
      event.subjectId,
      event.requestId,
      event.data,
      event.prevHash,
      event.hash,
    ];
    const placeholders = fields.map((field) => `$${values.push(field)}`);
    return `(${placeholders.join(', ')})`;
  });
  const last = events[events.length - 1];
  const seqParam = values.push(last.seq);
  const hashParam = values.push(last.hash);
  await queryRunner.query(
    `WITH appended AS (
       INSERT INTO audit_events (seq, at, actor_id, action, subject_type, subject_id, request_id, data, prev_hash, hash)
       VALUES ${rows.join(', ')})
     UPDATE audit_chain_head SET seq = $${seqParam}, hash = $${hashParam} WHERE id = 1`,
    values,
  );
}
