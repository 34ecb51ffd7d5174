import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { getQueueToken } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import { decodeJwt } from 'jose';
import { QueueName, startJobId } from '../../libs/jobs/jobs.js';
import {
  clientAs,
  enroll,
  enrollAll,
  httpClient,
  personFor,
  PROJECT_ROOT,
  sessionCookieFrom,
  startStack,
  waitFor,
  type ApiResponse,
  type Person,
  type TestStack,
} from '../support/stack.js';

const LIFECYCLE_POLICY_DIR = path.join(PROJECT_ROOT, 'test/fixtures/policies/lifecycle');
// The worker sweeps every second, so nothing here waits long on a job that Redis lost.
const SWEEP_INTERVAL_SECONDS = 1;
const RUBBER_STAMP_SECONDS = 1;
// How long a test waits on the worker for something due within a few seconds.
const WORKER_DEADLINE_MS = 15_000;

/** The audit events of one request with one action, oldest first. */
async function auditEvents(stack: TestStack, requestId: string, action: string) {
  const { rows } = await stack.db.query(
    `SELECT seq::int AS seq, actor_id AS "actorId", subject_id AS "subjectId", data
       FROM audit_events WHERE request_id = $1 AND action = $2 ORDER BY seq`,
    [requestId, action],
  );
  return rows as Array<{ seq: number; actorId: string; subjectId: string; data: Record<string, any> }>;
}

async function requestRows(stack: TestStack): Promise<number> {
  const { rows } = await stack.db.query(`SELECT count(*)::int AS n FROM elevation_requests`);
  return rows[0].n as number;
}

async function grantsOf(stack: TestStack, requestId: string) {
  const { rows } = await stack.db.query(
    `SELECT id, state, not_after AS "notAfter", revoked_at AS "revokedAt" FROM grants WHERE request_id = $1`,
    [requestId],
  );
  return rows as Array<{ id: string; state: string; notAfter: Date; revokedAt: Date | null }>;
}

/** Polls until the request's stored state is `state` (the worker moves it). */
async function waitForState(stack: TestStack, requestId: string, state: string) {
  await waitFor(
    async () => {
      const { rows } = await stack.db.query(`SELECT state FROM elevation_requests WHERE id = $1`, [
        requestId,
      ]);
      return rows[0]?.state === state ? true : undefined;
    },
    WORKER_DEADLINE_MS,
    `request ${requestId} to become ${state}`,
  );
}

/** Polls until the grant of a request is REVOKED by the worker. */
async function waitForGrantRevoked(stack: TestStack, requestId: string) {
  return waitFor(
    async () => {
      const [grant] = await grantsOf(stack, requestId);
      return grant?.state === 'REVOKED' ? grant : undefined;
    },
    WORKER_DEADLINE_MS,
    `the grant of ${requestId} to be revoked`,
  );
}

async function file(
  person: Person,
  entitlementId: string,
  extra: Record<string, unknown> = {},
): Promise<ApiResponse<any>> {
  return person.post('/api/requests', {
    entitlementId,
    durationSeconds: 600,
    justification: `lifecycle e2e: ${entitlementId}`,
    ...extra,
  });
}

/** Files a request and expects it accepted; the request view. */
async function filed(person: Person, entitlementId: string, extra: Record<string, unknown> = {}) {
  const response = await file(person, entitlementId, extra);
  expect({ status: response.status, body: response.body }).toMatchObject({ status: 201 });
  return response.body as Record<string, any>;
}

/** Files, has one approver approve and the requester activate; the activation answer. */
async function activeRequest(
  requester: Person,
  approver: Person,
  entitlementId: string,
  extra: Record<string, unknown> = {},
) {
  const created = await filed(requester, entitlementId, extra);
  const approved = await approver.decide(created.id, 'approve');
  expect({ status: approved.status, state: approved.body.state }).toEqual({ status: 200, state: 'APPROVED' });
  const activated = await requester.decide(created.id, 'activate');
  expect({ status: activated.status, state: activated.body.request?.state }).toEqual({
    status: 200,
    state: 'ACTIVE',
  });
  return activated.body as { request: Record<string, any>; credential: Record<string, any> };
}

function expectError(response: ApiResponse<any>, status: number, code: string): void {
  expect({ status: response.status, code: response.body?.error?.code }).toEqual({ status, code });
  expect(typeof response.body.error.message).toBe('string');
}

