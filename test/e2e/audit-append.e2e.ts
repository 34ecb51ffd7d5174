import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { DataSource, EntityManager } from 'typeorm';
import { AuditAction } from '../../libs/audit/audit-actions.js';
import { hasPendingAuditEvents, lockChainHead } from '../../libs/audit/audit-flush.js';
import {
  appendAuditEvent,
  flushAuditEvents,
  SYSTEM_ACTOR,
  toChainedEvent,
} from '../../libs/audit/audit-log.js';
import { sequencePendingAuditEvents } from '../../libs/audit/audit-sequencer.js';
import { GENESIS_HASH, verifyChain } from '../../libs/audit/chain.js';
import { appendCheckpoint } from '../../libs/audit/checkpoint-log.js';
import { parseCheckpointData } from '../../libs/audit/checkpoint.js';
import type { AuditEventEntity } from '../../libs/db/index.js';
import { createDataSource, runMigrations } from '../../libs/db/data-source.js';
import { createDatabase, dropDatabase } from '../../libs/devstack/databases.js';

// Real PostgreSQL: events are written into audit_pending at COMMIT, without any shared lock, and chained by the
// sequencer (one writer, under the chain's advisory lock) before the committer's transaction() resolves.
const adminUrl = process.env.E2E_PG_ADMIN_URL ?? '';
const name = `audit_append_${randomBytes(4).toString('hex')}`;
let databaseUrl: string;
let dataSource: DataSource;

function append(manager: EntityManager, subjectId: string): Promise<void> {
  return appendAuditEvent(manager, {
    actorId: SYSTEM_ACTOR,
    action: AuditAction.SessionEnded,
    subjectType: 'test',
    subjectId,
    data: { reason: 'logout' },
  });
}

async function storedEvents(): Promise<AuditEventEntity[]> {
  return (await dataSource.query(
    `SELECT seq, at, actor_id AS "actorId", action, subject_type AS "subjectType", subject_id AS "subjectId",
            request_id AS "requestId", data, prev_hash AS "prevHash", hash
       FROM audit_events ORDER BY seq`,
  )) as AuditEventEntity[];
}

async function subjects(): Promise<string[]> {
  return (await storedEvents()).map((event) => event.subjectId);
}

async function pendingSubjects(): Promise<string[]> {
  const rows = (await dataSource.query('SELECT subject_id FROM audit_pending ORDER BY batch, ord')) as Array<{
    subject_id: string;
  }>;
  return rows.map((row) => row.subject_id);
}

/** What a process that committed its events and stopped before chaining them leaves: one batch. */
async function leavePending(subjectIds: string[]): Promise<void> {
  await dataSource.query(
    `WITH drawn AS (SELECT nextval('audit_pending_batch_seq') AS batch)
     INSERT INTO audit_pending (batch, ord, actor_id, action, subject_type, subject_id, data)
     SELECT drawn.batch, left_behind.ord, $2, $3, 'test', left_behind.subject_id, '{"reason": "logout"}'
       FROM drawn, unnest($1::text[]) WITH ORDINALITY AS left_behind (subject_id, ord)`,
    [subjectIds, SYSTEM_ACTOR, AuditAction.SessionEnded],
  );
}

