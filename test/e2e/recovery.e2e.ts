import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DataSource, type QueryRunner } from 'typeorm';
import { RecoveryApproval1764450000000 } from '../../libs/db/migrations/1764450000000-recovery-approval.js';
import { createInvite } from '../../libs/identity/invites.js';
import { SoftAuthenticator } from '../support/soft-authenticator.js';
import {
  enrollAll,
  enrollWith,
  httpClient,
  inviteToken,
  personFor,
  sessionCookieFrom,
  startStack,
  type ApiResponse,
  type Person,
  type TestStack,
} from '../support/stack.js';

function expectError(answer: ApiResponse<any>, status: number, code: string): void {
  expect({ status: answer.status, code: answer.body?.error?.code }).toEqual({ status, code });
  expect(typeof answer.body.error.message).toBe('string');
}

async function signIn(stack: TestStack, authenticator: SoftAuthenticator): Promise<ApiResponse<any>> {
  const anonymous = httpClient(stack, null);
  const options = await anonymous.post('/api/auth/login/options', {});
  return anonymous.post('/api/auth/login/verify', { response: authenticator.authenticate(options.body) });
}

async function auditEvents(stack: TestStack, action: string, subjectId?: string) {
  const { rows } = await stack.db.query(
    `SELECT actor_id AS "actorId", subject_id AS "subjectId", data FROM audit_events
      WHERE action = $1 AND ($2::text IS NULL OR subject_id = $2) ORDER BY seq`,
    [action, subjectId ?? null],
  );
  return rows as Array<{ actorId: string; subjectId: string; data: any }>;
}

/** An admin's invite over the API (a recovery for an enrolled user), with its `invite.create` step-up. */
async function adminInvite(
  admin: Person,
  username: string,
  roles: Array<'admin' | 'auditor'> = [],
): Promise<ApiResponse<any>> {
  const params = { username, roles };
  return admin.post('/api/admin/invites', {
    ...params,
    stepUp: await admin.stepUp('invite.create', username, params),
  });
}

async function approveInvite(admin: Person, inviteId: string): Promise<ApiResponse<any>> {
  return admin.post(`/api/admin/invites/${inviteId}/approve`, {
    stepUp: await admin.stepUp('invite.approve', inviteId, {}),
  });
}

