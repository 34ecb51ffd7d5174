// Regression tests for findings of the independent reviews: each case failed before its fix.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  enroll,
  enrollAll,
  httpClient,
  sessionCookieFrom,
  startStack,
  waitFor,
  type Person,
  type TestStack,
} from '../support/stack.js';

async function signIn(stack: TestStack, person: Person) {
  const anonymous = httpClient(stack, null);
  const options = await anonymous.post('/api/auth/login/options', {});
  return anonymous.post('/api/auth/login/verify', {
    response: person.authenticator.authenticate(options.body),
  });
}

async function file(person: Person, durationSeconds = 600) {
  const created = await person.post('/api/requests', {
    entitlementId: 'api-admin-token',
    durationSeconds,
    justification: 'hardening e2e',
  });
  expect(created.status).toBe(201);
  return created.body.id as string;
}

describe('hardening (review findings)', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startStack({ env: { STEP_UP_MAX_FAILURES: '3', SWEEP_INTERVAL_SECONDS: '1' } });
    await enrollAll(stack, ['alice', 'bob']);
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  it('answers a deeply nested JSON body with 400, not a stack overflow', async () => {
    const deep = `{"response":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    const answer = await httpClient(stack, null).postRaw('/api/auth/login/verify', deep);
    expect(answer.status).toBe(400);
    expect(answer.body.error.code).toBe('VALIDATION_FAILED');
  });

  it('ends the sessions of a passkey once a sign-count regression shows it may be cloned', async () => {
    const carol = await enroll(stack, 'carol');
    const signedIn = await signIn(stack, carol);
    expect(signedIn.status).toBe(200);
    const second = httpClient(stack, sessionCookieFrom(signedIn.headers));
    expect((await second.get('/api/me')).status).toBe(200);
    carol.authenticator.setSignCount(carol.authenticator.credentials[0].id, 0);
    expect((await signIn(stack, carol)).body.error.code).toBe('SIGN_COUNT_REGRESSION');
    // Both the enrollment session and the later sign-in were made with that key.
    expect((await second.get('/api/me')).status).toBe(401);
    expect((await carol.get('/api/me')).status).toBe(401);
  });

  it('does not let parallel failed step-ups exceed the lockout limit', async () => {
    const dave = await enroll(stack, 'dave');
    const alice = stack.people.get('alice')!;
    const requests = await Promise.all([1, 2, 3, 4, 5, 6].map(() => file(alice)));
    // Six step-ups with user verification cleared: each fails, in parallel.
    const proofs = await Promise.all(
      requests.map((id) => dave.stepUp('approve', id, undefined, { userVerified: false })),
    );
    const answers = await Promise.all(
      requests.map((id, index) => dave.post(`/api/requests/${id}/approve`, { stepUp: proofs[index] })),
    );
    const codes = answers.map((answer) => answer.body.error.code).sort();
    expect(codes).toEqual([
      'STEP_UP_LOCKED',
      'STEP_UP_LOCKED',
      'STEP_UP_LOCKED',
      'USER_VERIFICATION_REQUIRED',
      'USER_VERIFICATION_REQUIRED',
      'USER_VERIFICATION_REQUIRED',
    ]);
    const { rows } = await stack.db.query(
      `SELECT action, count(*)::int AS count FROM audit_events
        WHERE actor_id = $1 AND action IN ('step-up.failed', 'step-up.locked') GROUP BY action ORDER BY action`,
      [dave.userId],
    );
    expect(rows).toEqual([
      { action: 'step-up.failed', count: 3 },
      { action: 'step-up.locked', count: 1 },
    ]);
  });

  it('revokes an active extension together with the request it extends', async () => {
    const alice = stack.people.get('alice')!;
    const bob = stack.people.get('bob')!;
    const original = await file(alice);
    expect((await bob.decide(original, 'approve')).status).toBe(200);
    expect((await alice.decide(original, 'activate')).status).toBe(200);
    const extension = await alice.post(`/api/requests/${original}/extend`, {
      durationSeconds: 600,
      justification: 'more time',
    });
    expect(extension.status).toBe(201);
    expect((await bob.decide(extension.body.id, 'approve')).status).toBe(200);
    expect((await alice.decide(extension.body.id, 'activate')).status).toBe(200);

    const revoked = await bob.post(`/api/requests/${original}/revoke`, {
      reason: 'incident over',
      stepUp: await bob.stepUp('revoke', original),
    });
    // 202 while the connector has not confirmed (200 if the worker was faster than the answer).
    expect(revoked.status).toBe(revoked.body.grant.state === 'REVOKED' ? 200 : 202);
    expect((await alice.get(`/api/requests/${extension.body.id}`)).body.state).toBe('REVOKED');
    await waitFor(
      async () => {
        const { rows } = await stack.db.query(
          `SELECT count(*)::int AS live FROM grants WHERE request_id = ANY($1) AND state <> 'REVOKED'`,
          [[original, extension.body.id]],
        );
        return rows[0].live === 0 ? true : undefined;
      },
      10_000,
      'both grants to be revoked',
    );
  });

  it('revokes a grant marked due even when its delayed job was never promoted', async () => {
    const alice = stack.people.get('alice')!;
    const bob = stack.people.get('bob')!;
    const id = await file(alice, 3600);
    expect((await bob.decide(id, 'approve')).status).toBe(200);
    expect((await alice.decide(id, 'activate')).status).toBe(200);
    // As if the early revoke committed (request REVOKED, grant marked due) but its promote was lost: the
    // job still waits an hour.
    await stack.db.query(
      `UPDATE elevation_requests SET state = 'REVOKED', ended_at = now(), end_reason = 'revoked' WHERE id = $1`,
      [id],
    );
    await stack.db.query(
      `UPDATE grants SET revoke_requested_at = now(), revoke_reason = 'test' WHERE request_id = $1`,
      [id],
    );
    await waitFor(
      async () => {
        const { rows } = await stack.db.query(`SELECT state FROM grants WHERE request_id = $1`, [id]);
        return rows[0].state === 'REVOKED' ? true : undefined;
      },
      10_000,
      'the sweeper to run the revocation now',
    );
  });
});
