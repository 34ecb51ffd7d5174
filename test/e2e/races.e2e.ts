import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialRequestOptionsJSON,
} from '@simplewebauthn/server';
import { SoftAuthenticator, type CeremonyOverrides } from '../support/soft-authenticator.js';
import {
  clientAs,
  enroll,
  httpClient,
  inviteToken,
  personFor,
  PROJECT_ROOT,
  sessionCookieFrom,
  startStack,
  type ApiResponse,
  type Person,
  type TestStack,
} from '../support/stack.js';

const APPROVERS = Array.from({ length: 50 }, (_, index) => `approver-${String(index + 1).padStart(2, '0')}`);
const ACTIVATIONS = 20;

/**
 * A synced passkey, as Apple's and Google's are: its signature counter is always 0. One person's parallel
 * step-ups then reach the broker in any order without looking like a cloned key (a counter that goes
 * backwards disables a passkey, DESIGN §3), so the activations race on the request, not on the counter.
 */
class SyncedPasskey extends SoftAuthenticator {
  override authenticate(
    options: PublicKeyCredentialRequestOptionsJSON,
    overrides?: CeremonyOverrides,
  ): AuthenticationResponseJSON {
    // authenticate() adds one to the stored counter before it signs: start from -1 to sign 0.
    for (const credential of (this as unknown as { stored: Array<{ signCount: number }> }).stored)
      credential.signCount = -1;
    return super.authenticate(options, overrides);
  }
}

/** enroll() with a SyncedPasskey: the real invite + registration ceremony, signed in. */
async function enrollWithSyncedPasskey(stack: TestStack, username: string): Promise<Person> {
  const authenticator = new SyncedPasskey({ origin: stack.origin, backupEligible: true, backedUp: true });
  const token = await inviteToken(stack, username);
  const anonymous = httpClient(stack, null);
  const creation = await anonymous.post('/api/auth/enroll/options', { invite: token });
  expect(creation.status).toBe(200);
  const verified = await anonymous.post('/api/auth/enroll/verify', {
    invite: token,
    response: authenticator.register(creation.body),
  });
  expect(verified.status).toBe(200);
  const person = personFor(
    stack,
    username,
    verified.body.user.id,
    authenticator,
    sessionCookieFrom(verified.headers),
  );
  stack.people.set(username, person);
  return person;
}

function statusCounts(responses: ApiResponse<any>[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const response of responses) {
    const key = response.status === 200 ? '200' : `${response.status} ${response.body?.error?.code}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

describe('races on one request (invariant 2: exactly one winner per transition)', () => {
  let stack: TestStack;
  let requestId: string;

  beforeAll(async () => {
    stack = await startStack({
      policyDir: path.join(PROJECT_ROOT, 'test/fixtures/policies/races'),
      // 51 enrollments and 70 step-ups from one address.
      env: { IP_RATE_LIMIT: '100000' },
      worker: false,
    });
    await enrollWithSyncedPasskey(stack, 'requester');
    // Enrolled in parallel batches: each is the full invite + registration ceremony.
    for (let start = 0; start < APPROVERS.length; start += 10)
      await Promise.all(APPROVERS.slice(start, start + 10).map((username) => enroll(stack, username)));
    const created = await clientAs(stack, 'requester').post('/api/requests', {
      entitlementId: 'race-token',
      durationSeconds: 600,
      justification: 'Race the approvers (e2e)',
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ state: 'PENDING', approvalsRequired: 2 });
    requestId = created.body.id;
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 60_000);

  it('approves once when 50 approvers of a 2-of-50 request confirm at the same moment', async () => {
    const approvers = APPROVERS.map((username) => clientAs(stack, username));
    // Every approver holds a valid step-up first, so the posts race only on the decision.
    const stepUps = await Promise.all(approvers.map((approver) => approver.stepUp('approve', requestId)));
    const responses = await Promise.all(
      approvers.map((approver, index) =>
        approver.post(`/api/requests/${requestId}/approve`, { stepUp: stepUps[index] }),
      ),
    );

    // Decisions on one request serialise: the first two are recorded (quorum), the rest find it approved.
    expect(statusCounts(responses)).toEqual({ '200': 2, '409 REQUEST_NOT_PENDING': 48 });
    const winners = approvers.filter((_, index) => responses[index].status === 200);
    expect(
      responses
        .filter((response) => response.status === 200)
        .map((response) => response.body.state)
        .sort(),
    ).toEqual(['APPROVED', 'PENDING']);

    const { rows: approvals } = await stack.db.query(
      `SELECT approver_id AS "approverId" FROM approvals WHERE request_id = $1`,
      [requestId],
    );
    // Every 200 has its row, and nothing else does.
    expect(approvals.map((row) => row.approverId).sort()).toEqual(
      winners.map((winner) => winner.userId).sort(),
    );

    const { rows: events } = await stack.db.query(
      `SELECT seq::int AS seq, action, actor_id AS "actorId" FROM audit_events WHERE request_id = $1 ORDER BY seq`,
      [requestId],
    );
    expect(events.filter((event) => event.action === 'request.approved')).toHaveLength(1);
    expect(
      events
        .filter((event) => event.action === 'approval.recorded')
        .map((event) => event.actorId)
        .sort(),
    ).toEqual(winners.map((winner) => winner.userId).sort());
    // The whole chain stays unique and gap-free: the losers' rolled-back transactions left no trace.
    const { rows: chain } = await stack.db.query(
      `SELECT count(*)::int AS events, count(DISTINCT seq)::int AS seqs, max(seq)::int AS last FROM audit_events`,
    );
    expect(chain[0].seqs).toBe(chain[0].events);
    expect(chain[0].last).toBe(chain[0].events);

    const { rows: request } = await stack.db.query(`SELECT state FROM elevation_requests WHERE id = $1`, [
      requestId,
    ]);
    expect(request[0].state).toBe('APPROVED');
  }, 60_000);

  it('activates once when the requester confirms 20 activations at the same moment', async () => {
    const requester = clientAs(stack, 'requester');
    const stepUps = await Promise.all(
      Array.from({ length: ACTIVATIONS }, () => requester.stepUp('activate', requestId)),
    );
    const responses = await Promise.all(
      stepUps.map((stepUp) => requester.post(`/api/requests/${requestId}/activate`, { stepUp })),
    );

    expect(statusCounts(responses)).toEqual({ '200': 1, '409 REQUEST_NOT_APPROVED': ACTIVATIONS - 1 });
    const winner = responses.find((response) => response.status === 200)!;
    expect(winner.body.request.state).toBe('ACTIVE');
    expect(typeof winner.body.credential.token).toBe('string');

    const { rows } = await stack.db.query(
      `SELECT (SELECT count(*)::int FROM grants WHERE request_id = $1) AS grants,
              (SELECT count(*)::int FROM audit_events WHERE request_id = $1 AND action = 'request.activated') AS activated,
              (SELECT count(*)::int FROM audit_events WHERE request_id = $1 AND action = 'grant.issued') AS issued,
              (SELECT state FROM elevation_requests WHERE id = $1) AS state`,
      [requestId],
    );
    expect(rows[0]).toEqual({ grants: 1, activated: 1, issued: 1, state: 'ACTIVE' });
  }, 60_000);
});