/** Polls PostgreSQL until `check` holds, for at most 10 s. */
async function waitUntil(check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('Timed out waiting for the database');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function expectVerifiedChain(stored: AuditEventEntity[]): void {
  expect(verifyChain(stored.map(toChainedEvent), GENESIS_HASH)).toBeNull();
  expect(stored.map((event) => Number(event.seq))).toEqual(stored.map((_, index) => index + 1));
}

beforeAll(async () => {
  databaseUrl = await createDatabase(adminUrl, name);
  dataSource = createDataSource(databaseUrl, { poolSize: 20 });
  await dataSource.initialize();
  await runMigrations(dataSource);
});

afterAll(async () => {
  await dataSource?.destroy();
  await dropDatabase(adminUrl, name);
});

describe('appendAuditEvent', () => {
  it('writes nothing and leaves the head unlocked until the transaction commits', async () => {
    await dataSource.transaction(async (manager) => {
      await append(manager, 'a1');
      await append(manager, 'a2');
      const [{ count }] = (await manager.query('SELECT count(*)::int AS count FROM audit_events')) as Array<{
        count: number;
      }>;
      expect(count).toBe(0);
      // Another connection can take the head now: this transaction does not hold it yet.
      const other = await dataSource.transaction((peer) =>
        peer.query('SELECT seq FROM audit_chain_head WHERE id = 1 FOR UPDATE NOWAIT'),
      );
      expect(other).toHaveLength(1);
    });
    expect(await subjects()).toEqual(['a1', 'a2']);
  });

  it('writes nothing for a rolled-back transaction, and nothing of it later', async () => {
    const before = await subjects();
    await expect(
      dataSource.transaction(async (manager) => {
        await append(manager, 'lost');
        throw new Error('refused');
      }),
    ).rejects.toThrow('refused');
    await dataSource.transaction((manager) => append(manager, 'after-rollback'));
    expect(await subjects()).toEqual([...before, 'after-rollback']);
  });

  it('drops the events of a rolled-back savepoint and keeps those of a released one', async () => {
    const before = await subjects();
    await dataSource.transaction(async (manager) => {
      await append(manager, 'outer');
      await manager.transaction((inner) => append(inner, 'released'));
      await expect(
        manager.transaction(async (inner) => {
          await append(inner, 'rolled-back');
          throw new Error('inner refused');
        }),
      ).rejects.toThrow('inner refused');
      await append(manager, 'outer-again');
    });
    expect(await subjects()).toEqual([...before, 'outer', 'released', 'outer-again']);
  });

  it('writes at once on flushAuditEvents, returning the stored events, and nothing twice', async () => {
    const written = await dataSource.transaction(async (manager) => {
      await append(manager, 'flushed');
      const flushed = await flushAuditEvents(manager);
      expect(hasPendingAuditEvents(manager)).toBe(false);
      const [row] = (await manager.query('SELECT hash FROM audit_events WHERE seq = $1', [
        flushed[0].seq,
      ])) as Array<{ hash: Buffer }>;
      expect(row.hash).toEqual(flushed[0].hash);
      await append(manager, 'after-flush');
      return flushed;
    });
    const stored = await storedEvents();
    expect(stored.at(-2)?.seq).toBe(written[0].seq);
    expect(stored.at(-1)?.subjectId).toBe('after-flush');
  });

  it('keeps one linear, verifiable chain under 16 concurrent transactions of 2 events', async () => {
    await Promise.all(
      Array.from({ length: 16 }, (_, client) =>
        Promise.all(
          Array.from({ length: 5 }, () =>
            dataSource.transaction(async (manager) => {
              await append(manager, `c${client}-first`);
              await append(manager, `c${client}-second`);
            }),
          ),
        ),
      ),
    );
    const stored = await storedEvents();
    expect(verifyChain(stored.map(toChainedEvent), GENESIS_HASH)).toBeNull();
    const times = stored.map((event) => event.at.getTime());
    expect(times).toEqual([...times].sort((a, b) => a - b));
    const [head] = (await dataSource.query('SELECT seq, hash FROM audit_chain_head')) as Array<{
      seq: string;
      hash: Buffer;
    }>;
    expect(head.seq).toBe(stored.at(-1)?.seq);
    expect(head.hash).toEqual(stored.at(-1)?.hash);
    // A transaction's two events are adjacent: its batch is written in one statement under the head lock.
    for (let index = stored.length - 160; index < stored.length; index += 2) {
      expect(stored[index + 1].subjectId).toBe(stored[index].subjectId.replace('first', 'second'));
    }
  });

  it('refuses an append outside a transaction', async () => {
    await expect(append(dataSource.manager, 'nowhere')).rejects.toThrow('inside a transaction');
  });
});

describe('the chain sequencer', () => {
  it('commits without the chain lock, and the caller resumes once its events are chained', async () => {
    const holder = dataSource.createQueryRunner();
    await holder.connect();
    await holder.startTransaction();
    await lockChainHead(holder.manager);
    let resolved = false;
    const committing = dataSource
      .transaction((manager) => append(manager, 'while-held'))
      .then(() => {
        resolved = true;
      });
    // Its COMMIT did not wait for the chain: the event is committed in audit_pending while the lock is held.
    await waitUntil(async () => (await pendingSubjects()).includes('while-held'));
    expect(await subjects()).not.toContain('while-held');
    expect(resolved).toBe(false);
    await holder.commitTransaction();
    await holder.release();
    await committing;
    expect((await subjects()).at(-1)).toBe('while-held');
    expect(await pendingSubjects()).toEqual([]);
  });

  it('leaves nothing pending or chained for a rolled-back transaction', async () => {
    const before = await subjects();
    await expect(
      dataSource.transaction(async (manager) => {
        await append(manager, 'rolled-back');
        throw new Error('refused');
      }),
    ).rejects.toThrow('refused');
    expect(await pendingSubjects()).toEqual([]);
    expect(await subjects()).toEqual(before);
  });

  it('chains the events a stopped process left pending, batch by batch in order (worker sweep, broker start)', async () => {
    const before = await subjects();
    await leavePending(['crash-1', 'crash-2']);
    await leavePending(['crash-3']);
    expect(await subjects()).toEqual(before);
    expect(await sequencePendingAuditEvents(dataSource)).toBe(3);
    expect(await subjects()).toEqual([...before, 'crash-1', 'crash-2', 'crash-3']);
    expect(await pendingSubjects()).toEqual([]);
    expectVerifiedChain(await storedEvents());
    expect(await sequencePendingAuditEvents(dataSource)).toBe(0);
  });

  it('flushes after everything committed before it, and a checkpoint signs the event right before its own', async () => {
    await leavePending(['left-before-flush']);
    const [flushed] = await dataSource.transaction(async (manager) => {
      await append(manager, 'flushed');
      return flushAuditEvents(manager);
    });
    expect((await subjects()).slice(-2)).toEqual(['left-before-flush', 'flushed']);
    expect(flushed.seq).toBe((await storedEvents()).at(-1)?.seq);

    await leavePending(['left-before-checkpoint']);
    const { privateKey } = generateKeyPairSync('ed25519');
    const result = await appendCheckpoint(dataSource, {
      currentKey: async () => ({ kid: 'test', privateKey }),
    });
    expect(result.status).toBe('written');
    const stored = await storedEvents();
    expect(stored.at(-2)?.subjectId).toBe('left-before-checkpoint');
    const checkpoint = parseCheckpointData(stored.at(-1)?.data ?? {});
    expect(checkpoint).toMatchObject({ seq: Number(stored.at(-2)?.seq) });
    expectVerifiedChain(stored);
  });

  it('keeps one gap-free, verifiable chain with committers in three processes, each reading its own events', async () => {
    const processes = await Promise.all(
      Array.from({ length: 3 }, async () => createDataSource(databaseUrl, { poolSize: 4 }).initialize()),
    );
    try {
      await Promise.all(
        processes.flatMap((process, index) =>
          Array.from({ length: 8 }, async (_, client) => {
            for (let round = 0; round < 3; round++) {
              const subjectId = `p${index}-c${client}-r${round}`;
              await process.transaction(async (manager) => {
                await append(manager, `${subjectId}-first`);
                await append(manager, `${subjectId}-second`);
              });
              const [{ count }] = (await process.query(
                'SELECT count(*)::int AS count FROM audit_events WHERE subject_id LIKE $1',
                [`${subjectId}-%`],
              )) as Array<{ count: number }>;
              expect(count).toBe(2);
            }
          }),
        ),
      );
    } finally {
      await Promise.all(processes.map((process) => process.destroy()));
    }
    const stored = await storedEvents();
    expectVerifiedChain(stored);
    expect(await pendingSubjects()).toEqual([]);
    const mine = stored.filter((event) => /^p\d-c\d-r\d-/.test(event.subjectId));
    expect(mine).toHaveLength(3 * 8 * 3 * 2);
    // A transaction's two events stay adjacent: one batch, in order.
    for (const [index, event] of stored.entries()) {
      if (event.subjectId.endsWith('-first') && event.subjectId.startsWith('p')) {
        expect(stored[index + 1].subjectId).toBe(event.subjectId.replace('first', 'second'));
      }
    }
  });
});
