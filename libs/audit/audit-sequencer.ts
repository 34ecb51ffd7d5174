import { Logger } from '@nestjs/common';
import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { AuditEventEntity } from '../db/index.js';
import type { StorableAuditInput } from './audit-log.js';
import { chainHash, type ChainedEvent } from './chain.js';

// The one writer of the hash chain (issue 22 point 1). State-change transactions commit their events into
// audit_pending without locking anything shared (audit-flush.ts); the sequencer, under a transaction-scoped
// advisory lock, takes them in batches, hashes them onto the chain head, inserts them into audit_events and
// moves the head, in one transaction. The lock is always taken before the head row, on every path.

type Queryable = Pick<QueryRunner | EntityManager | DataSource, 'query'>;

const logger = new Logger('AuditSequencer');

/** The chain's transaction-scoped advisory lock ("jito", "chan"): one writer of audit_events at a time. */
const CHAIN_LOCK = [0x6a69746f, 0x6368616e];
/** Pending events chained per sequencer transaction (whole transactions' batches, so it may be a few more). */
export const PENDING_BATCH = 5_000;
// 10 parameters an event; PostgreSQL takes at most 65,535 in one statement.
const EVENTS_PER_STATEMENT = 1000;

/** The chain head as locked, with the clock read after the lock (`at` of what is chained under it). */
export interface ChainHead {
  seq: string;
  hash: Buffer;
  now: Date;
}

/**
 * Takes the chain lock and the head row for the rest of the transaction, in that order (every writer of the
 * chain does), and reads the clock once they are held: after a wait, `at` follows the previous writer's commit.
 */
export async function lockChainHeadRow(db: Queryable): Promise<ChainHead> {
  await db.query('SELECT pg_advisory_xact_lock($1, $2)', CHAIN_LOCK);
  const [head] = (await db.query(
    'SELECT seq, hash, clock_timestamp() AS now FROM audit_chain_head WHERE id = 1 FOR UPDATE',
  )) as ChainHead[];
  return head;
}

/**
 * Deletes and returns committed pending events in chain order: every batch up to the one holding the
 * `limit`-th event (all of them when limit is null). Only a holder of the chain lock calls it.
 */
export async function takePendingEvents(db: Queryable, limit: number | null): Promise<StorableAuditInput[]> {
  const bound =
    limit === null
      ? ''
      : `WHERE batch <= coalesce(
           (SELECT batch FROM audit_pending ORDER BY batch, ord OFFSET ${limit - 1} LIMIT 1),
           9223372036854775807)`;
  return (await db.query(
    `WITH taken AS (DELETE FROM audit_pending ${bound}
                    RETURNING batch, ord, actor_id, action, subject_type, subject_id, request_id, data)
     SELECT actor_id AS "actorId", action, subject_type AS "subjectType", subject_id AS "subjectId",
            request_id AS "requestId", data
       FROM taken ORDER BY batch, ord`,
  )) as StorableAuditInput[];
}

/** Hashes events onto the head: consecutive seqs, one `at` (millisecond precision, as stored). */
export function chainEvents(head: ChainHead, events: StorableAuditInput[]): AuditEventEntity[] {
  const at = new Date(head.now.getTime());
  let seq = Number(head.seq);
  let prevHash = head.hash;
  return events.map((event) => {
    seq += 1;
    const body: ChainedEvent = { seq, at: at.toISOString(), ...event, prevHash: prevHash.toString('hex') };
    const hash = chainHash(prevHash, body);
    const stored = Object.assign(new AuditEventEntity(), { ...event, seq: String(seq), at, prevHash, hash });
    prevHash = hash;
    return stored;
  });
}

/** Inserts chained events and moves the head to the last of them (the caller holds the chain lock). */
export async function writeChainedEvents(db: Queryable, events: AuditEventEntity[]): Promise<void> {
  for (let start = 0; start < events.length; start += EVENTS_PER_STATEMENT) {
    await insertAndMoveHead(db, events.slice(start, start + EVENTS_PER_STATEMENT));
  }
}

/** One statement: the events' rows, and the head moved to the last of them. */
async function insertAndMoveHead(db: Queryable, events: AuditEventEntity[]): Promise<void> {
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
  await db.query(
    `WITH appended AS (
       INSERT INTO audit_events (seq, at, actor_id, action, subject_type, subject_id, request_id, data, prev_hash, hash)
       VALUES ${rows.join(', ')})
     UPDATE audit_chain_head SET seq = $${seqParam}, hash = $${hashParam} WHERE id = 1`,
    values,
  );
}

/** One sequencer step inside the caller's transaction: lock, take a batch, chain it; how many were chained. */
async function sequenceBatch(db: Queryable): Promise<number> {
  const head = await lockChainHeadRow(db);
  const taken = await takePendingEvents(db, PENDING_BATCH);
  if (taken.length > 0) await writeChainedEvents(db, chainEvents(head, taken));
  return taken.length;
}

/**
 * Chains every pending event committed so far, a batch per transaction; how many. For the worker's sweep and
 * the broker's start: events accepted by a process that stopped before sequencing them.
 */
export async function sequencePendingAuditEvents(dataSource: DataSource): Promise<number> {
  let total = 0;
  for (;;) {
    const chained = await dataSource.transaction((manager) => sequenceBatch(manager));
    total += chained;
    if (chained < PENDING_BATCH) return total;
  }
}

/** The same on a connection outside any TypeORM transaction (a committer's, just after its COMMIT). */
async function sequenceOnConnection(queryRunner: QueryRunner): Promise<number> {
  let total = 0;
  for (;;) {
    await queryRunner.query('BEGIN');
    let chained: number;
    try {
      chained = await sequenceBatch(queryRunner);
      await queryRunner.query('COMMIT');
    } catch (error) {
      await queryRunner.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
    total += chained;
    if (chained < PENDING_BATCH) return total;
  }
}

/**
 * Committers of one process share sequencer runs: a run serves every committer that asked before it began, on
 * the connection of the first of them (each still holds its own, so a run never waits for the pool), and those
 * that ask during a run share the next one. So a process has at most one backend on the chain lock.
 */
class CommitSequencer {
  private running = false;
  private waiting: Array<{ queryRunner: QueryRunner; done: () => void }> = [];

  /** Resolves once every event committed before the call is chained (or a failed run was logged). */
  sequenced(queryRunner: QueryRunner): Promise<void> {
    return new Promise((done) => {
      this.waiting.push({ queryRunner, done });
      this.next();
    });
  }

  private next(): void {
    if (this.running || this.waiting.length === 0) return;
    this.running = true;
    const served = this.waiting.splice(0);
    sequenceOnConnection(served[0].queryRunner)
      .catch((error: unknown) => {
        // The events are committed in audit_pending: the next run, the worker's sweep or a start chains them.
        logger.error(`Audit events committed but not yet chained: ${(error as Error).message}`);
      })
      .finally(() => {
        for (const waiter of served) waiter.done();
        this.running = false;
        this.next();
      });
  }
}

const sequencers = new WeakMap<DataSource, CommitSequencer>();

/** Chains the events this connection has just committed (and any others pending) before returning. */
export function sequenceAfterCommit(queryRunner: QueryRunner): Promise<void> {
  const dataSource = queryRunner.connection;
  let sequencer = sequencers.get(dataSource);
  if (!sequencer) {
    sequencer = new CommitSequencer();
    sequencers.set(dataSource, sequencer);
  }
  return sequencer.sequenced(queryRunner);
}
