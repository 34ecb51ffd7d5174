import type {
  DataSource,
  EntityManager,
  EntitySubscriberInterface,
  QueryRunner,
  TransactionCommitEvent,
  TransactionRollbackEvent,
} from 'typeorm';
import type { AuditEventEntity } from '../db/index.js';
import type { StorableAuditInput } from './audit-log.js';
import {
  chainEvents,
  lockChainHeadRow,
  sequenceAfterCommit,
  takePendingEvents,
  writeChainedEvents,
  type ChainHead,
} from './audit-sequencer.js';

// A transaction's audit events wait here, keyed on its query runner, until just before its COMMIT: then one
// statement inserts them into audit_pending, which locks nothing shared, and they commit or roll back with the
// state change. Once COMMIT is done the process's sequencer chains them (audit-sequencer.ts), and the
// transaction's caller resumes only then, so it reads its own events in audit_events (DESIGN §9).
// A transaction that must read its events back before it commits takes the chain lock itself
// (flushAuditEvents): it then writes straight into the chain until it ends.

interface Pending {
  /** The transaction depth (1, or deeper inside savepoints) the event was appended at. */
  depth: number;
  event: StorableAuditInput;
}

const pending = new WeakMap<QueryRunner, Pending[]>();
/** Transactions holding the chain lock, with the depth they took it at (a rolled-back savepoint drops it). */
const chainHolders = new WeakMap<QueryRunner, number>();
/** Transactions that committed events into audit_pending: their caller waits for the sequencer. */
const awaitingSequencer = new WeakSet<QueryRunner>();
/** Data sources whose transactions chain their events at COMMIT, under the chain lock (chainAuditEventsAtCommit). */
const chainedAtCommit = new WeakSet<DataSource>();

/** TypeORM's nesting depth of the query runner's transaction (1 outside any savepoint). */
function depthOf(queryRunner: QueryRunner): number {
  const depth = (queryRunner as unknown as { transactionDepth?: unknown }).transactionDepth;
  // A TypeORM that no longer keeps the depth must fail here, not lose events at a savepoint.
  if (typeof depth !== 'number') throw new Error('The query runner does not expose its transaction depth');
  return depth;
}

/** Queues pending events before COMMIT, chains them after it; forgets those of a rollback. */
class AuditFlushSubscriber implements EntitySubscriberInterface {
  async beforeTransactionCommit({ queryRunner }: TransactionCommitEvent): Promise<void> {
    const depth = depthOf(queryRunner);
    if (depth === 1) {
      await writeAtCommit(queryRunner);
      return;
    }
    // A released savepoint's events (and chain lock) belong to the enclosing level from now on.
    for (const item of pending.get(queryRunner) ?? []) if (item.depth === depth) item.depth = depth - 1;
    if (chainHolders.get(queryRunner) === depth) chainHolders.set(queryRunner, depth - 1);
  }

  async afterTransactionCommit({ queryRunner }: TransactionCommitEvent): Promise<void> {
    if (depthOf(queryRunner) !== 0 || !awaitingSequencer.has(queryRunner)) return;
    awaitingSequencer.delete(queryRunner);
    await sequenceAfterCommit(queryRunner);
  }

  beforeTransactionRollback({ queryRunner }: TransactionRollbackEvent): void {
    const depth = depthOf(queryRunner);
    const kept = (pending.get(queryRunner) ?? []).filter((item) => item.depth < depth);
    if (kept.length > 0) pending.set(queryRunner, kept);
    else pending.delete(queryRunner);
    if ((chainHolders.get(queryRunner) ?? 0) >= depth) chainHolders.delete(queryRunner);
    if (depth === 1) awaitingSequencer.delete(queryRunner);
  }
}

const flusher = new AuditFlushSubscriber();

/** Every data source that appends writes its events at commit: the hook is installed by the first append. */
function installFlush(dataSource: DataSource): void {
  if (!dataSource.subscribers.includes(flusher)) dataSource.subscribers.push(flusher);
}

/** Queues an event to be written at the commit of the transaction of `manager`, and chained after it. */
export function deferAuditEvent(manager: EntityManager, event: StorableAuditInput): void {
  const queryRunner = manager.queryRunner;
  if (!queryRunner?.isTransactionActive) throw new Error('appendAuditEvent must run inside a transaction');
  installFlush(queryRunner.connection);
  const list = pending.get(queryRunner) ?? [];
  list.push({ depth: depthOf(queryRunner), event });
  pending.set(queryRunner, list);
}

