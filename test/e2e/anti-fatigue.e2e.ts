import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  clientAs,
  enroll,
  enrollAll,
  PROJECT_ROOT,
  startStack,
  waitFor,
  type ApiResponse,
  type Person,
  type TestStack,
} from '../support/stack.js';

// The real limits, small enough to reach in a few calls (startStack relaxes them unless told otherwise).
const LIMITS = {
  MAX_OPEN_REQUESTS_PER_ENTITLEMENT: 1,
  MAX_OPEN_REQUESTS: 2,
  REQUEST_RATE_LIMIT: 5,
  REQUEST_RATE_WINDOW_SECONDS: 3600,
  DENIAL_COOLDOWN_SECONDS: 2,
  DENIAL_LOCKOUT_COUNT: 3,
  DENIAL_LOCKOUT_WINDOW_SECONDS: 3600,
};

/** What a refused filing must leave untouched: no request row, no audit event. */
async function footprint(stack: TestStack) {
  const { rows } = await stack.db.query(
    `SELECT (SELECT count(*) FROM elevation_requests)::int AS requests,
            (SELECT count(*) FROM audit_events)::int AS events`,
  );
  return rows[0] as { requests: number; events: number };
}

async function file(person: Person, entitlementId: string): Promise<ApiResponse<any>> {
  return person.post('/api/requests', {
    entitlementId,
    durationSeconds: 600,
    justification: `anti-fatigue e2e: ${entitlementId}`,
  });
}

async function filed(person: Person, entitlementId: string): Promise<string> {
  const response = await file(person, entitlementId);
  expect({ status: response.status, body: response.body }).toMatchObject({ status: 201 });
  return response.body.id as string;
}

