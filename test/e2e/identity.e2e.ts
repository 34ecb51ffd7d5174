import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { PublicKeyCredentialCreationOptionsJSON } from '@simplewebauthn/server';
import { SoftAuthenticator, type CeremonyOverrides } from '../support/soft-authenticator.js';
import {
  enroll,
  enrollWith,
  httpClient,
  inviteToken,
  personFor,
  sessionCookieFrom,
  startStack,
  waitFor,
  type ApiResponse,
  type Person,
  type TestStack,
} from '../support/stack.js';

function sha256(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/** The token inside a `jit_session=<token>` cookie pair. */
function tokenOf(cookie: string): string {
  return cookie.slice(cookie.indexOf('=') + 1);
}

function newAuthenticator(stack: TestStack): SoftAuthenticator {
  return new SoftAuthenticator({ origin: stack.origin });
}

/** Discoverable-credential sign-in: no username, the passkey picks the account. The verify answer. */
async function signIn(
  stack: TestStack,
  authenticator: SoftAuthenticator,
  overrides?: CeremonyOverrides,
): Promise<ApiResponse<any>> {
  const anonymous = httpClient(stack, null);
  const options = await anonymous.post('/api/auth/login/options', {});
  expect(options.status).toBe(200);
  expect(options.body.allowCredentials ?? []).toEqual([]);
  return anonymous.post('/api/auth/login/verify', {
    response: authenticator.authenticate(options.body, overrides),
  });
}

async function auditEvents(stack: TestStack, action: string, subjectId?: string) {
  const { rows } = await stack.db.query(
    `SELECT seq, actor_id AS "actorId", subject_type AS "subjectType", subject_id AS "subjectId", data
       FROM audit_events WHERE action = $1 AND ($2::text IS NULL OR subject_id = $2) ORDER BY seq`,
    [action, subjectId ?? null],
  );
  return rows as Array<{ seq: string; actorId: string; subjectType: string; subjectId: string; data: any }>;
}

async function authenticatorRow(stack: TestStack, credentialId: string) {
  const { rows } = await stack.db.query(
    `SELECT id, user_id AS "userId", sign_count::int AS "signCount", last_used_at AS "lastUsedAt",
            disabled_at AS "disabledAt", disabled_reason AS "disabledReason", removed_at AS "removedAt"
       FROM authenticators WHERE credential_id = $1`,
    [credentialId],
  );
  return rows[0] as
    | {
        id: string;
        userId: string;
        signCount: number;
        lastUsedAt: Date | null;
        disabledAt: Date | null;
        disabledReason: string | null;
        removedAt: Date | null;
      }
    | undefined;
}

/** Creation options no server ever issued, for a registration the broker has never seen. */
function fabricatedCreationOptions(): PublicKeyCredentialCreationOptionsJSON {
  return {
    rp: { id: 'localhost', name: 'nobody' },
    user: { id: randomBytes(16).toString('base64url'), name: 'stranger', displayName: 'Stranger' },
    challenge: randomBytes(32).toString('base64url'),
    pubKeyCredParams: [{ type: 'public-key', alg: -7 }],
  };
}

function expectError(answer: ApiResponse<any>, status: number, code: string): void {
  expect({ status: answer.status, code: answer.body?.error?.code }).toEqual({ status, code });
  expect(typeof answer.body.error.message).toBe('string');
}

describe('identity: invites, passkey sign-in, sessions, authenticators', () => {
  let stack: TestStack;
  let admin: Person;

  beforeAll(async () => {
    stack = await startStack({ worker: false });
    admin = await enroll(stack, 'admin', { roles: ['admin'] });
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  it('enrolls from an invite, then signs in again later with the discoverable passkey', async () => {
    const authenticator = newAuthenticator(stack);
    const token = await inviteToken(stack, 'alice');
    const anonymous = httpClient(stack, null);

    const creation = await anonymous.post('/api/auth/enroll/options', { invite: token });
    expect(creation.status).toBe(200);
    expect(creation.body).toMatchObject({
      rp: { id: 'localhost' },
      user: { name: 'alice' },
      authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
    });
    const enrolled = await anonymous.post('/api/auth/enroll/verify', {
      invite: token,
      response: authenticator.register(creation.body),
    });
    expect(enrolled.status).toBe(200);
    expect(enrolled.body.user).toEqual({
      id: expect.any(String),
      username: 'alice',
      displayName: 'alice',
      roles: [],
    });
    const enrollmentCookie = sessionCookieFrom(enrolled.headers);

    const signedIn = await signIn(stack, authenticator);
    expect(signedIn.status).toBe(200);
    expect(signedIn.body.user).toMatchObject({ id: enrolled.body.user.id, username: 'alice' });
    const cookie = sessionCookieFrom(signedIn.headers);
    expect(cookie).not.toBe(enrollmentCookie);

    const me = await httpClient(stack, cookie).get('/api/me');
    expect(me.status).toBe(200);
    expect(me.body).toEqual({
      id: enrolled.body.user.id,
      username: 'alice',
      displayName: 'alice',
      roles: [],
      groups: expect.arrayContaining(['engineers', 'oncall']),
    });
    expect(Object.keys(me.body).sort()).toEqual(['displayName', 'groups', 'id', 'roles', 'username']);

    const stored = await authenticatorRow(stack, authenticator.credentials[0].id);
    expect(stored).toMatchObject({ userId: enrolled.body.user.id, signCount: 1, disabledAt: null });
    expect(stored?.lastUsedAt).toBeInstanceOf(Date);
  });

  it('refuses a used invite (410), an expired one (410) and an unknown one (404), writing nothing', async () => {
    const anonymous = httpClient(stack, null);

    const used = await inviteToken(stack, 'carol');
    expect((await enrollWith(stack, used, newAuthenticator(stack))).status).toBe(200);
    expectError(await anonymous.post('/api/auth/enroll/options', { invite: used }), 410, 'INVITE_USED');
    expectError(
      await anonymous.post('/api/auth/enroll/verify', {
        invite: used,
        response: newAuthenticator(stack).register(fabricatedCreationOptions()),
      }),
      410,
      'INVITE_USED',
    );

    // Expired between the options and the verify: both refuse, and erin gets no passkey.
    const expiring = await inviteToken(stack, 'erin');
    const [{ lifetime }] = (
      await stack.db.query(
        `SELECT extract(epoch FROM expires_at - created_at)::int AS lifetime FROM enrollment_invites
          WHERE token_hash = $1`,
        [sha256(expiring)],
      )
    ).rows;
    expect(lifetime).toBe(stack.config.inviteTtlSeconds);
    const creation = await anonymous.post('/api/auth/enroll/options', { invite: expiring });
    expect(creation.status).toBe(200);
    await stack.db.query(
      `UPDATE enrollment_invites SET expires_at = now() - interval '1 second' WHERE token_hash = $1`,
      [sha256(expiring)],
    );
    expectError(
      await anonymous.post('/api/auth/enroll/options', { invite: expiring }),
      410,
      'INVITE_EXPIRED',
    );
    expectError(
      await anonymous.post('/api/auth/enroll/verify', {
        invite: expiring,
        response: newAuthenticator(stack).register(creation.body),
      }),
      410,
      'INVITE_EXPIRED',
    );
    const { rows } = await stack.db.query(
      `SELECT (SELECT count(*)::int FROM authenticators a WHERE a.user_id = u.id) AS passkeys,
              (SELECT count(*)::int FROM sessions s WHERE s.user_id = u.id) AS sessions,
              (SELECT count(*)::int FROM enrollment_invites i WHERE i.user_id = u.id AND i.used_at IS NOT NULL) AS used
         FROM users u WHERE u.username = 'erin'`,
    );
    expect(rows).toEqual([{ passkeys: 0, sessions: 0, used: 0 }]);

    const unknown = randomBytes(32).toString('base64url');
    expectError(
      await anonymous.post('/api/auth/enroll/options', { invite: unknown }),
      404,
      'INVITE_NOT_FOUND',
    );
    expectError(
      await anonymous.post('/api/auth/enroll/options', { invite: 'nope' }),
      400,
      'VALIDATION_FAILED',
    );
  });

  it('sets the session cookie HttpOnly, SameSite=Strict, Path=/, without Secure on localhost', async () => {
    const authenticator = newAuthenticator(stack);
    const enrolled = await enrollWith(stack, await inviteToken(stack, 'frank'), authenticator);
    const signedIn = await signIn(stack, authenticator);
    for (const answer of [enrolled, signedIn]) {
      expect(answer.status).toBe(200);
      const [setCookie, ...others] = answer.headers
        .getSetCookie()
        .filter((cookie) => /jit_session=/.test(cookie));
      expect(others).toEqual([]);
      const [pair, ...attributes] = setCookie.split(';').map((part) => part.trim());
      expect(pair).toMatch(/^jit_session=[A-Za-z0-9_-]{43}$/);
      const names = attributes.map((attribute) => attribute.split('=')[0].toLowerCase());
      expect(names).toEqual(expect.arrayContaining(['httponly', 'samesite', 'path']));
      expect(names).not.toContain('secure');
      expect(attributes).toContainEqual(expect.stringMatching(/^SameSite=Strict$/i));
      expect(attributes).toContainEqual('Path=/');
      // The cookie lives no longer than the session's absolute limit.
      const expires = attributes.find((attribute) => /^expires=/i.test(attribute));
      expect(expires).toBeDefined();
      expect(new Date(expires!.slice('expires='.length)).getTime()).toBeLessThanOrEqual(
        new Date(answer.body.sessionExpiresAt).getTime(),
      );
    }
  });

  it('logout ends that session only: the old cookie then gets 401', async () => {
    const authenticator = newAuthenticator(stack);
    const enrolled = await enrollWith(stack, await inviteToken(stack, 'gina'), authenticator);
    const other = httpClient(stack, sessionCookieFrom(enrolled.headers));
    const cookie = sessionCookieFrom((await signIn(stack, authenticator)).headers);
    const client = httpClient(stack, cookie);
    expect((await client.get('/api/me')).status).toBe(200);

    // A state-changing call must carry an allowed Origin (DESIGN §5), logout included.
    expectError(
      await httpClient(stack, cookie, null).post('/api/auth/logout', {}),
      403,
      'ORIGIN_NOT_ALLOWED',
    );
    expect((await client.get('/api/me')).status).toBe(200);

    const loggedOut = await client.post('/api/auth/logout', {});
    expect(loggedOut.status).toBe(204);
    // The browser is told to drop the cookie.
    expect(loggedOut.headers.getSetCookie()).toContainEqual(
      expect.stringMatching(/^jit_session=;.*Expires=Thu, 01 Jan 1970/),
    );
    expectError(await client.get('/api/me'), 401, 'UNAUTHENTICATED');
    expectError(await client.post('/api/auth/logout', {}), 401, 'UNAUTHENTICATED');
    const { rows } = await stack.db.query(
      `SELECT end_reason AS "endReason", ended_at IS NOT NULL AS ended FROM sessions WHERE token_hash = $1`,
      [sha256(tokenOf(cookie))],
    );
    expect(rows).toEqual([{ endReason: 'logout', ended: true }]);
    expect((await other.get('/api/me')).status).toBe(200);
  });

  it('never stores a raw invite or session token: only their sha256, and the token appears nowhere', async () => {
    const authenticator = newAuthenticator(stack);
    const usedInvite = await inviteToken(stack, 'hank');
    const enrolled = await enrollWith(stack, usedInvite, authenticator);
    expect(enrolled.status).toBe(200);
    const openInvite = await inviteToken(stack, 'ivy');
    const sessionTokens = [
      tokenOf(sessionCookieFrom(enrolled.headers)),
      tokenOf(sessionCookieFrom((await signIn(stack, authenticator)).headers)),
    ];

    for (const token of [usedInvite, openInvite]) {
      const { rows } = await stack.db.query(
        `SELECT count(*)::int AS n FROM enrollment_invites WHERE token_hash = $1`,
        [sha256(token)],
      );
      expect(rows[0].n).toBe(1);
    }
    for (const token of sessionTokens) {
      const { rows } = await stack.db.query(`SELECT count(*)::int AS n FROM sessions WHERE token_hash = $1`, [
        sha256(token),
      ]);
      expect(rows[0].n).toBe(1);
    }

    // A dump of every row of every table (bytea as hex), searched for each token in every spelling.
    const { rows: tables } = await stack.db.query(
      `SELECT table_name AS name FROM information_schema.tables
        WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`,
    );
    expect(tables.map((table) => table.name)).toEqual(
      expect.arrayContaining(['sessions', 'enrollment_invites', 'audit_events']),
    );
    let dump = '';
    for (const { name } of tables) {
      const { rows } = await stack.db.query(`SELECT row_to_json(t)::text AS row FROM "${name}" t`);
      dump += rows.map((row) => row.row).join('\n');
    }
    expect(dump).toContain(sha256(usedInvite).toString('hex'));
    for (const token of [usedInvite, openInvite, ...sessionTokens]) {
      const raw = Buffer.from(token, 'base64url');
      for (const spelling of [
        token,
        raw.toString('hex'),
        raw.toString('base64').replace(/=+$/, ''),
        Buffer.from(token, 'utf8').toString('hex'),
      ]) {
        expect(dump.includes(spelling)).toBe(false);
      }
    }
  });

  it('writes nothing on a read: the session row moves only once its idle clock is a minute old', async () => {
    const reader = await enroll(stack, 'quiet-reader');
    const hash = sha256(tokenOf(reader.cookie));
    const row = async () =>
      (
        await stack.db.query(
          `SELECT xmin::text AS version, extract(epoch FROM now() - last_seen_at)::float8 AS idle
             FROM sessions WHERE token_hash = $1`,
          [hash],
        )
      ).rows[0] as { version: string; idle: number };
    const before = await row();
    for (const route of ['/api/me', '/api/me', '/api/requests'])
      expect((await reader.get(route)).status).toBe(200);
    // xmin changes with any update of the row, even one writing the same values.
    expect((await row()).version).toBe(before.version);

    await stack.db.query(
      `UPDATE sessions SET last_seen_at = now() - interval '61 seconds' WHERE token_hash = $1`,
      [hash],
    );
    expect((await reader.get('/api/me')).status).toBe(200);
    const touched = await row();
    expect(touched.idle).toBeLessThan(5);
    expect((await reader.get('/api/me')).status).toBe(200);
    expect((await row()).version).toBe(touched.version);
  });

  it('refuses at once a session whose user is suspended, whose passkey is disabled, or that has ended', async () => {
    const refusals: Array<[string, string]> = [
      ['sus-pat', `UPDATE users SET status = 'suspended' WHERE username = $1`],
      [
        'dis-dan',
        `UPDATE authenticators SET disabled_at = now(), disabled_reason = 'test'
          WHERE user_id = (SELECT id FROM users WHERE username = $1)`,
      ],
      [
        'end-eve',
        `UPDATE sessions SET ended_at = now(), end_reason = 'test'
          WHERE user_id = (SELECT id FROM users WHERE username = $1)`,
      ],
    ];
    for (const [username, change] of refusals) {
      const person = await enroll(stack, username);
      // Read right before, so nothing the broker keeps from this call can let the next one through.
      expect((await person.get('/api/me')).status).toBe(200);
      await stack.db.query(change, [username]);
      expectError(await person.get('/api/me'), 401, 'UNAUTHENTICATED');
      expectError(await person.get('/api/requests'), 401, 'UNAUTHENTICATED');
    }
  });

  it('lets an admin end every session of a user; a non-admin gets 403', async () => {
    const jackAuthenticator = newAuthenticator(stack);
    const jackEnrolled = await enrollWith(stack, await inviteToken(stack, 'jack'), jackAuthenticator);
    const jackCookies = [
      sessionCookieFrom(jackEnrolled.headers),
      sessionCookieFrom((await signIn(stack, jackAuthenticator)).headers),
    ];
    const kate = await enroll(stack, 'kate');

    expectError(await kate.post('/api/admin/users/jack/end-sessions', {}), 403, 'FORBIDDEN');
    for (const cookie of jackCookies)
      expect((await httpClient(stack, cookie).get('/api/me')).status).toBe(200);

    const ended = await admin.post('/api/admin/users/jack/end-sessions', {});
    expect(ended.status).toBe(200);
    expect(ended.body).toEqual({ ended: 2 });
    for (const cookie of jackCookies) {
      expectError(await httpClient(stack, cookie).get('/api/me'), 401, 'UNAUTHENTICATED');
    }
    expect((await admin.get('/api/me')).status).toBe(200);
    expect((await kate.get('/api/me')).status).toBe(200);
    expect(await auditEvents(stack, 'sessions.ended', jackEnrolled.body.user.id)).toEqual([
      expect.objectContaining({ actorId: admin.userId, data: expect.objectContaining({ count: 2 }) }),
    ]);
    expectError(await admin.post('/api/admin/users/nobody-here/end-sessions', {}), 404, 'USER_NOT_FOUND');
  });

  it('creates invites through the admin API only with an invite.create step-up bound to the body', async () => {
    const params = { username: 'lena', roles: [] };
    const created = await admin.post('/api/admin/invites', {
      ...params,
      stepUp: await admin.stepUp('invite.create', 'lena', params),
    });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      token: expect.any(String),
      url: expect.any(String),
      expiresAt: expect.any(String),
    });
    expect(created.body.url).toBe(`${stack.config.http.publicUrl}/enroll?invite=${created.body.token}`);
    const [invite] = (
      await stack.db.query(
        `SELECT expires_at AS "expiresAt", created_by AS "createdBy" FROM enrollment_invites WHERE token_hash = $1`,
        [sha256(created.body.token)],
      )
    ).rows;
    expect(invite).toEqual({ expiresAt: new Date(created.body.expiresAt), createdBy: admin.userId });

    const enrolled = await enrollWith(stack, created.body.token, newAuthenticator(stack));
    expect(enrolled.status).toBe(200);
    const lena = httpClient(stack, sessionCookieFrom(enrolled.headers));
    expect((await lena.get('/api/me')).body).toMatchObject({ username: 'lena', roles: [] });

    // The challenge committed to roles []; asking for auditor with it is refused.
    const signedFor = { username: 'mona', roles: [] };
    const stepUp = await admin.stepUp('invite.create', 'mona', signedFor);
    const changed = await admin.post('/api/admin/invites', { ...signedFor, roles: ['auditor'], stepUp });
    expectError(changed, 401, 'STEP_UP_SUBJECT_CHANGED');
    const failures = await auditEvents(stack, 'step-up.failed', admin.userId);
    expect(failures.at(-1)?.data).toMatchObject({
      code: 'STEP_UP_SUBJECT_CHANGED',
      action: 'invite.create',
      challengeId: stepUp.challengeId,
    });

    expectError(
      await admin.post('/api/admin/invites', { username: 'nina', roles: [] }),
      401,
      'STEP_UP_REQUIRED',
    );
    expectError(await lena.post('/api/admin/invites', { username: 'olaf', roles: [] }), 403, 'FORBIDDEN');
    const { rows } = await stack.db.query(
      `SELECT username FROM users WHERE username IN ('mona', 'nina', 'olaf')`,
    );
    expect(rows).toEqual([]);
  });

  it('adds a second passkey after a step-up, removes one, never the last usable one, and audits each change', async () => {
    const olga = await enroll(stack, 'olga');
    const first = olga.authenticator.credentials[0].id;

    const listed = await olga.get('/api/me/authenticators');
    expect(listed.status).toBe(200);
    expect(listed.body.items).toEqual([
      expect.objectContaining({ credentialId: first, enrolledVia: 'invite', disabledAt: null }),
    ]);
    expect(listed.body.items[0]).not.toHaveProperty('publicKey');
    const firstId: string = listed.body.items[0].id;

    expectError(await olga.post('/api/me/authenticators/options', {}), 401, 'STEP_UP_REQUIRED');
    const creation = await olga.post('/api/me/authenticators/options', {
      stepUp: await olga.stepUp('authenticator.add', 'olga', {}),
    });
    expect(creation.status).toBe(200);
    expect(creation.body.excludeCredentials.map((descriptor: { id: string }) => descriptor.id)).toEqual([
      first,
    ]);
    // A browser would refuse to register the same authenticator twice.
    expect(() => olga.authenticator.register(creation.body)).toThrow(/excluded/);
    const second = newAuthenticator(stack);
    const registered = await olga.post('/api/me/authenticators/verify', {
      response: second.register(creation.body),
      name: 'Backup key',
    });
    expect(registered.status).toBe(201);
    expect(registered.body).toMatchObject({
      credentialId: second.credentials[0].id,
      name: 'Backup key',
      enrolledVia: 'step-up',
    });
    const secondId: string = registered.body.id;
    expect(
      (await olga.get('/api/me/authenticators')).body.items.map((item: { id: string }) => item.id),
    ).toEqual([firstId, secondId]);

    // The new passkey signs in on its own.
    const signedIn = await signIn(stack, second);
    expect(signedIn.status).toBe(200);
    expect(signedIn.body.user.username).toBe('olga');
    const olgaOnSecond = personFor(stack, 'olga', olga.userId, second, sessionCookieFrom(signedIn.headers));

    // A removal step-up names the passkey it removes.
    const boundToSecond = await olga.stepUp('authenticator.remove', 'olga', { authenticatorId: secondId });
    expectError(
      await olga.post(`/api/me/authenticators/${firstId}/remove`, { stepUp: boundToSecond }),
      401,
      'STEP_UP_SUBJECT_CHANGED',
    );
    const removed = await olga.post(`/api/me/authenticators/${firstId}/remove`, {
      stepUp: await olga.stepUp('authenticator.remove', 'olga', { authenticatorId: firstId }),
    });
    expect(removed.status).toBe(204);
    expect(
      (await olgaOnSecond.get('/api/me/authenticators')).body.items.map((item: { id: string }) => item.id),
    ).toEqual([secondId]);
    expect(await authenticatorRow(stack, first)).toMatchObject({ removedAt: expect.any(Date) });
    expectError(await signIn(stack, olga.authenticator), 401, 'UNKNOWN_CREDENTIAL');

    const last = await olgaOnSecond.post(`/api/me/authenticators/${secondId}/remove`, {
      stepUp: await olgaOnSecond.stepUp('authenticator.remove', 'olga', { authenticatorId: secondId }),
    });
    expectError(last, 409, 'LAST_AUTHENTICATOR');
    expect(await authenticatorRow(stack, second.credentials[0].id)).toMatchObject({
      removedAt: null,
      disabledAt: null,
    });

    const registeredEvents = (await auditEvents(stack, 'authenticator.registered')).filter(
      (event) => event.data.userId === olga.userId,
    );
    expect(registeredEvents).toEqual([
      expect.objectContaining({
        subjectId: firstId,
        data: expect.objectContaining({ enrolledVia: 'invite' }),
      }),
      expect.objectContaining({
        subjectId: secondId,
        data: expect.objectContaining({ enrolledVia: 'step-up' }),
      }),
    ]);
    expect(await auditEvents(stack, 'authenticator.removed', firstId)).toEqual([
      expect.objectContaining({
        actorId: olga.userId,
        data: expect.objectContaining({
          credentialId: first,
          evidence: expect.objectContaining({ action: 'authenticator.remove', credentialId: first }),
        }),
      }),
    ]);
    expect(await auditEvents(stack, 'authenticator.removed', secondId)).toEqual([]);
  });

  // DESIGN §4.9: bad input gets a clear 4xx and writes nothing, never a 500.
  it('answers ceremony bodies that lack their WebAuthn response with 400 VALIDATION_FAILED, never 500', async () => {
    const anonymous = httpClient(stack, null);
    const token = await inviteToken(stack, 'sam');
    const uma = await enroll(stack, 'uma');
    const stepUp = await uma.stepUp('authenticator.add', 'uma', {});
    const { response: _response, ...assertionWithoutBody } = stepUp.response;
    const cases: Array<[string, () => Promise<ApiResponse<any>>]> = [
      ['login/verify {}', () => anonymous.post('/api/auth/login/verify', {})],
      ['enroll/verify without response', () => anonymous.post('/api/auth/enroll/verify', { invite: token })],
      ['authenticators/verify {}', () => uma.post('/api/me/authenticators/verify', {})],
      [
        'a stepUp whose assertion has no response',
        () =>
          uma.post('/api/me/authenticators/options', {
            stepUp: { challengeId: stepUp.challengeId, response: assertionWithoutBody },
          }),
      ],
    ];
    const answers: Array<[string, number, string]> = [];
    for (const [name, call] of cases) {
      const answer = await call();
      answers.push([name, answer.status, answer.body?.error?.code]);
    }
    expect(answers).toEqual(cases.map(([name]) => [name, 400, 'VALIDATION_FAILED']));
    // Nothing was spent: the invite still opens an enrollment.
    expect((await anonymous.post('/api/auth/enroll/options', { invite: token })).status).toBe(200);
  });

  it('disables a passkey whose signature counter goes backwards at sign-in, with an alert', async () => {
    const pete = await enroll(stack, 'pete');
    const credentialId = pete.authenticator.credentials[0].id;
    expect((await signIn(stack, pete.authenticator)).status).toBe(200);
    const before = await authenticatorRow(stack, credentialId);
    expect(before?.signCount).toBe(1);

    // A clone of the key would sign with the counter it had when copied.
    pete.authenticator.setSignCount(credentialId, 0);
    const regressed = await signIn(stack, pete.authenticator);
    expectError(regressed, 401, 'SIGN_COUNT_REGRESSION');
    expect(regressed.headers.getSetCookie().filter((cookie) => /jit_session=/.test(cookie))).toEqual([]);
    const after = await authenticatorRow(stack, credentialId);
    expect(after).toMatchObject({ disabledAt: expect.any(Date), disabledReason: 'sign-count-regression' });
    expect(await auditEvents(stack, 'authenticator.disabled', before!.id)).toEqual([
      expect.objectContaining({
        data: expect.objectContaining({ alert: true, userId: pete.userId, credentialId }),
      }),
    ]);
    expect(
      (await auditEvents(stack, 'login.failed')).filter((event) => event.data.credentialId === credentialId),
    ).toEqual([
      expect.objectContaining({ data: expect.objectContaining({ code: 'SIGN_COUNT_REGRESSION' }) }),
    ]);

    expectError(await signIn(stack, pete.authenticator), 401, 'AUTHENTICATOR_DISABLED');
  });

  it('disables a passkey whose signature counter goes backwards during a step-up', async () => {
    const quinn = await enroll(stack, 'quinn');
    const credentialId = quinn.authenticator.credentials[0].id;
    const ok = await quinn.post('/api/me/authenticators/options', {
      stepUp: await quinn.stepUp('authenticator.add', 'quinn', {}),
    });
    expect(ok.status).toBe(200);

    quinn.authenticator.setSignCount(credentialId, 0);
    const stepUp = await quinn.stepUp('authenticator.add', 'quinn', {});
    expectError(await quinn.post('/api/me/authenticators/options', { stepUp }), 401, 'SIGN_COUNT_REGRESSION');
    const row = await authenticatorRow(stack, credentialId);
    expect(row?.disabledAt).toBeInstanceOf(Date);
    expect(await auditEvents(stack, 'authenticator.disabled', row!.id)).toEqual([
      expect.objectContaining({ data: expect.objectContaining({ alert: true }) }),
    ]);
    expect((await auditEvents(stack, 'step-up.failed', quinn.userId)).at(-1)?.data).toMatchObject({
      code: 'SIGN_COUNT_REGRESSION',
      challengeId: stepUp.challengeId,
    });

    expectError(await signIn(stack, quinn.authenticator), 401, 'AUTHENTICATOR_DISABLED');
  });
});

/** Seconds since the session behind `cookie` was last seen, on PostgreSQL's clock (reading does not touch it). */
async function idleSeconds(stack: TestStack, cookie: string): Promise<number> {
  const { rows } = await stack.db.query(
    `SELECT extract(epoch FROM now() - last_seen_at)::float8 AS idle FROM sessions WHERE token_hash = $1`,
    [sha256(tokenOf(cookie))],
  );
  return rows[0].idle as number;
}

/** Polls the database clock until the session has been idle for at least `seconds`. */
async function idleFor(stack: TestStack, cookie: string, seconds: number): Promise<void> {
  await waitFor(
    async () => ((await idleSeconds(stack, cookie)) >= seconds ? true : undefined),
    (seconds + 5) * 1000,
    `the session to be idle for ${seconds} s`,
  );
}

async function sessionRow(stack: TestStack, cookie: string) {
  const { rows } = await stack.db.query(
    `SELECT extract(epoch FROM expires_at - created_at)::float8 AS lifetime,
            extract(epoch FROM last_seen_at - created_at)::float8 AS "lastSeenAfter",
            ended_at AS "endedAt", end_reason AS "endReason", ended_at >= expires_at AS "endedAfterExpiry"
       FROM sessions WHERE token_hash = $1`,
    [sha256(tokenOf(cookie))],
  );
  return rows[0] as {
    lifetime: number;
    lastSeenAfter: number;
    endedAt: Date | null;
    endReason: string | null;
    endedAfterExpiry: boolean | null;
  };
}

describe('session expiry (idle 2 s, absolute 4 s)', () => {
  const IDLE = 2;
  const ABSOLUTE = 4;
  let stack: TestStack;
  let alice: Person;

  beforeAll(async () => {
    stack = await startStack({
      worker: false,
      env: { SESSION_IDLE_SECONDS: String(IDLE), SESSION_ABSOLUTE_SECONDS: String(ABSOLUTE) },
    });
    alice = await enroll(stack, 'alice');
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  async function freshSession(): Promise<string> {
    const signedIn = await signIn(stack, alice.authenticator);
    expect(signedIn.status).toBe(200);
    return sessionCookieFrom(signedIn.headers);
  }

  it('keeps a session alive while gaps between calls stay below the idle limit', async () => {
    const cookie = await freshSession();
    const client = httpClient(stack, cookie);
    for (let gap = 0; gap < 2; gap++) {
      await idleFor(stack, cookie, 1.2);
      expect((await client.get('/api/me')).status).toBe(200);
    }
    // The session has now outlived the idle limit, thanks only to the activity.
    expect((await sessionRow(stack, cookie)).lastSeenAfter).toBeGreaterThan(IDLE);
  }, 20_000);

  it('ends a session idle for longer than the idle limit: 401 SESSION_EXPIRED, then gone for good', async () => {
    const cookie = await freshSession();
    const client = httpClient(stack, cookie);
    await idleFor(stack, cookie, IDLE);
    expectError(await client.get('/api/me'), 401, 'SESSION_EXPIRED');
    expect(await sessionRow(stack, cookie)).toMatchObject({
      endReason: 'idle-timeout',
      endedAt: expect.any(Date),
    });
    expectError(await client.get('/api/me'), 401, 'UNAUTHENTICATED');
  }, 20_000);

  it('ends a continuously used session at the absolute limit', async () => {
    const cookie = await freshSession();
    const client = httpClient(stack, cookie);
    let answered = 0;
    const refused = await waitFor(
      async () => {
        const me = await client.get('/api/me');
        if (me.status === 200) {
          answered += 1;
          // Well inside the idle limit, so only the absolute limit can end it.
          await new Promise((resolve) => setTimeout(resolve, 250));
          return undefined;
        }
        return me;
      },
      (ABSOLUTE + 6) * 1000,
      'the absolute session limit',
    );
    expectError(refused, 401, 'SESSION_EXPIRED');
    expect(answered).toBeGreaterThan(1);
    const row = await sessionRow(stack, cookie);
    expect(row).toMatchObject({ lifetime: ABSOLUTE, endReason: 'absolute-timeout', endedAfterExpiry: true });
    expect(row.lastSeenAfter).toBeGreaterThan(IDLE);
  }, 20_000);
});

describe('invite lifetime (INVITE_TTL_SECONDS=1)', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startStack({ worker: false, env: { INVITE_TTL_SECONDS: '1' } });
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  it('answers 410 INVITE_EXPIRED once the configured lifetime has passed', async () => {
    const token = await inviteToken(stack, 'rita');
    await waitFor(
      async () => {
        const { rows } = await stack.db.query(
          `SELECT expires_at <= now() AS expired FROM enrollment_invites WHERE token_hash = $1`,
          [sha256(token)],
        );
        return rows[0].expired ? true : undefined;
      },
      10_000,
      'the invite to expire',
    );
    expectError(
      await httpClient(stack, null).post('/api/auth/enroll/options', { invite: token }),
      410,
      'INVITE_EXPIRED',
    );
  }, 20_000);
});