/**
 * Takes the chain lock and head row for the rest of the transaction of `manager` and, the first time, chains
 * every pending event committed so far, so that the head returned follows everything accepted before it.
 * Appends of this transaction are then chained straight after the head. For the checkpoint and the step-up
 * lockout count, which must see the chain complete up to their own events.
 */
export async function lockChainHead(manager: EntityManager): Promise<ChainHead> {
  const queryRunner = manager.queryRunner;
  if (!queryRunner?.isTransactionActive) throw new Error('lockChainHead must run inside a transaction');
  installFlush(queryRunner.connection);
  const head = await lockChainHeadRow(queryRunner);
  if (chainHolders.has(queryRunner)) return head;
  chainHolders.set(queryRunner, depthOf(queryRunner));
  const committed = await takePendingEvents(queryRunner, null);
  if (committed.length === 0) return head;
  const events = chainEvents(head, committed);
  await writeChainedEvents(queryRunner, events);
  const last = events[events.length - 1];
  return { seq: last.seq, hash: last.hash, now: head.now };
}

/**
 * Chains and writes the events queued in the transaction of `manager` now rather than after commit, for a
 * caller that reads them back in the same transaction; returns them as stored. The transaction holds the
 * chain lock from here to its end (lockChainHead), as every append did before issue 22.
 */
export async function flushAuditEvents(manager: EntityManager): Promise<AuditEventEntity[]> {
  const head = await lockChainHead(manager);
  const queryRunner = manager.queryRunner!;
  const queued = pending.get(queryRunner) ?? [];
  pending.delete(queryRunner);
  if (queued.length === 0) return [];
  const events = chainEvents(
    head,
    queued.map((item) => item.event),
  );
  await writeChainedEvents(queryRunner, events);
  return events;
}

/** Whether events are queued and not yet written (for tests). */
export function hasPendingAuditEvents(manager: EntityManager): boolean {
  return manager.queryRunner !== undefined && (pending.get(manager.queryRunner)?.length ?? 0) > 0;
}

/**
 * Has the transactions of `dataSource` chain their events at COMMIT under the chain lock, as before issue 22,
 * instead of through audit_pending: a state change and its chained event then become visible together. For the
 * worker, whose few appends (revocations, expiries, sweeps) are observed by polling PostgreSQL, not by a caller.
 */
export function chainAuditEventsAtCommit(dataSource: DataSource): void {
  chainedAtCommit.add(dataSource);
}

/** At COMMIT: straight into the chain when the transaction holds it, else into audit_pending in one statement. */
async function writeAtCommit(queryRunner: QueryRunner): Promise<void> {
  if (chainHolders.has(queryRunner) || chainedAtCommit.has(queryRunner.connection)) {
    if (hasPendingAuditEvents(queryRunner.manager)) await flushAuditEvents(queryRunner.manager);
    chainHolders.delete(queryRunner);
    return;
  }
  const queued = (pending.get(queryRunner) ?? []).map((item) => item.event);
  pending.delete(queryRunner);
  if (queued.length === 0) return;
  // One batch number per transaction (a CTE with a volatile function runs once), `ord` its events' order.
  await queryRunner.query(
    `WITH drawn AS (SELECT nextval('audit_pending_batch_seq') AS batch)
     INSERT INTO audit_pending (batch, ord, actor_id, action, subject_type, subject_id, request_id, data)
     SELECT drawn.batch, queued.ord, queued.actor_id, queued.action, queued.subject_type, queued.subject_id,
            queued.request_id, queued.data
       FROM drawn,
            unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::jsonb[]) WITH ORDINALITY
              AS queued (actor_id, action, subject_type, subject_id, request_id, data, ord)`,
    [
      queued.map((event) => event.actorId),
      queued.map((event) => event.action),
      queued.map((event) => event.subjectType),
      queued.map((event) => event.subjectId),
      queued.map((event) => event.requestId),
      // As the driver sends a jsonb parameter: JSON.stringify, then parsed by PostgreSQL.
      queued.map((event) => JSON.stringify(event.data)),
    ],
  );
  awaitingSequencer.add(queryRunner);
}