describe('recovery invites: a second admin, sessions, a notice and a quorum cool-down', () => {
  let stack: TestStack;
  let admin: Person;
  let root: Person;

  beforeAll(async () => {
    stack = await startStack({ worker: false });
    // policies/example.yaml: alice and carol are engineers, who may use a self-service entitlement, and
    // alice is on call (break-glass); bob and dave approve; erin is in no group. carol enrolls later.
    [admin, root] = await enrollAll(stack, ['admin', 'root'], { admin: ['admin'], root: ['admin'] });
    await enrollAll(stack, ['alice', 'bob', 'dave', 'erin']);
  }, 90_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  it("keeps an admin's recovery invite for an approver unusable until a different admin approves it", async () => {
    const bob = stack.people.get('bob')!;
    const created = await adminInvite(admin, 'bob');
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ state: 'pending-approval', inviteId: expect.any(String) });
    const { inviteId, token } = created.body as { inviteId: string; token: string };

    // The link is refused until approved, and the creator cannot approve their own invite.
    expectError(
      await httpClient(stack, null).post('/api/auth/enroll/options', { invite: token }),
      409,
      'RECOVERY_NEEDS_SECOND_ADMIN',
    );
    expectError(await approveInvite(admin, inviteId), 403, 'INVITE_SELF_APPROVAL');
    expectError(await bob.post(`/api/admin/invites/${inviteId}/approve`, {}), 403, 'FORBIDDEN');
    expectError(await root.post(`/api/admin/invites/${inviteId}/approve`, {}), 401, 'STEP_UP_REQUIRED');
    expect((await admin.get('/api/admin/invites?state=pending-approval')).body.items).toEqual([
      expect.objectContaining({ id: inviteId, username: 'bob', createdBy: 'admin' }),
    ]);
    expect(await auditEvents(stack, 'invite.approval-refused')).toEqual([
      expect.objectContaining({ actorId: admin.userId, data: expect.objectContaining({ alert: true }) }),
    ]);

    // A fresh admin account (one admin could invite and enroll a second) cannot be the second admin yet.
    expectError(await approveInvite(root, inviteId), 403, 'SECOND_ADMIN_TOO_RECENT');
    await stack.db.query(
      `UPDATE authenticators SET created_at = now() - interval '25 hours' WHERE user_id = $1`,
      [root.userId],
    );
    const approved = await approveInvite(root, inviteId);
    expect(approved.status).toBe(200);
    expect(approved.body).toMatchObject({ id: inviteId, state: 'active' });
    expectError(await approveInvite(root, inviteId), 409, 'INVITE_NOT_PENDING');
    expect(await auditEvents(stack, 'invite.approved', bob.userId)).toEqual([
      expect.objectContaining({
        actorId: root.userId,
        data: expect.objectContaining({
          inviteId,
          createdBy: admin.userId,
          evidence: expect.objectContaining({ action: 'invite.approve', subjectId: inviteId }),
        }),
      }),
    ]);

    // Bob's sessions live until the link is used; then every one of them ends.
    const secondSession = sessionCookieFrom((await signIn(stack, bob.authenticator)).headers);
    expect((await bob.get('/api/me')).status).toBe(200);
    const recoveredPasskey = new SoftAuthenticator({ origin: stack.origin });
    const enrolled = await enrollWith(stack, token, recoveredPasskey);
    expect(enrolled.status).toBe(200);
    expectError(await bob.get('/api/me'), 401, 'UNAUTHENTICATED');
    expectError(await httpClient(stack, secondSession).get('/api/me'), 401, 'UNAUTHENTICATED');
    expect(await auditEvents(stack, 'sessions.ended', bob.userId)).toEqual([
      expect.objectContaining({ data: expect.objectContaining({ reason: 'recovery', count: 2 }) }),
    ]);

    // The recovered session, and bob's own old passkey, both see who recovered the account.
    const recovered = httpClient(stack, sessionCookieFrom(enrolled.headers));
    const notice = {
      kind: 'recovery',
      inviteId,
      recoveredAt: expect.any(String),
      createdBy: 'admin',
      approvedBy: 'root',
      approvedAt: expect.any(String),
      breakGlass: false,
    };
    expect((await recovered.get('/api/me')).body.recoveryNotices).toEqual([notice]);
    const oldPasskey = await signIn(stack, bob.authenticator);
    expect(oldPasskey.status).toBe(200);
    const bobAgain = personFor(
      stack,
      'bob',
      bob.userId,
      bob.authenticator,
      sessionCookieFrom(oldPasskey.headers),
    );
    expect((await bobAgain.get('/api/me')).body.recoveryNotices).toEqual([notice]);

    // Acknowledged from one passkey, the notice still shows on the other until it acknowledges too.
    const acknowledged = await recovered.post(`/api/me/recovery-notices/${inviteId}/acknowledge`, {});
    expect(acknowledged.status).toBe(204);
    expect((await recovered.get('/api/me')).body).not.toHaveProperty('recoveryNotices');
    expect((await bobAgain.get('/api/me')).body.recoveryNotices).toEqual([notice]);
    expect((await bobAgain.post(`/api/me/recovery-notices/${inviteId}/acknowledge`, {})).status).toBe(204);
    expect((await bobAgain.get('/api/me')).body).not.toHaveProperty('recoveryNotices');
    expect(await auditEvents(stack, 'recovery.acknowledged', bob.userId)).toHaveLength(2);
  });

  it('does not count an approval by a recently recovered approver toward quorum; another approver still counts', async () => {
    const alice = stack.people.get('alice')!;
    const dave = stack.people.get('dave')!;
    const created = await adminInvite(admin, 'dave');
    expect(created.body.state).toBe('pending-approval');
    expect((await approveInvite(root, created.body.inviteId)).status).toBe(200);
    const passkey = new SoftAuthenticator({ origin: stack.origin });
    const enrolled = await enrollWith(stack, created.body.token, passkey);
    expect(enrolled.status).toBe(200);
    const recoveredDave = personFor(stack, 'dave', dave.userId, passkey, sessionCookieFrom(enrolled.headers));
    const request = await alice.post('/api/requests', {
      entitlementId: 'api-admin-token',
      durationSeconds: 600,
      justification: 'Recovery cool-down (e2e)',
    });
    expect(request.status).toBe(201);
    const requestId: string = request.body.id;

    const byRecovered = await recoveredDave.decide(requestId, 'approve');
    expect(byRecovered.status).toBe(200);
    expect(byRecovered.body.state).toBe('PENDING');
    const [recorded] = await auditEvents(stack, 'approval.recorded', requestId);
    expect(recorded).toMatchObject({
      actorId: dave.userId,
      data: { recoveryCooldown: true, approvals: 0, approvalsRequired: 1 },
    });
    const { rows } = await stack.db.query(`SELECT count(*)::int AS n FROM approvals WHERE request_id = $1`, [
      requestId,
    ]);
    expect(rows[0].n).toBe(1);

    const byAdmin = await admin.decide(requestId, 'approve');
    expect(byAdmin.status).toBe(200);
    expect(byAdmin.body.state).toBe('APPROVED');
  });

  it('lets one admin recover a plain requester, whose other sessions still end and who sees the notice', async () => {
    // erin may request nothing without approval (carol, self-service eligible, would need a second admin).
    const erin = stack.people.get('erin')!;
    const created = await adminInvite(admin, 'erin');
    expect(created.status).toBe(201);
    expect(created.body).not.toHaveProperty('state');
    const enrolled = await enrollWith(
      stack,
      created.body.token,
      new SoftAuthenticator({ origin: stack.origin }),
    );
    expect(enrolled.status).toBe(200);
    expectError(await erin.get('/api/me'), 401, 'UNAUTHENTICATED');
    const me = await httpClient(stack, sessionCookieFrom(enrolled.headers)).get('/api/me');
    expect(me.body.recoveryNotices).toEqual([
      expect.objectContaining({ createdBy: 'admin', approvedBy: null, breakGlass: false }),
    ]);
  });

  it('needs a second admin to recover an on-call engineer, and the link holder cannot remove her older passkey', async () => {
    const alice = stack.people.get('alice')!;
    const created = await adminInvite(admin, 'alice');
    expect(created.status).toBe(201);
    expect(created.body.state).toBe('pending-approval');
    expect((await auditEvents(stack, 'invite.created', alice.userId)).at(-1)?.data).toMatchObject({
      recovery: true,
      needsSecondAdmin: true,
      alert: true,
      privilege: ['break-glass', 'self-service'],
    });
    const passkey = new SoftAuthenticator({ origin: stack.origin });
    expectError(await enrollWith(stack, created.body.token, passkey), 409, 'RECOVERY_NEEDS_SECOND_ADMIN');
    expect((await approveInvite(root, created.body.inviteId)).status).toBe(200);
    const enrolled = await enrollWith(stack, created.body.token, passkey);
    expect(enrolled.status).toBe(200);

    // Within the cool-down, whoever held the link cannot remove alice's own passkey (and with it her notice).
    const holder = personFor(stack, 'alice', alice.userId, passkey, sessionCookieFrom(enrolled.headers));
    const [older, recovered] = (await holder.get('/api/me/authenticators')).body.items as Array<{
      id: string;
    }>;
    const remove = async (person: Person, authenticatorId: string) =>
      person.post(`/api/me/authenticators/${authenticatorId}/remove`, {
        stepUp: await person.stepUp('authenticator.remove', 'alice', { authenticatorId }),
      });
    expectError(await remove(holder, older.id), 409, 'PASSKEY_KEPT_AFTER_RECOVERY');
    const own = await signIn(stack, alice.authenticator);
    expect(own.status).toBe(200);
    const aliceAgain = personFor(
      stack,
      'alice',
      alice.userId,
      alice.authenticator,
      sessionCookieFrom(own.headers),
    );
    stack.people.set('alice', aliceAgain);
    expect((await aliceAgain.get('/api/me')).body.recoveryNotices).toEqual([
      expect.objectContaining({ kind: 'recovery', createdBy: 'admin', approvedBy: 'root' }),
    ]);
    // The owner can remove the passkey the recovery enrolled.
    expect((await remove(aliceAgain, recovered.id)).status).toBe(204);
    const { rows } = await stack.db.query(
      `SELECT id FROM authenticators WHERE user_id = $1 AND removed_at IS NULL`,
      [alice.userId],
    );
    expect(rows).toEqual([{ id: older.id }]);
  });

  it("needs a second admin for a new user's invite that makes them privileged, and never one enrolled from the creator's invites", async () => {
    // carol (self-service eligible) holds no passkey yet: her first invite is no recovery, but privileged.
    const forCarol = await adminInvite(admin, 'carol');
    expect(forCarol.status).toBe(201);
    expect(forCarol.body.state).toBe('pending-approval');
    const {
      rows: [{ id: carolId }],
    } = await stack.db.query(`SELECT id FROM users WHERE username = 'carol'`);
    expect((await auditEvents(stack, 'invite.created', carolId)).at(-1)?.data).toMatchObject({
      recovery: false,
      needsSecondAdmin: true,
      alert: true,
      privilege: ['self-service'],
    });
    const carolPasskey = new SoftAuthenticator({ origin: stack.origin });
    expectError(
      await enrollWith(stack, forCarol.body.token, carolPasskey),
      409,
      'RECOVERY_NEEDS_SECOND_ADMIN',
    );
    expect((await approveInvite(root, forCarol.body.inviteId)).status).toBe(200);
    const carolEnrolled = await enrollWith(stack, forCarol.body.token, carolPasskey);
    expect(carolEnrolled.status).toBe(200);
    const carol = httpClient(stack, sessionCookieFrom(carolEnrolled.headers));
    expect((await carol.get('/api/me')).body.recoveryNotices).toEqual([
      expect.objectContaining({
        kind: 'enrollment',
        createdBy: 'admin',
        approvedBy: 'root',
        breakGlass: false,
      }),
    ]);

    // A sock puppet: admin invites a new admin account and holds its link (root approved the invite).
    const forPuppet = await adminInvite(admin, 'puppet', ['admin']);
    expect(forPuppet.body.state).toBe('pending-approval');
    expect((await approveInvite(root, forPuppet.body.inviteId)).status).toBe(200);
    const puppetPasskey = new SoftAuthenticator({ origin: stack.origin });
    const puppetEnrolled = await enrollWith(stack, forPuppet.body.token, puppetPasskey);
    expect(puppetEnrolled.status).toBe(200);
    const puppet = personFor(
      stack,
      'puppet',
      puppetEnrolled.body.user.id,
      puppetPasskey,
      sessionCookieFrom(puppetEnrolled.headers),
    );
    // Even once past the cool-down, the puppet is the second admin of neither admin's nor root's invites.
    await stack.db.query(
      `UPDATE authenticators SET created_at = now() - interval '25 hours' WHERE user_id = $1`,
      [puppet.userId],
    );
    const byAdmin = await adminInvite(admin, 'dave');
    expect(byAdmin.body.state).toBe('pending-approval');
    expectError(await approveInvite(puppet, byAdmin.body.inviteId), 403, 'INVITE_APPROVER_NOT_INDEPENDENT');
    const byRoot = await adminInvite(root, 'bob');
    expectError(await approveInvite(puppet, byRoot.body.inviteId), 403, 'INVITE_APPROVER_NOT_INDEPENDENT');
    expect(
      (await auditEvents(stack, 'invite.approval-refused')).filter(
        (event) => event.actorId === puppet.userId,
      ),
    ).toEqual([
      expect.objectContaining({
        data: expect.objectContaining({ code: 'INVITE_APPROVER_NOT_INDEPENDENT', alert: true }),
      }),
      expect.objectContaining({
        data: expect.objectContaining({ code: 'INVITE_APPROVER_NOT_INDEPENDENT', alert: true }),
      }),
    ]);
  });

  it('lets a lone admin enroll a new admin at once, loudly, and tells the new admin who invited them', async () => {
    // With root suspended, admin's only other admin is puppet, enrolled from admin's own invite: none counts.
    await stack.db.query(`UPDATE users SET status = 'suspended' WHERE id = $1`, [root.userId]);
    try {
      const created = await adminInvite(admin, 'second', ['admin']);
      expect(created.status).toBe(201);
      expect(created.body).not.toHaveProperty('state');
      const enrolled = await enrollWith(
        stack,
        created.body.token,
        new SoftAuthenticator({ origin: stack.origin }),
      );
      expect(enrolled.status).toBe(200);
      const userId: string = enrolled.body.user.id;
      const [event] = await auditEvents(stack, 'invite.created', userId);
      expect(event.data).toMatchObject({ recovery: false, alert: true, privilege: ['admin'] });
      expect(event.data).not.toHaveProperty('needsSecondAdmin');
      const second = httpClient(stack, sessionCookieFrom(enrolled.headers));
      const notices = (await second.get('/api/me')).body.recoveryNotices;
      expect(notices).toEqual([
        expect.objectContaining({
          kind: 'enrollment',
          createdBy: 'admin',
          approvedBy: null,
          breakGlass: false,
        }),
      ]);
      const acknowledged = await second.post(
        `/api/me/recovery-notices/${notices[0].inviteId}/acknowledge`,
        {},
      );
      expect(acknowledged.status).toBe(204);
      expect((await second.get('/api/me')).body).not.toHaveProperty('recoveryNotices');
    } finally {
      await stack.db.query(`UPDATE users SET status = 'active' WHERE id = $1`, [root.userId]);
    }
  });

  it('needs a second admin to recover an admin, and never lets the recovered admin approve their own', async () => {
    const created = await adminInvite(root, 'admin');
    expect(created.status).toBe(201);
    expect(created.body.state).toBe('pending-approval');
    // The admin being recovered is not the second admin of their own recovery.
    expectError(await approveInvite(admin, created.body.inviteId), 403, 'INVITE_SELF_APPROVAL');
    // A new user's first invite is not a recovery: one admin suffices.
    const fresh = await adminInvite(root, 'newcomer');
    expect(fresh.status).toBe(201);
    expect(fresh.body).not.toHaveProperty('state');
  });

  it('lets whoever holds the database credentials recover an approver only as loud, audited break-glass', async () => {
    const bob = stack.people.get('bob')!;
    const dataSource = stack.broker.get(DataSource);
    const settings = { publicUrl: stack.config.http.publicUrl, ttlSeconds: stack.config.inviteTtlSeconds };
    // The library's default (the test harness, like any caller that says nothing) waits for a second admin.
    const pending = await inviteToken(stack, 'bob');
    expectError(
      await httpClient(stack, null).post('/api/auth/enroll/options', { invite: pending }),
      409,
      'RECOVERY_NEEDS_SECOND_ADMIN',
    );
    await expect(
      dataSource.transaction((manager) =>
        createInvite(
          manager,
          settings,
          'cli',
          { username: 'bob', roles: [] },
          { privilegedRecovery: 'refuse' },
        ),
      ),
    ).rejects.toMatchObject({ code: 'RECOVERY_NEEDS_SECOND_ADMIN' });
    const invite = await dataSource.transaction((manager) =>
      createInvite(
        manager,
        settings,
        'cli',
        { username: 'bob', roles: [] },
        { privilegedRecovery: 'break-glass' },
      ),
    );
    const enrolled = await enrollWith(stack, invite.token, new SoftAuthenticator({ origin: stack.origin }));
    expect(enrolled.status).toBe(200);
    expect((await auditEvents(stack, 'invite.created', bob.userId)).at(-1)?.data).toMatchObject({
      recovery: true,
      breakGlass: true,
      alert: true,
    });
    const me = await httpClient(stack, sessionCookieFrom(enrolled.headers)).get('/api/me');
    expect(me.body.recoveryNotices).toEqual([
      expect.objectContaining({ createdBy: 'cli', approvedBy: null, breakGlass: true }),
    ]);
  });
  it('has the migration end every unused recovery link, since it cannot tell which needed a second admin', async () => {
    const bob = stack.people.get('bob')!;
    const client = await stack.db.connect();
    const runner = {
      query: async (sql: string, parameters?: unknown[]) => (await client.query(sql, parameters)).rows,
    } as unknown as QueryRunner;
    const migration = new RecoveryApproval1764450000000();
    try {
      // In a transaction rolled back at the end: the schema as it was before, two links, then the migration.
      await client.query('BEGIN');
      await migration.down(runner);
      const future = `now() + interval '1 day'`;
      const {
        rows: [{ id: newUserId }],
      } = await client.query(
        `INSERT INTO users (id, username, display_name, roles) VALUES (gen_random_uuid(), 'late', 'Late', '{}')
         RETURNING id`,
      );
      const { rows: links } = await client.query(
        `INSERT INTO enrollment_invites (id, token_hash, user_id, created_by, created_at, expires_at)
         VALUES (gen_random_uuid(), sha256('recovery'::bytea), $1, $3, now(), ${future}),
                (gen_random_uuid(), sha256('first'::bytea), $2, $3, now(), ${future})
         RETURNING id`,
        [bob.userId, newUserId, admin.userId],
      );
      await migration.up(runner);
      const { rows } = await client.query(
        `SELECT id, recovery, expires_at <= now() AS expired FROM enrollment_invites WHERE id = ANY ($1)`,
        [links.map((link) => link.id)],
      );
      expect(rows.sort((a, b) => Number(b.recovery) - Number(a.recovery))).toEqual([
        { id: links[0].id, recovery: true, expired: true },
        { id: links[1].id, recovery: false, expired: false },
      ]);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });
});
