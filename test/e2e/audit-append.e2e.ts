import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { DataSource, EntityManager } from 'typeorm';
import { AuditAction } from '../../libs/audit/audit-actions.js';
import { hasPendingAuditEvents } from '../../libs/audit/audit-flush.js';
import {
  appendAuditEvent,
  flushAuditEvents,
  SYSTEM_ACTOR,
  toChainedEvent,
} from '../../libs/audit/audit-log.js';
import { GENESIS_HASH, verifyChain } from '../../libs/audit/chain.js';
import type { AuditEventEntity } from '../../libs/db/index.js';
import { createDataSource, runMigrations } from '../../libs/db/data-source.js';
import { createDatabase, dropDatabase } from '../../libs/devstack/databases.js';

// Real PostgreSQL: events are chained and written just before COMMIT, under the head lock taken then.
const adminUrl = process.env.E2E_PG_ADMIN_URL ?? '';
const name = `audit_append_${randomBytes(4).toString('hex')}`;
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

beforeAll(async () => {
  dataSource = createDataSource(await createDatabase(adminUrl, name), { poolSize: 20 });
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
