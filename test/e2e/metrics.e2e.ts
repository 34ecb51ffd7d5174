import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { enrollAll, startStack, waitFor, type TestStack } from '../support/stack.js';

const TOKEN = randomBytes(24).toString('base64url');

describe('GET /metrics (Prometheus, read from PostgreSQL)', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startStack({ env: { METRICS_TOKEN: TOKEN, SWEEP_INTERVAL_SECONDS: '1' } });
    await enrollAll(stack, ['alice', 'bob', 'admin'], { admin: ['admin'] });
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  const scrape = (authorization?: string) =>
    fetch(`${stack.baseUrl}/metrics`, { headers: authorization ? { authorization } : {} });

  it('answers 401 with the error envelope without the bearer token, or with a wrong one', async () => {
    for (const authorization of [undefined, 'Bearer wrong-token-wrong-token', `Basic ${TOKEN}`]) {
      const response = await scrape(authorization);
      expect(response.status).toBe(401);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe('UNAUTHENTICATED');
    }
  });

  it('reports grants, requests and the overdue gauge from the database', async () => {
    const alice = stack.people.get('alice')!;
    const bob = stack.people.get('bob')!;
    const created = await alice.post('/api/requests', {
      entitlementId: 'api-admin-token',
      durationSeconds: 1,
      justification: 'metrics e2e',
    });
    expect((await bob.decide(created.body.id, 'approve')).status).toBe(200);
    expect((await alice.decide(created.body.id, 'activate')).status).toBe(200);

    const before = await (await scrape(`Bearer ${TOKEN}`)).text();
    expect(before).toMatch(/^jit_grants\{state="ACTIVE"\} 1$/m);
    expect(before).toMatch(/^jit_requests\{state="ACTIVE"\} 1$/m);
    expect(before).toMatch(/^jit_rubber_stamp_approvals 1$/m);
    expect(before).toMatch(/^jit_broker_process_cpu_user_seconds_total /m);

    // Once the worker has revoked the 1-second grant, the gauges follow PostgreSQL.
    const after = await waitFor(
      async () => {
        const text = await (await scrape(`Bearer ${TOKEN}`)).text();
        return /^jit_grants\{state="REVOKED"\} 1$/m.test(text) ? text : undefined;
      },
      10_000,
      'the grant to be revoked',
    );
    expect(after).toMatch(/^jit_grants_overdue 0$/m);
    expect(after).toMatch(/^jit_requests\{state="ENDED"\} 1$/m);
    const lag = Number(/^jit_revocation_lag_max_seconds (\S+)$/m.exec(after)?.[1]);
    expect(lag).toBeGreaterThanOrEqual(0);

    // The same grant in the admin's grant list, filtered by state; others may not look.
    const admin = stack.people.get('admin')!;
    const revoked = await admin.get('/api/admin/grants?state=REVOKED');
    expect(revoked.status).toBe(200);
    expect(revoked.body.items).toEqual([
      expect.objectContaining({ requestId: created.body.id, state: 'REVOKED', requester: 'alice' }),
    ]);
    expect((await admin.get('/api/admin/grants?state=REVOKE_FAILED')).body.items).toEqual([]);
    expect((await admin.get('/api/admin/grants?state=LOST')).status).toBe(400);
    expect((await alice.get('/api/admin/grants')).status).toBe(403);

    // Users page by username.
    const first = await admin.get('/api/admin/users?limit=2');
    expect(first.body.items.map((user: { username: string }) => user.username)).toEqual(['admin', 'alice']);
    expect(first.body.nextCursor).toBe('alice');
    const second = await admin.get(`/api/admin/users?limit=2&cursor=${first.body.nextCursor}`);
    expect(second.body).toEqual({ items: [expect.objectContaining({ username: 'bob' })], nextCursor: null });
    expect((await admin.get('/api/admin/users?cursor=Not%20A%20User')).status).toBe(400);
  });
});
