// Issue 17 point 6: an admin looks at one person (groups, roles, passkeys, sessions), disables one of their
// passkeys with a step-up bound to that passkey, and ends one of their sessions; the admin API also filters
// every request by state, entitlement and requester.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { SoftAuthenticator } from '../support/soft-authenticator.js';
import {
  enroll,
  httpClient,
  personFor,
  sessionCookieFrom,
  startStack,
  type ApiResponse,
  type Person,
  type TestStack,
} from '../support/stack.js';

function expectError(answer: ApiResponse<any>, status: number, code: string): void {
  expect({ status: answer.status, code: answer.body?.error?.code }).toEqual({ status, code });
}

async function auditEvents(stack: TestStack, action: string, subjectId: string) {
  const { rows } = await stack.db.query(
    `SELECT actor_id AS "actorId", data FROM audit_events WHERE action = $1 AND subject_id = $2 ORDER BY seq`,
    [action, subjectId],
  );
  return rows as Array<{ actorId: string; data: any }>;
}

/** Discoverable sign-in with `authenticator`: the verify answer. */
async function signIn(stack: TestStack, authenticator: SoftAuthenticator): Promise<ApiResponse<any>> {
  const anonymous = httpClient(stack, null);
  const options = await anonymous.post('/api/auth/login/options', {});
  return anonymous.post('/api/auth/login/verify', { response: authenticator.authenticate(options.body) });
}

/** Adds a second passkey to `person` (the ordinary step-up + registration) and signs in with it. */
async function secondPasskey(stack: TestStack, person: Person): Promise<{ id: string; on: Person }> {
  const creation = await person.post('/api/me/authenticators/options', {
    stepUp: await person.stepUp('authenticator.add', person.username, {}),
  });
  const second = new SoftAuthenticator({ origin: stack.origin });
  const registered = await person.post('/api/me/authenticators/verify', {
    response: second.register(creation.body),
    name: 'Backup key',
  });
  expect(registered.status).toBe(201);
  const signedIn = await signIn(stack, second);
  expect(signedIn.status).toBe(200);
  const on = personFor(stack, person.username, person.userId, second, sessionCookieFrom(signedIn.headers));
  return { id: registered.body.id, on };
}