/** Discoverable-credential sign-in with the person's own passkey; the verify answer. */
async function signIn(stack: TestStack, person: Person): Promise<ApiResponse<any>> {
  const anonymous = httpClient(stack, null);
  const options = await anonymous.post('/api/auth/login/options', {});
  expect(options.status).toBe(200);
  return anonymous.post('/api/auth/login/verify', {
    response: person.authenticator.authenticate(options.body),
  });
}

/** A time a few seconds ahead, in whole seconds (what a person would pick). */
function secondsFromNow(seconds: number): Date {
  return new Date(Math.ceil(Date.now() / 1000) * 1000 + seconds * 1000);
}

describe('request lifecycle (real PostgreSQL, Redis and worker)', () => {
  let stack: TestStack;
  const as = (username: string) => clientAs(stack, username);

  beforeAll(async () => {
    stack = await startStack({
      policyDir: LIFECYCLE_POLICY_DIR,
      env: {
        SWEEP_INTERVAL_SECONDS: String(SWEEP_INTERVAL_SECONDS),
        RUBBER_STAMP_SECONDS: String(RUBBER_STAMP_SECONDS),
        // The rubber-stamp and break-glass warnings are expected here.
        LOG_LEVEL: 'error',
      },
    });
    await enrollAll(stack, ['alice', 'bob', 'carol', 'dave', 'erin']);
    await enroll(stack, 'admin', { roles: ['admin'] });
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 60_000);

  it('needs two distinct approvers out of three, never the requester, and each approver once', async () => {
    const [dave, bob, erin] = [as('dave'), as('bob'), as('erin')];
    // dave is an engineer and an approver: he may ask, but not decide his own request.
    const created = await filed(dave, 'quorum-token');
    expect(created).toMatchObject({ state: 'PENDING', approvalsRequired: 2 });

    const first = await bob.decide(created.id, 'approve', { comment: 'first of two' });
    expect({ status: first.status, state: first.body.state }).toEqual({ status: 200, state: 'PENDING' });

    // Refused before anyone touches a passkey, and on the decision itself.
    const selfChallenge = await dave.post('/api/step-up/challenge', {
      action: 'approve',
      subjectId: created.id,
    });
    expectError(selfChallenge, 403, 'SELF_APPROVAL');
    expectError(await dave.post(`/api/requests/${created.id}/approve`, {}), 403, 'SELF_APPROVAL');

    // A second approval by bob: the challenge is issued, the decision is refused.
    const again = await bob.post('/api/step-up/challenge', { action: 'approve', subjectId: created.id });
    expect(again.status).toBe(200);
    const twice = await bob.post(`/api/requests/${created.id}/approve`, {
      stepUp: {
        challengeId: again.body.challengeId,
        response: bob.authenticator.authenticate(again.body.options),
      },
    });
    expectError(twice, 409, 'ALREADY_DECIDED');
    expect((await dave.get(`/api/requests/${created.id}`)).body.state).toBe('PENDING');

    const second = await erin.decide(created.id, 'approve');
    expect({ status: second.status, state: second.body.state }).toEqual({ status: 200, state: 'APPROVED' });
    const { rows: approvals } = await stack.db.query(
      `SELECT u.username, a.decision FROM approvals a JOIN users u ON u.id = a.approver_id
        WHERE a.request_id = $1 ORDER BY a.at`,
      [created.id],
    );
    expect(approvals).toEqual([
      { username: 'bob', decision: 'approve' },
      { username: 'erin', decision: 'approve' },
    ]);
    expect(await auditEvents(stack, created.id, 'request.approved')).toHaveLength(1);
    expect((await auditEvents(stack, created.id, 'approval.recorded')).map((event) => event.data)).toEqual([
      expect.objectContaining({ approver: 'bob', approvals: 1, approvalsRequired: 2 }),
      expect.objectContaining({ approver: 'erin', approvals: 2, approvalsRequired: 2 }),
    ]);
  }, 30_000);

  it('ends a request at the first denial, with its reason', async () => {
    const created = await filed(as('carol'), 'quorum-token');
    const reason = 'Not during the change freeze';
    const denied = await as('bob').decide(created.id, 'deny', { reason });
    expect({ status: denied.status, state: denied.body.state, endReason: denied.body.endReason }).toEqual({
      status: 200,
      state: 'DENIED',
      endReason: 'denied',
    });
    const [event] = await auditEvents(stack, created.id, 'request.denied');
    expect(event.data).toEqual({ reason });
    const { rows } = await stack.db.query(`SELECT decision, comment FROM approvals WHERE request_id = $1`, [
      created.id,
    ]);
    expect(rows).toEqual([{ decision: 'deny', comment: reason }]);
    // Nothing moves a denied request any more.
    expectError(await as('erin').decide(created.id, 'approve'), 409, 'REQUEST_FINISHED');
    expect((await as('carol').get(`/api/requests/${created.id}`)).body.state).toBe('DENIED');
  }, 30_000);

  it('expires a request past its pending TTL, and an approved one past its activation window (worker)', async () => {
    const carol = as('carol');
    const waiting = await filed(carol, 'short-lived-token');
    const unused = await filed(carol, 'short-lived-token');
    const approved = await as('bob').decide(unused.id, 'approve');
    expect(approved.body.state).toBe('APPROVED');
    expect(new Date(approved.body.activateBy).getTime()).toBe(
      new Date(approved.body.decidedAt).getTime() + 2000,
    );

    await Promise.all([
      waitForState(stack, waiting.id, 'EXPIRED'),
      waitForState(stack, unused.id, 'EXPIRED'),
    ]);
    for (const [request, reason, deadline] of [
      [waiting, 'pending-ttl', waiting.pendingUntil],
      [unused, 'activation-window', approved.body.activateBy],
    ] as const) {
      const view = (await carol.get(`/api/requests/${request.id}`)).body;
      expect({ state: view.state, endReason: view.endReason }).toEqual({
        state: 'EXPIRED',
        endReason: reason,
      });
      const events = await auditEvents(stack, request.id, 'request.expired');
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ actorId: 'system', data: { reason, deadline } });
    }
    expectError(await carol.decide(unused.id, 'activate'), 409, 'REQUEST_FINISHED');
    expect(await grantsOf(stack, unused.id)).toEqual([]);
  }, 30_000);

  it('refuses to activate a scheduled request before notBefore and opens its window then (worker)', async () => {
    const alice = as('alice');
    // Far enough ahead to file, approve and try to activate before it, even on a busy machine.
    const notBefore = secondsFromNow(4);
    const created = await filed(alice, 'api-admin-token', { notBefore: notBefore.toISOString() });
    expect(created.notBefore).toBe(notBefore.toISOString());
    expect((await as('bob').decide(created.id, 'approve')).body.state).toBe('APPROVED');

    const early = await alice.decide(created.id, 'activate');
    expectError(early, 409, 'NOT_YET_STARTED');
    expect(early.body.error.details).toEqual({ notBefore: notBefore.toISOString() });
    expect(await grantsOf(stack, created.id)).toEqual([]);

    const [opened] = await waitFor(
      async () => {
        const events = await auditEvents(stack, created.id, 'request.window-opened');
        return events.length > 0 ? events : undefined;
      },
      WORKER_DEADLINE_MS,
      'the request.window-opened event',
    );
    expect(opened).toMatchObject({ actorId: 'system', data: { notBefore: notBefore.toISOString() } });

    const activated = await alice.decide(created.id, 'activate');
    expect({ status: activated.status, state: activated.body.request?.state }).toEqual({
      status: 200,
      state: 'ACTIVE',
    });
    expect(new Date(activated.body.request.activatedAt).getTime()).toBeGreaterThanOrEqual(
      notBefore.getTime(),
    );
  }, 30_000);

  it('rebuilds a lost start job from PostgreSQL, so the window of a scheduled request still opens', async () => {
    const notBefore = secondsFromNow(3);
    const created = await filed(as('carol'), 'api-admin-token', { notBefore: notBefore.toISOString() });
    expect((await as('bob').decide(created.id, 'approve')).body.state).toBe('APPROVED');
    // Redis loses the delayed job (a flush, a failover): PostgreSQL still says the window opens at notBefore.
    const lifecycle = stack.broker.get<Queue>(getQueueToken(QueueName.Lifecycle), { strict: false });
    const job = await lifecycle.getJob(startJobId(created.id));
    expect(job).toBeDefined();
    await job!.remove();

    const events = await waitFor(
      async () => {
        const found = await auditEvents(stack, created.id, 'request.window-opened');
        return found.length > 0 ? found : undefined;
      },
      // notBefore plus a few sweep intervals.
      notBefore.getTime() - Date.now() + 5 * SWEEP_INTERVAL_SECONDS * 1000,
      'the sweeper to re-enqueue the start job',
    );
    expect(events).toHaveLength(1);
  }, 30_000);

  it('extends an active request without a gap, never beyond maxDuration per credential', async () => {
    const [alice, bob] = [as('alice'), as('bob')];
    // extendable-token: maxDuration 15m.
    const maxDurationMs = 15 * 60_000;
    const pending = await filed(alice, 'api-admin-token');
    expectError(
      await alice.post(`/api/requests/${pending.id}/extend`, {
        durationSeconds: 300,
        justification: 'more time',
      }),
      409,
      'NOT_EXTENDABLE',
    );

    const original = await activeRequest(alice, bob, 'extendable-token');
    const originalEnd = new Date(original.request.notAfter).getTime();

    const extension = await alice.post(`/api/requests/${original.request.id}/extend`, {
      durationSeconds: 240,
      justification: 'The migration runs longer than planned',
    });
    expect(extension.status).toBe(201);
    expect(extension.body).toMatchObject({
      state: 'PENDING',
      extendsRequestId: original.request.id,
      entitlementId: 'extendable-token',
      durationSeconds: 240,
    });
    expect((await bob.decide(extension.body.id, 'approve')).body.state).toBe('APPROVED');
    const extended = await alice.decide(extension.body.id, 'activate');
    expect(extended.status).toBe(200);
    const { request, credential } = extended.body;
    // No gap: the extension runs on from the original's end.
    expect(new Date(request.notAfter).getTime()).toBe(originalEnd + 240_000);
    expect(credential.notAfter).toBe(request.notAfter);
    const lifetime = decodeJwt(credential.token).exp! * 1000 - new Date(request.activatedAt).getTime();
    expect(lifetime).toBeLessThanOrEqual(maxDurationMs);
    expect((await auditEvents(stack, request.id, 'request.activated'))[0].data).toMatchObject({
      extendsRequestId: original.request.id,
      notAfter: request.notAfter,
    });
    // An extension is not itself extended.
    expectError(
      await alice.post(`/api/requests/${request.id}/extend`, { durationSeconds: 60, justification: 'again' }),
      409,
      'NOT_EXTENDABLE',
    );

    // A second extension would end 20 minutes after the original began: its credential is capped at 15.
    const longer = await alice.post(`/api/requests/${original.request.id}/extend`, {
      durationSeconds: 600,
      justification: 'Still not done',
    });
    expect(longer.status).toBe(201);
    expect((await bob.decide(longer.body.id, 'approve')).body.state).toBe('APPROVED');
    const capped = await alice.decide(longer.body.id, 'activate');
    expect(capped.status).toBe(200);
    const cappedEnd = new Date(capped.body.request.notAfter).getTime();
    expect(cappedEnd).toBeLessThan(originalEnd + 600_000);
    expect(
      decodeJwt(capped.body.credential.token).exp! * 1000 -
        new Date(capped.body.request.activatedAt).getTime(),
    ).toBeLessThanOrEqual(maxDurationMs);
  }, 30_000);

  it('activates break-glass at once with a body-bound step-up, alerts, and queues it for post-review', async () => {
    const [alice, bob, erin] = [as('alice'), as('bob'), as('erin')];
    const params = {
      entitlementId: 'breakglass-token',
      durationSeconds: 600,
      justification: 'Production is down and nobody can approve (e2e)',
    };
    const before = await requestRows(stack);
    expectError(await alice.post('/api/requests', params), 401, 'STEP_UP_REQUIRED');
    // What was confirmed is what runs: a longer duration than the one signed is refused.
    const signedShorter = await alice.stepUp('break-glass', params.entitlementId, params);
    expectError(
      await alice.post('/api/requests', { ...params, durationSeconds: 1200, stepUp: signedShorter }),
      401,
      'STEP_UP_SUBJECT_CHANGED',
    );
    expect(await requestRows(stack)).toBe(before);

    const stepUp = await alice.stepUp('break-glass', params.entitlementId, params);
    const created = await alice.post('/api/requests', { ...params, stepUp });
    expect(created.status).toBe(201);
    const { request, credential } = created.body;
    expect(request).toMatchObject({
      state: 'ACTIVE',
      breakGlass: true,
      approvalsRequired: 0,
      reviewedAt: null,
    });
    expect(credential.type).toBe('jwt');
    expect(decodeJwt(credential.token)).toMatchObject({
      sub: 'alice',
      jti: (await grantsOf(stack, request.id))[0].id,
    });

    const [alert] = await auditEvents(stack, request.id, 'break-glass.activated');
    expect(alert.data).toMatchObject({
      alert: true,
      entitlementId: 'breakglass-token',
      notifyGroups: ['approvers'],
      notifyUsers: ['bob', 'dave', 'erin'],
    });

    const queued = await bob.get('/api/reviews');
    expect(queued.status).toBe(200);
    expect(queued.body.items.map((item: { id: string }) => item.id)).toContain(request.id);
    // The requester does not review their own use.
    expect((await alice.get('/api/reviews')).body.items.map((item: { id: string }) => item.id)).not.toContain(
      request.id,
    );
    const reviewed = await bob.post(`/api/requests/${request.id}/review`, {
      comment: 'Checked the incident ticket',
    });
    expect(reviewed.status).toBe(200);
    expect(reviewed.body.reviewComment).toBe('Checked the incident ticket');
    for (const approver of [bob, erin]) {
      const ids = (await approver.get('/api/reviews')).body.items.map((item: { id: string }) => item.id);
      expect(ids).not.toContain(request.id);
    }
    expect(await auditEvents(stack, request.id, 'break-glass.reviewed')).toHaveLength(1);
  }, 30_000);

  it('approves a self-service request at creation and activates it with the requester’s own step-up', async () => {
    const alice = as('alice');
    const before = await requestRows(stack);
    const tooLong = await file(alice, 'api-read-token', { durationSeconds: 15 * 60 + 1 });
    expectError(tooLong, 422, 'DURATION_TOO_LONG');
    expect(tooLong.body.error.details).toEqual({ maxDurationSeconds: 900 });
    expect(await requestRows(stack)).toBe(before);

    const created = await filed(alice, 'api-read-token', { durationSeconds: 300 });
    expect(created).toMatchObject({ state: 'APPROVED', approvalsRequired: 0 });
    expect(await auditEvents(stack, created.id, 'request.approved')).toEqual([
      expect.objectContaining({
        actorId: alice.userId,
        data: expect.objectContaining({ selfService: true }),
      }),
    ]);
    const activated = await alice.decide(created.id, 'activate');
    expect(activated.status).toBe(200);
    expect(activated.body.request.state).toBe('ACTIVE');
    expect(decodeJwt(activated.body.credential.token)).toMatchObject({ sub: 'alice', scope: 'admin:read' });
  }, 30_000);

  it('lets only the requester cancel, and an approver revoke early with a step-up (worker revokes the grant)', async () => {
    const [alice, bob, carol] = [as('alice'), as('bob'), as('carol')];
    const pending = await filed(alice, 'api-admin-token');
    // bob sees it (an approver) but may not cancel it; carol may not even see it.
    expectError(await bob.post(`/api/requests/${pending.id}/cancel`, {}), 403, 'FORBIDDEN');
    expectError(await carol.post(`/api/requests/${pending.id}/cancel`, {}), 404, 'REQUEST_NOT_FOUND');
    const cancelled = await alice.post(`/api/requests/${pending.id}/cancel`, {
      reason: 'Not needed after all',
    });
    expect({ status: cancelled.status, state: cancelled.body.state }).toEqual({
      status: 200,
      state: 'CANCELLED',
    });
    expect((await auditEvents(stack, pending.id, 'request.cancelled'))[0].data).toEqual({
      reason: 'Not needed after all',
    });

    const { request } = await activeRequest(alice, bob, 'api-admin-token');
    const reason = 'Suspicious use of the token';
    const stepUp = await bob.stepUp('revoke', request.id);
    const revoked = await bob.post(`/api/requests/${request.id}/revoke`, { stepUp, reason });
    // The request is REVOKED at once; 202 while its grant is REVOKING (the worker's connector call has not
    // confirmed), 200 if the worker was faster than the answer.
    const grantState = revoked.body.grant.state as string;
    expect({ status: revoked.status, state: revoked.body.state, grant: grantState }).toEqual({
      status: grantState === 'REVOKED' ? 200 : 202,
      state: 'REVOKED',
      grant: grantState === 'REVOKED' ? 'REVOKED' : 'REVOKING',
    });
    expect((await auditEvents(stack, request.id, 'request.revoked'))[0]).toMatchObject({
      actorId: bob.userId,
      data: { reason },
    });

    const grant = await waitForGrantRevoked(stack, request.id);
    // Revoked early, long before its notAfter.
    expect(grant.revokedAt!.getTime()).toBeLessThan(grant.notAfter.getTime());
    const [event] = await auditEvents(stack, request.id, 'grant.revoked');
    expect(event).toMatchObject({ subjectId: grant.id, data: { reason } });
    expect((await alice.get(`/api/requests/${request.id}`)).body.state).toBe('REVOKED');
  }, 30_000);

  it('lists a pending request in its approvers’ inbox until each of them decides', async () => {
    const [dave, bob, erin] = [as('dave'), as('bob'), as('erin')];
    const inboxIds = async (person: Person) => {
      const inbox = await person.get('/api/approvals/inbox');
      expect(inbox.status).toBe(200);
      return inbox.body.items.map((item: { id: string }) => item.id) as string[];
    };
    // dave is an approver of quorum-token, but not of his own request.
    const created = await filed(dave, 'quorum-token');
    expect(await inboxIds(bob)).toContain(created.id);
    expect(await inboxIds(erin)).toContain(created.id);
    expect(await inboxIds(dave)).not.toContain(created.id);

    expect((await bob.decide(created.id, 'approve')).body.state).toBe('PENDING');
    expect(await inboxIds(bob)).not.toContain(created.id);
    expect(await inboxIds(erin)).toContain(created.id);
  }, 30_000);

  it('flags an approval given without opening the request as a rubber stamp, not one given after reading it', async () => {
    const [carol, bob, erin] = [as('carol'), as('bob'), as('erin')];
    const unread = await filed(carol, 'api-admin-token');
    expect((await bob.decide(unread.id, 'approve')).status).toBe(200);
    expect((await auditEvents(stack, unread.id, 'approval.recorded'))[0].data).toMatchObject({
      approver: 'bob',
      rubberStamp: true,
    });

    const read = await filed(carol, 'api-admin-token');
    expect((await erin.get(`/api/requests/${read.id}`)).status).toBe(200);
    // Reading takes longer than RUBBER_STAMP_SECONDS, on PostgreSQL's clock.
    await waitFor(
      async () => {
        const { rows } = await stack.db.query(
          `SELECT now() - first_viewed_at > make_interval(secs => $3) AS read
             FROM request_views WHERE request_id = $1 AND user_id = $2`,
          [read.id, erin.userId, RUBBER_STAMP_SECONDS],
        );
        return rows[0]?.read === true ? true : undefined;
      },
      10_000,
      'the rubber-stamp interval to pass',
    );
    expect((await erin.decide(read.id, 'approve')).status).toBe(200);
    expect((await auditEvents(stack, read.id, 'approval.recorded'))[0].data).toMatchObject({
      approver: 'erin',
      rubberStamp: false,
    });
  }, 30_000);

  it('suspends a user at once (sessions, open requests, grants) and lets them back in when reinstated', async () => {
    const [alice, bob, admin] = [as('alice'), as('bob'), as('admin')];
    const pending = await filed(alice, 'api-admin-token');
    const { request: active } = await activeRequest(alice, bob, 'api-admin-token');
    const { rows: open } = await stack.db.query(
      `SELECT count(*)::int AS n FROM elevation_requests
        WHERE requester_id = $1 AND state IN ('PENDING', 'APPROVED', 'ACTIVE')`,
      [alice.userId],
    );

    const setStatus = async (status: 'active' | 'suspended', reason: string) => {
      const params = { status, reason };
      const stepUp = await admin.stepUp('user.suspend', 'alice', params);
      return admin.post('/api/admin/users/alice/status', { ...params, stepUp });
    };
    const suspended = await setStatus('suspended', 'Laptop reported stolen');
    expect(suspended.status).toBe(200);
    expect(suspended.body).toMatchObject({ status: 'suspended', requestsEnded: open[0].n });
    expect(suspended.body.sessionsEnded).toBeGreaterThanOrEqual(1);

    expectError(await alice.get('/api/me'), 401, 'UNAUTHENTICATED');
    const pendingView = (await bob.get(`/api/requests/${pending.id}`)).body;
    expect({ state: pendingView.state, endReason: pendingView.endReason }).toEqual({
      state: 'CANCELLED',
      endReason: 'suspended',
    });
    expect((await bob.get(`/api/requests/${active.id}`)).body.state).toBe('REVOKED');
    await waitForGrantRevoked(stack, active.id);
    expect((await auditEvents(stack, active.id, 'grant.revoked'))[0].data).toMatchObject({
      reason: 'suspended',
    });
    // A suspended account cannot sign in with its passkey either.
    expectError(await signIn(stack, alice), 403, 'FORBIDDEN');

    const reinstated = await setStatus('active', 'Laptop found');
    expect({ status: reinstated.status, state: reinstated.body.status }).toEqual({
      status: 200,
      state: 'active',
    });
    const signedIn = await signIn(stack, alice);
    expect(signedIn.status).toBe(200);
    const again = personFor(
      stack,
      'alice',
      alice.userId,
      alice.authenticator,
      sessionCookieFrom(signedIn.headers),
    );
    stack.people.set('alice', again);
    expect((await again.get('/api/me')).body.username).toBe('alice');
    // Reinstating does not bring back what the suspension ended.
    expect((await again.get(`/api/requests/${pending.id}`)).body.state).toBe('CANCELLED');
  }, 30_000);
});

