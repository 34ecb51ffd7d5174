import { createHash, createPublicKey, verify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import canonicalize from 'canonicalize';
import { createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';
import {
  clientAs,
  enroll,
  enrollAll,
  httpClient,
  INTROSPECTION_CLIENT,
  startStack,
  waitFor,
  type ApiResponse,
  type Person,
  type StepUpBody,
  type TestStack,
} from '../support/stack.js';

const REQUESTER = 'alice';
const APPROVER = 'bob';
const SECOND_APPROVER = 'dave';
const NOT_AN_APPROVER = 'carol';
// Sees every request (auditor role) but approves none: refused as NOT_AN_APPROVER rather than not found.
const AUDITOR = 'erin';
const FOREIGN_ORIGIN = 'https://evil.example';

async function introspect(stack: TestStack, token: string) {
  const credentials = Buffer.from(`${INTROSPECTION_CLIENT.id}:${INTROSPECTION_CLIENT.secret}`).toString(
    'base64',
  );
  const response = await fetch(`${stack.baseUrl}/api/introspect`, {
    method: 'POST',
    headers: { authorization: `Basic ${credentials}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token }).toString(),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/**
 * Rows a refused call must not add. Issuing a step-up challenge inserts a step_up_challenges row, so a
 * case that needs one issues it before its snapshot; using it only marks that row used and bumps the
 * authenticator's counter, which no count here sees.
 */
async function rowCounts(stack: TestStack) {
  const { rows } = await stack.db.query(`
    SELECT (SELECT count(*) FROM elevation_requests)::int AS requests,
           (SELECT count(*) FROM approvals)::int AS approvals,
           (SELECT count(*) FROM grants)::int AS grants,
           (SELECT count(*) FROM audit_events)::int AS events,
           (SELECT count(*) FROM users)::int AS users,
           (SELECT count(*) FROM sessions)::int AS sessions,
           (SELECT count(*) FROM step_up_challenges)::int AS challenges`);
  return rows[0] as Record<string, number>;
}

/**
 * Checks a decision's step-up evidence offline, as an auditor holding the export would (DESIGN §5), with
 * node:crypto and canonicalize only: the digest is that of the request's subject, the signed challenge
 * commits to person, action and request, and the person's own passkey made the signature.
 */
function expectEvidenceBinds(
  evidence: Record<string, string>,
  subject: Record<string, unknown>,
  person: Person,
  action: string,
): void {
  const subjectDigest = createHash('sha256').update(canonicalize(subject)!).digest('base64url');
  expect(evidence).toMatchObject({ userId: person.userId, action, subjectId: subject.id, subjectDigest });
  const challenge = createHash('sha256')
    .update(
      canonicalize([
        'jit-step-up/v1',
        evidence.nonce,
        evidence.userId,
        evidence.action,
        evidence.subjectId,
        evidence.subjectDigest,
      ])!,
    )
    .digest('base64url');
  const clientData = Buffer.from(evidence.clientDataJSON, 'base64url');
  expect(JSON.parse(clientData.toString('utf8'))).toMatchObject({ type: 'webauthn.get', challenge });
  const [credential] = person.authenticator.credentials;
  expect(evidence.credentialId).toBe(credential.id);
  const signed = Buffer.concat([
    Buffer.from(evidence.authenticatorData, 'base64url'),
    createHash('sha256').update(clientData).digest(),
  ]);
  const publicKey = createPublicKey({ key: credential.publicKeyJwk, format: 'jwk' });
  expect(verify('sha256', signed, publicKey, Buffer.from(evidence.signature, 'base64url'))).toBe(true);
}

/** Recomputes the whole chain with node:crypto and canonicalize only, independently of libs/audit. */
async function recomputeChain(stack: TestStack): Promise<{ ok: boolean; count: number; firstBad?: number }> {
  const { rows } = await stack.db.query(
    `SELECT seq, at, actor_id, action, subject_type, subject_id, request_id, data, prev_hash, hash
       FROM audit_events ORDER BY seq`,
  );
  let previous = Buffer.alloc(32);
  let expectedSeq = 1;
  for (const row of rows) {
    const event = {
      seq: Number(row.seq),
      at: (row.at as Date).toISOString(),
      actorId: row.actor_id,
      action: row.action,
      subjectType: row.subject_type,
      subjectId: row.subject_id,
      requestId: row.request_id,
      data: row.data,
      prevHash: previous.toString('hex'),
    };
    const hash = createHash('sha256').update(previous).update(canonicalize(event)!).digest();
    if (event.seq !== expectedSeq || !hash.equals(row.hash) || !previous.equals(row.prev_hash)) {
      return { ok: false, count: rows.length, firstBad: event.seq };
    }
    previous = hash;
    expectedSeq += 1;
  }
  return { ok: true, count: rows.length };
}

async function newRequest(stack: TestStack, entitlementId = 'api-admin-token', durationSeconds = 600) {
  const response = await clientAs(stack, REQUESTER).post('/api/requests', {
    entitlementId,
    durationSeconds,
    justification: 'Rotate the API admin credentials (e2e)',
    ...(entitlementId.startsWith('demo-db') ? { ticket: 'CHG-1234' } : {}),
  });
  expect(response.status).toBe(201);
  return response.body as { id: string; state: string };
}

describe('elevation loop over HTTP (real PostgreSQL, Redis, BullMQ worker)', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startStack();
    // People exist once enrolled through an invite and a passkey; each keeps its session cookie.
    await enrollAll(stack, [REQUESTER, APPROVER, SECOND_APPROVER, NOT_AN_APPROVER]);
    await enroll(stack, AUDITOR, { roles: ['auditor'] });
    for (const user of [REQUESTER, APPROVER, SECOND_APPROVER, NOT_AN_APPROVER, AUDITOR]) {
      expect((await clientAs(stack, user).get('/api/me')).status).toBe(200);
    }
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 60_000);

  it('requests, approves, activates, revokes at notAfter, and chains every step', async () => {
    const alice = clientAs(stack, REQUESTER);
    const bob = clientAs(stack, APPROVER);
    const created = await newRequest(stack, 'api-admin-token', 3);
    expect(created.state).toBe('PENDING');

    const approved = await bob.decide(created.id, 'approve', { comment: 'ok' });
    expect(approved.status).toBe(200);
    expect(approved.body.state).toBe('APPROVED');

    const activated = await alice.decide(created.id, 'activate');
    expect(activated.status).toBe(200);
    const { request, credential } = activated.body as {
      request: { state: string; notAfter: string };
      credential: { type: string; token: string; notAfter: string };
    };
    expect(request.state).toBe('ACTIVE');
    expect(credential.type).toBe('jwt');
    const notAfter = new Date(request.notAfter).getTime();
    expect(credential.notAfter).toBe(request.notAfter);

    const { rows: grants } = await stack.db.query(
      'SELECT id, state, fingerprint FROM grants WHERE request_id = $1',
      [created.id],
    );
    expect(grants).toHaveLength(1);
    const claims = decodeJwt(credential.token);
    expect(claims.exp! * 1000).toBe(notAfter);
    expect(claims.jti).toBe(grants[0].id);
    expect(claims.sub).toBe(REQUESTER);
    expect(claims.aud).toBe('https://api.example.com');
    // The token verifies against the published JWKS; the secret itself is not stored.
    const jwks = await clientAs(stack, null).get('/.well-known/jwks.json');
    await expect(jwtVerify(credential.token, createLocalJWKSet(jwks.body))).resolves.toBeDefined();
    expect(grants[0].fingerprint).toBe(createHash('sha256').update(credential.token).digest('base64url'));
    const { rows: leaks } = await stack.db.query(
      `SELECT count(*)::int AS n FROM audit_events WHERE data::text LIKE '%' || $1 || '%'`,
      [credential.token.split('.')[2]],
    );
    expect(leaks[0].n).toBe(0);

    const before = await introspect(stack, credential.token);
    expect(Date.now()).toBeLessThan(notAfter);
    expect(before.body).toMatchObject({ active: true, sub: REQUESTER, jti: grants[0].id });

    const inactiveAt = await waitFor(
      async () =>
        (await introspect(stack, credential.token)).body.active === false ? Date.now() : undefined,
      notAfter - Date.now() + 10_000,
      'introspection to turn inactive',
    );
    expect(inactiveAt - notAfter).toBeLessThanOrEqual(2000);

    const revoked = await waitFor(
      async () => {
        const { rows } = await stack.db.query(
          `SELECT g.state, g.revoked_at, g.not_after, r.state AS request_state
             FROM grants g JOIN elevation_requests r ON r.id = g.request_id WHERE g.request_id = $1`,
          [created.id],
        );
        // The request ends when the worker starts revoking; the grant is REVOKED once the connector confirms.
        return rows[0].state === 'REVOKED' ? rows[0] : undefined;
      },
      5000,
      'the grant to be revoked',
    );
    expect(revoked.request_state).toBe('ENDED');
    expect(revoked.revoked_at.getTime() - revoked.not_after.getTime()).toBeGreaterThanOrEqual(0);
    expect(revoked.revoked_at.getTime() - revoked.not_after.getTime()).toBeLessThanOrEqual(2000);
    expect((await alice.get(`/api/requests/${created.id}`)).body.state).toBe('ENDED');

    // The chain also holds enrollment, session and other requests' events: this request's own come in order.
    const { rows: events } = await stack.db.query(
      'SELECT action, actor_id, data FROM audit_events WHERE request_id = $1 ORDER BY seq',
      [created.id],
    );
    expect(events.map((event) => event.action)).toEqual([
      'request.created',
      'approval.recorded',
      'request.approved',
      'request.activated',
      'grant.issued',
      // The request ends when its revocation falls due, then the grant is revoked (a jwt grant: in the same
      // transaction, since nothing outside the database is taken back).
      'request.ended',
      'grant.revoked',
    ]);
    const eventData = (action: string) => events.find((event) => event.action === action)!.data;
    expect(eventData('grant.revoked').lagMs).toBeGreaterThanOrEqual(0);
    const subject = eventData('request.created').subject as Record<string, unknown>;
    expect(subject).toEqual({
      id: created.id,
      requesterId: alice.userId,
      entitlementId: 'api-admin-token',
      policyHash: expect.any(String),
      scope: { scopes: ['admin:read', 'admin:write'] },
      durationSeconds: 3,
      justification: 'Rotate the API admin credentials (e2e)',
      ticket: null,
      notBefore: null,
      breakGlass: false,
      extendsRequestId: null,
      sshPublicKey: null,
    });
    expectEvidenceBinds(eventData('approval.recorded').evidence, subject, bob, 'approve');
    expectEvidenceBinds(eventData('request.activated').evidence, subject, alice, 'activate');
    const chain = await recomputeChain(stack);
    expect(chain).toEqual({ ok: true, count: expect.any(Number) });
    expect(chain.count).toBeGreaterThanOrEqual(events.length);
  }, 30_000);

  it('refuses bad input with the error envelope and writes nothing', async () => {
    const alice = clientAs(stack, REQUESTER);
    const bob = clientAs(stack, APPROVER);
    const pending = await newRequest(stack);
    const valid = { entitlementId: 'api-admin-token', durationSeconds: 60, justification: 'x' };
    const challenge = (person: Person, action: string, subjectId = pending.id) =>
      person.post('/api/step-up/challenge', { action, subjectId });
    type Call = (stepUp: StepUpBody | undefined) => Promise<ApiResponse<any>>;
    // [name, call, status, code, prepare]: prepare runs before the snapshot and hands the call a step-up.
    const cases: Array<[string, Call, number, string, (() => Promise<StepUpBody>)?]> = [
      [
        'unknown entitlement',
        () => alice.post('/api/requests', { ...valid, entitlementId: 'no-such' }),
        404,
        'ENTITLEMENT_NOT_FOUND',
      ],
      [
        'duration above maximum',
        () => alice.post('/api/requests', { ...valid, durationSeconds: 3601 }),
        422,
        'DURATION_TOO_LONG',
      ],
      [
        'missing justification',
        () => alice.post('/api/requests', { entitlementId: 'api-admin-token', durationSeconds: 60 }),
        422,
        'JUSTIFICATION_REQUIRED',
      ],
      [
        'NUL in a justification',
        () => alice.post('/api/requests', { ...valid, justification: 'a\u0000b' }),
        400,
        'VALIDATION_FAILED',
      ],
      [
        'lone surrogate in a justification',
        () => alice.postRaw('/api/requests', JSON.stringify(valid).replace('"x"', '"x\\ud800"')),
        400,
        'VALIDATION_FAILED',
      ],
      [
        'NUL in a ticket',
        () => alice.post('/api/requests', { ...valid, entitlementId: 'demo-db-read', ticket: 'CHG-1\u0000' }),
        400,
        'VALIDATION_FAILED',
      ],
      [
        'week-date notBefore',
        () => alice.post('/api/requests', { ...valid, notBefore: '2099-W05-1' }),
        400,
        'VALIDATION_FAILED',
      ],
      [
        'ordinal-date notBefore',
        () => alice.post('/api/requests', { ...valid, notBefore: '2099-100' }),
        400,
        'VALIDATION_FAILED',
      ],
      [
        'impossible notBefore',
        () => alice.post('/api/requests', { ...valid, notBefore: '2099-02-30T10:00:00Z' }),
        400,
        'VALIDATION_FAILED',
      ],
      [
        'blank justification',
        () => alice.post('/api/requests', { ...valid, justification: '   ' }),
        422,
        'JUSTIFICATION_REQUIRED',
      ],
      [
        'unknown field',
        () => alice.post('/api/requests', { ...valid, admin: true }),
        400,
        'VALIDATION_FAILED',
      ],
      [
        'duration as a string',
        () => alice.post('/api/requests', { ...valid, durationSeconds: '60' }),
        400,
        'VALIDATION_FAILED',
      ],
      [
        'zero duration',
        () => alice.post('/api/requests', { ...valid, durationSeconds: 0 }),
        400,
        'VALIDATION_FAILED',
      ],
      [
        'malformed JSON',
        () => alice.postRaw('/api/requests', '{"entitlementId": '),
        400,
        'VALIDATION_FAILED',
      ],
      ['JSON array body', () => alice.postRaw('/api/requests', '[1,2]'), 400, 'VALIDATION_FAILED'],
      [
        'missing ticket',
        () => alice.post('/api/requests', { ...valid, entitlementId: 'demo-db-read' }),
        422,
        'TICKET_REQUIRED',
      ],
      [
        'malformed ticket',
        () => alice.post('/api/requests', { ...valid, entitlementId: 'demo-db-read', ticket: 'nope' }),
        422,
        'TICKET_INVALID',
      ],
      [
        'notBefore in the past',
        () => alice.post('/api/requests', { ...valid, notBefore: '2001-01-01T00:00:00Z' }),
        400,
        'VALIDATION_FAILED',
      ],
      ['non-UUID id (get)', () => alice.get('/api/requests/not-a-uuid'), 400, 'INVALID_ID'],
      [
        'non-UUID id (approve)',
        (stepUp) => bob.post('/api/requests/1234/approve', { stepUp }),
        400,
        'INVALID_ID',
        () => bob.stepUp('approve', pending.id),
      ],
      ['non-UUID id (challenge)', () => challenge(bob, 'approve', '1234'), 400, 'INVALID_ID'],
      [
        'unknown request',
        () => alice.get('/api/requests/01900000-0000-7000-8000-000000000000'),
        404,
        'REQUEST_NOT_FOUND',
      ],
      [
        'unknown field on approve',
        (stepUp) => bob.post(`/api/requests/${pending.id}/approve`, { stepUp, force: true }),
        400,
        'VALIDATION_FAILED',
        () => bob.stepUp('approve', pending.id),
      ],
      [
        'deny without reason',
        (stepUp) => bob.post(`/api/requests/${pending.id}/deny`, { stepUp }),
        400,
        'VALIDATION_FAILED',
        () => bob.stepUp('deny', pending.id),
      ],
      [
        'approve without a step-up',
        () => bob.post(`/api/requests/${pending.id}/approve`, { comment: 'ok' }),
        401,
        'STEP_UP_REQUIRED',
      ],
      [
        'deny without a step-up',
        () => bob.post(`/api/requests/${pending.id}/deny`, { reason: 'no' }),
        401,
        'STEP_UP_REQUIRED',
      ],
      // Refused when the challenge is asked for, before anyone touches a passkey, and again on the call.
      ['self-approval (challenge)', () => challenge(alice, 'approve'), 403, 'SELF_APPROVAL'],
      ['self-approval', () => alice.post(`/api/requests/${pending.id}/approve`, {}), 403, 'SELF_APPROVAL'],
      ['self-denial (challenge)', () => challenge(alice, 'deny'), 403, 'SELF_APPROVAL'],
      [
        'approval by a non-approver (challenge)',
        () => challenge(clientAs(stack, NOT_AN_APPROVER), 'approve'),
        404,
        'REQUEST_NOT_FOUND',
      ],
      [
        'approval by a non-approver',
        () => clientAs(stack, NOT_AN_APPROVER).post(`/api/requests/${pending.id}/approve`, {}),
        404,
        'REQUEST_NOT_FOUND',
      ],
      [
        'approval by an auditor who may see it (challenge)',
        () => challenge(clientAs(stack, AUDITOR), 'approve'),
        403,
        'NOT_AN_APPROVER',
      ],
      [
        'approval by an auditor who may see it',
        () => clientAs(stack, AUDITOR).post(`/api/requests/${pending.id}/approve`, {}),
        403,
        'NOT_AN_APPROVER',
      ],
      ['activation by an approver (challenge)', () => challenge(bob, 'activate'), 403, 'NOT_REQUESTER'],
      [
        'activation with a body field',
        (stepUp) => alice.post(`/api/requests/${pending.id}/activate`, { stepUp, now: true }),
        400,
        'VALIDATION_FAILED',
        () => alice.stepUp('activate', pending.id),
      ],
      [
        'activation without a step-up',
        () => alice.post(`/api/requests/${pending.id}/activate`, {}),
        401,
        'STEP_UP_REQUIRED',
      ],
      [
        'activation before approval',
        (stepUp) => alice.post(`/api/requests/${pending.id}/activate`, { stepUp }),
        409,
        'REQUEST_NOT_APPROVED',
        () => alice.stepUp('activate', pending.id),
      ],
      ['no session', () => clientAs(stack, null).post('/api/requests', valid), 401, 'UNAUTHENTICATED'],
      ['no session (me)', () => clientAs(stack, null).get('/api/me'), 401, 'UNAUTHENTICATED'],
      [
        'forged session cookie',
        () => httpClient(stack, 'jit_session=forged').post('/api/requests', valid),
        401,
        'UNAUTHENTICATED',
      ],
      [
        'foreign Origin',
        () => httpClient(stack, alice.cookie, FOREIGN_ORIGIN).post('/api/requests', valid),
        403,
        'ORIGIN_NOT_ALLOWED',
      ],
      [
        'no Origin',
        () => httpClient(stack, alice.cookie, null).post('/api/requests', valid),
        403,
        'ORIGIN_NOT_ALLOWED',
      ],
      [
        'foreign Origin on approve, with a valid step-up',
        (stepUp) =>
          httpClient(stack, bob.cookie, FOREIGN_ORIGIN).post(`/api/requests/${pending.id}/approve`, {
            stepUp,
          }),
        403,
        'ORIGIN_NOT_ALLOWED',
        () => bob.stepUp('approve', pending.id),
      ],
      ['bad list limit', () => alice.get('/api/requests?limit=5000'), 400, 'VALIDATION_FAILED'],
    ];
    for (const [name, call, status, code, prepare] of cases) {
      const stepUp = await prepare?.();
      const before = await rowCounts(stack);
      const response = await call(stepUp);
      expect({ name, status: response.status, code: response.body?.error?.code }).toEqual({
        name,
        status,
        code,
      });
      expect(typeof response.body.error.message).toBe('string');
      expect({ name, rows: await rowCounts(stack) }).toEqual({ name, rows: before });
    }
    expect((await alice.get(`/api/requests/${pending.id}`)).body.state).toBe('PENDING');
  }, 30_000);

  it('lets exactly one of two parallel approvals win, with one approved event', async () => {
    const created = await newRequest(stack);
    const racers = [clientAs(stack, APPROVER), clientAs(stack, SECOND_APPROVER)];
    // Each racer holds its own valid step-up first, so the two posts race only on the decision.
    const stepUps = await Promise.all(racers.map((racer) => racer.stepUp('approve', created.id)));
    const responses = await Promise.all(
      racers.map((racer, index) =>
        racer.post(`/api/requests/${created.id}/approve`, { stepUp: stepUps[index] }),
      ),
    );
    expect(responses.map((response) => response.status).sort()).toEqual([200, 409]);
    expect(responses.find((response) => response.status === 409)!.body.error.code).toBe(
      'REQUEST_NOT_PENDING',
    );
    const { rows } = await stack.db.query(
      `SELECT (SELECT count(*)::int FROM audit_events WHERE request_id = $1 AND action = 'request.approved') AS approved,
              (SELECT count(*)::int FROM approvals WHERE request_id = $1) AS approvals,
              (SELECT state FROM elevation_requests WHERE id = $1) AS state`,
      [created.id],
    );
    expect(rows[0]).toEqual({ approved: 1, approvals: 1, state: 'APPROVED' });
  }, 30_000);

  it('keeps a 2-approval request pending after one approval and refuses a second decision by the same approver', async () => {
    const created = await newRequest(stack, 'demo-db-write');
    const bob = clientAs(stack, APPROVER);
    const first = await bob.decide(created.id, 'approve');
    expect(first.status).toBe(200);
    expect(first.body.state).toBe('PENDING');
    const again = await bob.decide(created.id, 'approve');
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('ALREADY_DECIDED');
    const denied = await clientAs(stack, SECOND_APPROVER).decide(created.id, 'deny', { reason: 'no' });
    expect(denied.status).toBe(200);
    expect(denied.body.state).toBe('DENIED');
    // The requester's view of the request lists both decisions, the deny reason included.
    const seen = await clientAs(stack, REQUESTER).get(`/api/requests/${created.id}`);
    expect(seen.body.decisions).toEqual([
      { approver: APPROVER, decision: 'approve', comment: null, at: expect.any(String) },
      { approver: SECOND_APPROVER, decision: 'deny', comment: 'no', at: expect.any(String) },
    ]);
  }, 30_000);

  it('answers introspection only to authenticated clients and inactive for garbage', async () => {
    const anonymous = await fetch(`${stack.baseUrl}/api/introspect`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'token=abc',
    });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toBe('Basic realm="introspection"');
    expect(((await anonymous.json()) as any).error.code).toBe('INVALID_CLIENT');
    for (const credentials of ['a%:b', `${INTROSPECTION_CLIENT.id}:wrong-secret`, 'no-colon', '%E0%A4%A:x']) {
      const response = await fetch(`${stack.baseUrl}/api/introspect`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(credentials).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: 'token=abc',
      });
      expect({ credentials, status: response.status }).toEqual({ credentials, status: 401 });
    }
    expect((await introspect(stack, 'not.a.token')).body).toEqual({ active: false });
  });

  it('refuses decisions once the pending TTL has passed, writing nothing', async () => {
    const created = await newRequest(stack);
    await stack.db.query(
      `UPDATE elevation_requests SET pending_until = now() - interval '1 second' WHERE id = $1`,
      [created.id],
    );
    const bob = clientAs(stack, APPROVER);
    for (const [action, body] of [
      ['approve', { comment: 'late' }],
      ['deny', { reason: 'late' }],
    ] as const) {
      // Step-up first: issuing its challenge writes a row of its own, before the snapshot.
      const stepUp = await bob.stepUp(action, created.id);
      const before = await rowCounts(stack);
      const response = await bob.post(`/api/requests/${created.id}/${action}`, { ...body, stepUp });
      expect(response.status).toBe(409);
      expect(response.body.error.code).toBe('REQUEST_EXPIRED');
      expect(await rowCounts(stack)).toEqual(before);
    }
  });

  it('opens the activation window of a scheduled request at its notBefore', async () => {
    const notBefore = new Date(Date.now() + 3600_000);
    notBefore.setUTCMilliseconds(0);
    const created = await clientAs(stack, REQUESTER).post('/api/requests', {
      entitlementId: 'api-admin-token',
      durationSeconds: 600,
      justification: 'Scheduled maintenance',
      notBefore: notBefore.toISOString(),
    });
    expect(created.status).toBe(201);
    const approved = await clientAs(stack, APPROVER).decide(created.body.id, 'approve');
    expect(approved.body.state).toBe('APPROVED');
    // example.yaml: activationWindow defaults to 15 minutes.
    expect(approved.body.activateBy).toBe(new Date(notBefore.getTime() + 15 * 60_000).toISOString());
    const early = await clientAs(stack, REQUESTER).decide(created.body.id, 'activate');
    expect(early.status).toBe(409);
    expect(early.body.error.code).toBe('NOT_YET_STARTED');
  });

  it('reports liveness and readiness of PostgreSQL and Redis', async () => {
    const anonymous = clientAs(stack, null);
    const live = await anonymous.get('/health/live');
    expect({ status: live.status, body: live.body }).toEqual({ status: 200, body: { status: 'ok' } });
    const ready = await anonymous.get('/health/ready');
    expect({ status: ready.status, body: ready.body }).toEqual({
      status: 200,
      body: { status: 'ok', checks: { postgres: 'up', redis: 'up' } },
    });
  });

  it('lists the requests each person may see, newest first, by state and one page at a time', async () => {
    type Item = { id: string; state: string; requesterId: string };
    const list = async (user: string, query: string) => {
      const response = await clientAs(stack, user).get(`/api/requests?${query}`);
      expect(response.status).toBe(200);
      return response.body as { items: Item[]; nextCursor: string | null };
    };
    const mine = (await list(REQUESTER, 'limit=100')).items.map((item) => item.id);
    expect(mine.length).toBeGreaterThanOrEqual(2);
    expect([...mine].sort().reverse()).toEqual(mine);
    const first = await list(REQUESTER, 'limit=1');
    expect(first.items.map((item) => item.id)).toEqual([mine[0]]);
    const second = await list(REQUESTER, `limit=1&cursor=${first.nextCursor}`);
    expect(second.items.map((item) => item.id)).toEqual([mine[1]]);
    const denied = (await list(REQUESTER, 'state=DENIED&limit=100')).items;
    expect(denied.length).toBeGreaterThan(0);
    expect(denied.every((item) => item.state === 'DENIED' && mine.includes(item.id))).toBe(true);
    // Not an approver of anything: none of alice's requests; an auditor sees every one of them.
    const others = (await list(NOT_AN_APPROVER, 'limit=100')).items.map((item) => item.id);
    expect(others.filter((id) => mine.includes(id))).toEqual([]);
    const audited = (await list(AUDITOR, 'limit=100')).items.map((item) => item.id);
    expect(mine.every((id) => audited.includes(id))).toBe(true);
  }, 30_000);

  it('rejects UPDATE, DELETE and TRUNCATE on audit_events', async () => {
    for (const statement of [
      `UPDATE audit_events SET action = 'forged' WHERE seq = 1`,
      'DELETE FROM audit_events WHERE seq = 1',
      'TRUNCATE audit_events',
    ]) {
      await expect(stack.db.query(statement)).rejects.toThrow(/append-only/);
    }
    expect((await recomputeChain(stack)).ok).toBe(true);
  });
});
