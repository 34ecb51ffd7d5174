import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import type { QueryRunner } from 'typeorm';
import { WindowOpened1764500000000 } from '../../libs/db/migrations/1764500000000-window-opened.js';
import { clientAs, enrollAll, PROJECT_ROOT, startStack, waitFor, type TestStack } from '../support/stack.js';

// The opening of a scheduled request's window is a column (issue 14), no longer read from the audit log;
// the migration fills it for windows opened before it, from their request.window-opened events.
const LIFECYCLE_POLICY_DIR = path.join(PROJECT_ROOT, 'test/fixtures/policies/lifecycle');

async function opened(stack: TestStack, requestId: string) {
  const { rows } = await stack.db.query(
    `SELECT r.window_opened_at AS "openedAt",
            (SELECT array_agg(e.at) FROM audit_events e
              WHERE e.request_id = r.id AND e.action = 'request.window-opened') AS "eventsAt"
       FROM elevation_requests r WHERE r.id = $1`,
    [requestId],
  );
  return rows[0] as { openedAt: Date | null; eventsAt: Date[] | null };
}

describe('window_opened_at (real PostgreSQL, Redis and worker)', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startStack({ policyDir: LIFECYCLE_POLICY_DIR, env: { SWEEP_INTERVAL_SECONDS: '1' } });
    await enrollAll(stack, ['alice', 'bob']);
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 60_000);

  it('is set once, with the event, when the window opens, and the migration backfills it from the event', async () => {
    const notBefore = new Date(Math.ceil(Date.now() / 1000) * 1000 + 2000);
    const created = await clientAs(stack, 'alice').post('/api/requests', {
      entitlementId: 'api-admin-token',
      durationSeconds: 600,
      justification: 'window-opened e2e',
      notBefore: notBefore.toISOString(),
    });
    expect(created.status).toBe(201);
    const requestId = created.body.id as string;
    expect((await clientAs(stack, 'bob').decide(requestId, 'approve')).body.state).toBe('APPROVED');
    expect(await opened(stack, requestId)).toEqual({ openedAt: null, eventsAt: null });

    const first = await waitFor(
      async () => {
        const row = await opened(stack, requestId);
        return row.openedAt ? row : undefined;
      },
      15_000,
      'the window to open',
    );
    expect(first.openedAt!.getTime()).toBeGreaterThanOrEqual(notBefore.getTime());
    expect(first.eventsAt).toHaveLength(1);

    // Down and up again as the owner: the column comes back filled from the event.
    const owner = new pg.Client({ connectionString: stack.ownerUrl });
    await owner.connect();
    try {
      const runner = { query: (sql: string) => owner.query(sql) } as unknown as QueryRunner;
      const migration = new WindowOpened1764500000000();
      await migration.down(runner);
      await migration.up(runner);
    } finally {
      await owner.end();
    }
    // The sweeps that ran meanwhile (every second) did not open it again.
    expect(await opened(stack, requestId)).toEqual({
      openedAt: first.eventsAt![0],
      eventsAt: first.eventsAt,
    });
  }, 40_000);
});