describe('policy reload by API', () => {
  let policyDir: string;
  let stack: TestStack;
  let original: string;
  const policyFile = () => path.join(policyDir, 'example.yaml');

  beforeAll(async () => {
    policyDir = await mkdtemp(path.join(tmpdir(), 'jit-reload-'));
    await cp(path.join(PROJECT_ROOT, 'policies', 'example.yaml'), policyFile());
    original = await readFile(policyFile(), 'utf8');
    stack = await startStack({ policyDir, worker: false });
    await enrollAll(stack, ['alice', 'bob']);
    await enroll(stack, 'admin', { roles: ['admin'] });
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    if (policyDir) await rm(policyDir, { recursive: true, force: true });
  }, 60_000);

  async function reload() {
    const admin = clientAs(stack, 'admin');
    return admin.post('/api/admin/policies/reload', {
      stepUp: await admin.stepUp('policy.reload', 'policy', {}),
    });
  }

  it('refuses a broken file naming file and line, keeps the version in force, then takes the fixed one', async () => {
    const admin = clientAs(stack, 'admin');
    const inForce = (await admin.get('/api/admin/policies')).body.inForce as string;
    expect(inForce).toMatch(/^[0-9a-f]{64}$/);

    const broken = `${original.trimEnd()}\nsurprise: true\n`;
    const line = broken.split('\n').indexOf('surprise: true') + 1;
    await writeFile(policyFile(), broken);
    const refused = await reload();
    expectError(refused, 422, 'POLICY_INVALID');
    expect(refused.body.error.message).toContain(`${policyFile()}:${line}`);
    expect(refused.body.error.details).toEqual([
      expect.objectContaining({ file: policyFile(), line, reason: expect.stringContaining('surprise') }),
    ]);
    expect((await admin.get('/api/admin/policies')).body.inForce).toBe(inForce);

    // Requests go on under the version in force.
    const created = await file(clientAs(stack, 'alice'), 'api-admin-token');
    expect(created.status).toBe(201);
    expect(created.body.policyHash).toBe(inForce);

    await writeFile(
      policyFile(),
      original.replace('title: Admin API, read/write token', 'title: Admin API, read/write token (v2)'),
    );
    const loaded = await reload();
    expect(loaded.status).toBe(200);
    expect(loaded.body).toMatchObject({ changed: true, entitlements: 5 });
    expect(loaded.body.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(loaded.body.hash).not.toBe(inForce);
    const versions = (await admin.get('/api/admin/policies')).body;
    expect(versions.inForce).toBe(loaded.body.hash);
    expect(versions.items[0]).toMatchObject({ hash: loaded.body.hash });
    expect((await file(clientAs(stack, 'alice'), 'api-read-token')).body.policyHash).toBe(loaded.body.hash);

    // The same files again change nothing.
    expect((await reload()).body).toMatchObject({ hash: loaded.body.hash, changed: false });
  }, 30_000);
});