describe('anti-fatigue limits on filing requests', () => {
  let stack: TestStack;

  /** Files and expects the refusal `status`/`code`, with nothing written. */
  async function expectRefused(person: Person, entitlementId: string, status: number, code: string) {
    const before = await footprint(stack);
    const response = await file(person, entitlementId);
    expect({ status: response.status, code: response.body?.error?.code }).toEqual({ status, code });
    expect(typeof response.body.error.message).toBe('string');
    expect(await footprint(stack)).toEqual(before);
    return response;
  }

  /** Waits, on PostgreSQL's clock, until the user's last denial for the entitlement is past the cool-down. */
  async function waitOutCooldown(person: Person, entitlementId: string) {
    await waitFor(
      async () => {
        const { rows } = await stack.db.query(
          `SELECT count(*)::int AS n FROM elevation_requests
            WHERE requester_id = $1 AND entitlement_id = $2 AND state = 'DENIED'
              AND decided_at > now() - make_interval(secs => $3)`,
          [person.userId, entitlementId, LIMITS.DENIAL_COOLDOWN_SECONDS],
        );
        return rows[0].n === 0 ? true : undefined;
      },
      (LIMITS.DENIAL_COOLDOWN_SECONDS + 5) * 1000,
      'the denial cool-down to pass',
    );
  }

  beforeAll(async () => {
    stack = await startStack({
      policyDir: path.join(PROJECT_ROOT, 'test/fixtures/policies/anti-fatigue'),
      env: Object.fromEntries(Object.entries(LIMITS).map(([key, value]) => [key, String(value)])),
      worker: false,
    });
    await enrollAll(stack, ['opener', 'racer', 'hasty', 'denied', 'bob']);
    await enroll(stack, 'admin', { roles: ['admin'] });
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 60_000);

  it('allows one open request per entitlement and two in all (409)', async () => {
    const opener = clientAs(stack, 'opener');
    await filed(opener, 'alpha-token');
    await expectRefused(opener, 'alpha-token', 409, 'OPEN_REQUEST_EXISTS');
    await filed(opener, 'beta-token');
    await expectRefused(opener, 'gamma-token', 409, 'TOO_MANY_OPEN_REQUESTS');
  }, 30_000);

  it('holds the open-request limit when one person files in parallel', async () => {
    const racer = clientAs(stack, 'racer');
    const responses = await Promise.all(Array.from({ length: 5 }, () => file(racer, 'alpha-token')));
    expect(responses.map((response) => response.status).sort()).toEqual([201, 409, 409, 409, 409]);
    for (const response of responses.filter((each) => each.status === 409))
      expect(response.body.error.code).toBe('OPEN_REQUEST_EXISTS');
    const { rows } = await stack.db.query(
      `SELECT count(*)::int AS n FROM elevation_requests WHERE requester_id = $1`,
      [racer.userId],
    );
    expect(rows[0].n).toBe(1);
  }, 30_000);

  it('limits how many requests one person files per window, cancelled ones included (429)', async () => {
    const hasty = clientAs(stack, 'hasty');
    for (let filing = 0; filing < LIMITS.REQUEST_RATE_LIMIT; filing++) {
      const id = await filed(hasty, 'alpha-token');
      expect((await hasty.post(`/api/requests/${id}/cancel`, {})).body.state).toBe('CANCELLED');
    }
    const refused = await expectRefused(hasty, 'alpha-token', 429, 'REQUEST_RATE_LIMITED');
    expect(refused.body.error.details).toEqual({
      limit: LIMITS.REQUEST_RATE_LIMIT,
      windowSeconds: LIMITS.REQUEST_RATE_WINDOW_SECONDS,
    });
  }, 30_000);

  it('cools down after a denial (429), locks out after three (409) until an admin unlocks', async () => {
    const [denied, bob, admin] = [
      clientAs(stack, 'denied'),
      clientAs(stack, 'bob'),
      clientAs(stack, 'admin'),
    ];
    const deny = async (id: string) => {
      const response = await bob.decide(id, 'deny', { reason: 'Not now' });
      expect(response.body.state).toBe('DENIED');
    };

    await deny(await filed(denied, 'alpha-token'));
    const cooling = await expectRefused(denied, 'alpha-token', 429, 'DENIAL_COOLDOWN');
    expect(cooling.body.error.details.retryAfterSeconds).toBeGreaterThan(0);
    expect(cooling.body.error.details.retryAfterSeconds).toBeLessThanOrEqual(LIMITS.DENIAL_COOLDOWN_SECONDS);
    // The cool-down is per entitlement.
    expect((await denied.post(`/api/requests/${await filed(denied, 'beta-token')}/cancel`, {})).status).toBe(
      200,
    );

    for (let denial = 2; denial <= LIMITS.DENIAL_LOCKOUT_COUNT; denial++) {
      await waitOutCooldown(denied, 'alpha-token');
      await deny(await filed(denied, 'alpha-token'));
    }
    const { rows: locked } = await stack.db.query(
      `SELECT actor_id AS "actorId", data FROM audit_events WHERE action = 'entitlement.locked' AND subject_id = $1`,
      [denied.userId],
    );
    expect(locked).toEqual([
      {
        actorId: bob.userId,
        data: expect.objectContaining({ alert: true, entitlementId: 'alpha-token', denials: 3 }),
      },
    ]);
    await expectRefused(denied, 'alpha-token', 409, 'ENTITLEMENT_LOCKED');
    // The lockout outlasts the cool-down: only an admin lifts it.
    await waitOutCooldown(denied, 'alpha-token');
    await expectRefused(denied, 'alpha-token', 409, 'ENTITLEMENT_LOCKED');

    expect((await denied.post('/api/admin/users/denied/lockouts/alpha-token/unlock', {})).status).toBe(403);
    const unlocked = await admin.post('/api/admin/users/denied/lockouts/alpha-token/unlock', {});
    expect(unlocked.status).toBe(204);
    const { rows: unlockEvents } = await stack.db.query(
      `SELECT actor_id AS "actorId", data FROM audit_events WHERE action = 'entitlement.unlocked' AND subject_id = $1`,
      [denied.userId],
    );
    expect(unlockEvents).toEqual([
      { actorId: admin.userId, data: expect.objectContaining({ entitlementId: 'alpha-token' }) },
    ]);
    const again = await admin.post('/api/admin/users/denied/lockouts/alpha-token/unlock', {});
    expect({ status: again.status, code: again.body?.error?.code }).toEqual({
      status: 404,
      code: 'NOT_FOUND',
    });

    await filed(denied, 'alpha-token');
  }, 45_000);
});