describe('admin: one person, their passkeys and sessions', () => {
  let stack: TestStack;
  let admin: Person;

  beforeAll(async () => {
    stack = await startStack({ worker: false });
    admin = await enroll(stack, 'admin', { roles: ['admin'] });
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  it('shows a person with groups, roles, passkeys and live sessions; admins only', async () => {
    const bob = await enroll(stack, 'bob');
    const shown = await admin.get('/api/admin/users/bob');
    expect(shown.status).toBe(200);
    expect(shown.body).toMatchObject({ username: 'bob', roles: [], status: 'active', groups: ['approvers'] });
    expect(shown.body.authenticators).toEqual([
      expect.objectContaining({ credentialId: bob.authenticator.credentials[0].id, disabledAt: null }),
    ]);
    expect(shown.body.authenticators[0]).not.toHaveProperty('publicKey');
    expect(shown.body.sessions).toHaveLength(1);
    expect(shown.body.sessions[0]).not.toHaveProperty('tokenHash');
    expectError(await bob.get('/api/admin/users/admin'), 403, 'FORBIDDEN');
    expectError(await admin.get('/api/admin/users/nobody-here'), 404, 'USER_NOT_FOUND');
    expectError(await admin.get('/api/admin/users/Not%20A%20User'), 400, 'VALIDATION_FAILED');
  });

  it('disables a passkey only with a step-up bound to it: it can then neither sign in nor approve', async () => {
    const carl = await enroll(stack, 'carl');
    const dave = await enroll(stack, 'dave');
    const first = (await admin.get('/api/admin/users/dave')).body.authenticators[0].id as string;
    const { id: secondId, on: daveOnSecond } = await secondPasskey(stack, dave);
    const path = `/api/admin/users/dave/authenticators/${first}/disable`;
    const params = { reason: 'laptop stolen' };

    expectError(await admin.post(path, params), 401, 'STEP_UP_REQUIRED');
    const boundToSecond = await admin.stepUp('authenticator.disable', secondId, params);
    expectError(
      await admin.post(path, { ...params, stepUp: boundToSecond }),
      401,
      'STEP_UP_SUBJECT_MISMATCH',
    );
    const otherReason = await admin.stepUp('authenticator.disable', first, { reason: 'other' });
    expectError(await admin.post(path, { ...params, stepUp: otherReason }), 401, 'STEP_UP_SUBJECT_CHANGED');
    expectError(
      await carl.post(path, { ...params, stepUp: await carl.stepUp('authenticator.disable', first, params) }),
      403,
      'FORBIDDEN',
    );
    expect((await dave.get('/api/me')).status).toBe(200);

    const disabled = await admin.post(path, {
      ...params,
      stepUp: await admin.stepUp('authenticator.disable', first, params),
    });
    expect(disabled.status).toBe(200);
    expect(disabled.body).toMatchObject({ id: first, sessionsEnded: 1, lastUsable: false });

    // The session it opened ended; it signs in no more; its step-ups are refused.
    expectError(await dave.get('/api/me'), 401, 'UNAUTHENTICATED');
    expectError(await signIn(stack, dave.authenticator), 401, 'AUTHENTICATOR_DISABLED');
    const request = await admin.post('/api/requests', {
      entitlementId: 'api-admin-token',
      durationSeconds: 600,
      justification: 'admin-people e2e',
    });
    expect(request.status).toBe(201);
    const daveWithFirst = personFor(stack, 'dave', dave.userId, dave.authenticator, daveOnSecond.cookie);
    const refused = await daveOnSecond.post(`/api/requests/${request.body.id}/approve`, {
      stepUp: await daveWithFirst.stepUp('approve', request.body.id, undefined, {
        credentialId: dave.authenticator.credentials[0].id,
      }),
    });
    expectError(refused, 401, 'AUTHENTICATOR_DISABLED');
    expect((await daveOnSecond.decide(request.body.id, 'approve')).status).toBe(200);

    expectError(
      await admin.post(path, {
        ...params,
        stepUp: await admin.stepUp('authenticator.disable', first, params),
      }),
      409,
      'AUTHENTICATOR_ALREADY_DISABLED',
    );
    expect(await auditEvents(stack, 'authenticator.disabled', first)).toEqual([
      expect.objectContaining({
        actorId: admin.userId,
        data: expect.objectContaining({
          reason: 'admin',
          detail: 'laptop stolen',
          userId: dave.userId,
          lastUsable: false,
          evidence: expect.objectContaining({ action: 'authenticator.disable', subjectId: first }),
        }),
      }),
    ]);
    expect((await admin.get('/api/admin/users/dave')).body.authenticators).toEqual([
      expect.objectContaining({ id: first, disabledAt: expect.any(String) }),
      expect.objectContaining({ id: secondId, disabledAt: null }),
    ]);
  });

  it('disables the last usable passkey too, loudly; never one of the admin’s own', async () => {
    const erin = await enroll(stack, 'erin');
    const only = (await admin.get('/api/admin/users/erin')).body.authenticators[0].id as string;
    const params = { reason: 'left the company' };
    const disabled = await admin.post(`/api/admin/users/erin/authenticators/${only}/disable`, {
      ...params,
      stepUp: await admin.stepUp('authenticator.disable', only, params),
    });
    expect(disabled.body).toMatchObject({ lastUsable: true });
    expect(await auditEvents(stack, 'authenticator.disabled', only)).toEqual([
      expect.objectContaining({ data: expect.objectContaining({ lastUsable: true, alert: true }) }),
    ]);
    expectError(await erin.get('/api/me'), 401, 'UNAUTHENTICATED');

    const own = (await admin.get('/api/admin/users/admin')).body.authenticators[0].id as string;
    expectError(
      await admin.post(`/api/admin/users/admin/authenticators/${own}/disable`, {
        ...params,
        stepUp: await admin.stepUp('authenticator.disable', own, params),
      }),
      403,
      'FORBIDDEN',
    );
    expect((await admin.get('/api/me')).status).toBe(200);
  });

  it('ends one session of a person, audited; other sessions stay', async () => {
    const fay = await enroll(stack, 'fay');
    const again = await signIn(stack, fay.authenticator);
    const second = personFor(stack, 'fay', fay.userId, fay.authenticator, sessionCookieFrom(again.headers));
    const sessions = (await admin.get('/api/admin/users/fay')).body.sessions as Array<{ id: string }>;
    expect(sessions).toHaveLength(2);
    // Newest first: the second sign-in.
    const [newest, oldest] = sessions;

    expectError(await fay.post(`/api/admin/users/fay/sessions/${newest.id}/end`, {}), 403, 'FORBIDDEN');
    expectError(
      await admin.post(`/api/admin/users/admin/sessions/${newest.id}/end`, {}),
      404,
      'SESSION_NOT_FOUND',
    );
    const ended = await admin.post(`/api/admin/users/fay/sessions/${oldest.id}/end`, {});
    expect(ended.status).toBe(200);
    expectError(await fay.get('/api/me'), 401, 'UNAUTHENTICATED');
    expect((await second.get('/api/me')).status).toBe(200);
    expectError(
      await admin.post(`/api/admin/users/fay/sessions/${oldest.id}/end`, {}),
      404,
      'SESSION_NOT_FOUND',
    );
    expect(await auditEvents(stack, 'session.ended', oldest.id)).toEqual([
      { actorId: admin.userId, data: { reason: 'ended-by-admin', userId: fay.userId } },
    ]);
  });

  it('refuses self-suspension with 403 and keeps the account active', async () => {
    const params = { status: 'suspended', reason: 'testing' };
    const answer = await admin.post('/api/admin/users/admin/status', {
      ...params,
      stepUp: await admin.stepUp('user.suspend', 'admin', params),
    });
    expectError(answer, 403, 'FORBIDDEN');
    expect((await admin.get('/api/me')).status).toBe(200);
  });

  it('filters every request by state, entitlement and requester', async () => {
    const all = await admin.get('/api/requests?limit=200');
    expect(all.status).toBe(200);
    const byRequester = await admin.get('/api/requests?requester=admin&entitlementId=api-admin-token');
    expect(byRequester.status).toBe(200);
    expect(byRequester.body.items.length).toBeGreaterThan(0);
    for (const item of byRequester.body.items) {
      expect(item).toMatchObject({ requester: 'admin', entitlementId: 'api-admin-token' });
    }
    expect((await admin.get('/api/requests?requester=nobody-here')).body.items).toEqual([]);
    expect((await admin.get('/api/requests?entitlementId=demo-db-read')).body.items).toEqual([]);
    expectError(await admin.get('/api/requests?requester=Not%20A%20User'), 400, 'VALIDATION_FAILED');
    expectError(await admin.get('/api/requests?entitlementId=%27%3B--'), 400, 'VALIDATION_FAILED');
  });
});
