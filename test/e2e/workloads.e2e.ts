import { randomBytes, randomUUID } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createLocalJWKSet, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import pg from 'pg';
import { createBroker } from '../../apps/broker/bootstrap.js';
import { RequestWaits } from '../../apps/broker/requests/request-waits.js';
import { verifyBundle } from '../../libs/audit/verify.js';
import { createDatabase, dropDatabase, withClient } from '../../libs/devstack/databases.js';
import { startOidcIssuer, type OidcIssuer } from '../support/oidc-issuer.js';
import { policyDirFromFixture } from '../support/policy-fixture.js';
import {
  clientAs,
  enrollAll,
  INTROSPECTION_CLIENT,
  startStack,
  waitFor,
  type ApiResponse,
  type TestStack,
} from '../support/stack.js';

// Issue 21's acceptance against a real broker, worker, PostgreSQL and Redis: a workload (a CI pipeline) files
// requests with its OIDC token from a local issuer, a person approves with a passkey, the workload activates
// and uses a jwt and a postgres credential, both are revoked on time, and every refusal writes nothing.

const SUBJECT = 'repo:org/app:ref:refs/heads/main';
const AUDIENCE = 'jit-broker';
const suffix = randomBytes(4).toString('hex');
const TARGET_DATABASE = `workloads_${suffix}`;
// Roles are cluster-wide: a per-run name, dropped in afterAll with the logins minted into it.
const READ_ROLE = `workloads_read_${suffix}`;
/** How long a credential of the acceptance run lasts: long enough to use it, short enough to see it revoked. */
const GRANT_SECONDS = 8;
/** How late after notAfter a grant may be confirmed revoked (the worker's job fires at notAfter). */
const REVOKE_LAG_MS = 3000;

interface Minted {
  token: string;
  jti: string;
}

/** Rows a refused call must not add (a refusal's snapshot is taken after the workload's users row exists). */
async function rowCounts(stack: TestStack): Promise<Record<string, number>> {
  const { rows } = await stack.db.query(`
    SELECT (SELECT count(*) FROM elevation_requests)::int AS requests,
           (SELECT count(*) FROM approvals)::int AS approvals,
           (SELECT count(*) FROM grants)::int AS grants,
           (SELECT count(*) FROM audit_events)::int AS events,
           (SELECT count(*) FROM users)::int AS users`);
  return rows[0] as Record<string, number>;
}

async function introspect(stack: TestStack, token: string): Promise<Record<string, unknown>> {
  const basic = Buffer.from(`${INTROSPECTION_CLIENT.id}:${INTROSPECTION_CLIENT.secret}`).toString('base64');
  const response = await fetch(`${stack.baseUrl}/api/introspect`, {
    method: 'POST',
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token }).toString(),
  });
  return (await response.json()) as Record<string, unknown>;
}

/** A grant row once its revocation is confirmed (REVOKED), polled from the database. */
function revokedGrant(stack: TestStack, requestId: string, notAfter: number) {
  return waitFor(
    async () => {
      const { rows } = await stack.db.query(
        `SELECT g.state, g.not_after, g.revoked_at, r.state AS request_state
           FROM grants g JOIN elevation_requests r ON r.id = g.request_id WHERE g.request_id = $1`,
        [requestId],
      );
      return rows[0]?.state === 'REVOKED'
        ? (rows[0] as { not_after: Date; revoked_at: Date; request_state: string })
        : undefined;
    },
    notAfter - Date.now() + REVOKE_LAG_MS + 5000,
    `the grant of request ${requestId} to be revoked`,
  );
}

describe('workload requesters (issue 21): real broker, worker, PostgreSQL and Redis', () => {
  let issuer: OidcIssuer;
  let other: OidcIssuer;
  let stack: TestStack;
  let policyDir: string;
  let adminUrl: string;
  let targetUrl: string;
  let workloadUserId: string;

  beforeAll(async () => {
    adminUrl = process.env.E2E_PG_ADMIN_URL!;
    targetUrl = await createDatabase(adminUrl, TARGET_DATABASE);
    await withClient(adminUrl, (admin) =>
      admin.query(`CREATE ROLE ${pg.escapeIdentifier(READ_ROLE)} NOLOGIN`),
    );
    await withClient(targetUrl, async (target) => {
      await target.query('CREATE TABLE releases (version text PRIMARY KEY)');
      await target.query("INSERT INTO releases VALUES ('v41'), ('v42')");
      await target.query(`GRANT SELECT ON releases TO ${pg.escapeIdentifier(READ_ROLE)}`);
    });
    issuer = await startOidcIssuer();
    other = await startOidcIssuer();
    policyDir = await policyDirFromFixture('workloads', {
      ISSUER: issuer.issuer,
      OTHER_JWKS: other.jwksUri,
      READ_ROLE,
    });
    stack = await startStack({ policyDir, env: { WORKLOADS_TARGET_DB_URL: targetUrl } });
    await enrollAll(stack, ['alice', 'bob', 'carol', 'admin', 'audrey'], {
      admin: ['admin'],
      audrey: ['auditor'],
    });
  }, 90_000);

  afterAll(async () => {
    await stack?.close();
    await issuer?.close();
    await other?.close();
    if (policyDir) await rm(policyDir, { recursive: true, force: true });
    if (!adminUrl) return;
    await dropDatabase(adminUrl, TARGET_DATABASE);
    await withClient(adminUrl, async (admin) => {
      const { rows } = await admin.query<{ rolname: string }>(
        `SELECT rolname FROM pg_roles r JOIN pg_auth_members m ON m.member = r.oid
          WHERE m.roleid = (SELECT oid FROM pg_roles WHERE rolname = $1)`,
        [READ_ROLE],
      );
      for (const role of [...rows.map((row) => row.rolname), READ_ROLE])
        await admin.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(role)}`);
    });
  }, 60_000);

  /** A token of the local issuer; the deploy bot's own unless a claim says otherwise. */
  async function mint(claims: { sub?: string; aud?: string; exp?: number } = {}): Promise<Minted> {
    const jti = randomUUID();
    const token = await issuer.token({ sub: SUBJECT, aud: AUDIENCE, jti, ...claims });
    return { token, jti };
  }

  /** A call as the workload: its bearer token only, no cookie and no Origin, as a CI job makes it. */
  async function asWorkload(
    token: string,
    method: 'GET' | 'POST',
    route: string,
    body?: unknown,
  ): Promise<ApiResponse<any>> {
    const response = await fetch(`${stack.baseUrl}${route}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null, headers: response.headers };
  }

  function file(token: string, entitlementId: string, durationSeconds: number, justification: string) {
    return asWorkload(token, 'POST', '/api/requests', { entitlementId, durationSeconds, justification });
  }

  /** The workload's users row: created by its first successful call, never by a refused one. */
  async function ensureWorkloadUser(): Promise<string> {
    if (workloadUserId) return workloadUserId;
    const probe = await asWorkload((await mint()).token, 'GET', `/api/requests/${randomUUID()}`);
    expect(probe.status).toBe(404);
    const { rows } = await stack.db.query(
      `SELECT id, kind FROM users WHERE username = 'workload:deploy-bot'`,
    );
    expect(rows).toEqual([{ id: expect.any(String), kind: 'workload' }]);
    workloadUserId = rows[0].id as string;
    return workloadUserId;
  }

  /** A person's (alice's) pending request on the workload's jwt entitlement. */
  async function alicePending(justification: string): Promise<string> {
    const created = await clientAs(stack, 'alice').post('/api/requests', {
      entitlementId: 'deploy-token',
      durationSeconds: 600,
      justification,
    });
    expect(created.status).toBe(201);
    return created.body.id as string;
  }

  /** Files, has bob approve with his passkey, and activates as the workload with a second token. */
  async function fileApproveActivate(entitlementId: string, filer: Minted, activator: Minted) {
    const created = await file(filer.token, entitlementId, GRANT_SECONDS, `deploy v42 (${entitlementId})`);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      requesterKind: 'workload',
      requester: 'workload:deploy-bot',
      workload: {
        id: 'deploy-bot',
        title: 'Deploy pipeline',
        ownerGroup: 'platform',
        issuer: issuer.issuer,
        subject: SUBJECT,
      },
      state: 'PENDING',
      approvalsRequired: 1,
    });
    const approved = await clientAs(stack, 'bob').decide(created.body.id, 'approve');
    expect({ status: approved.status, state: approved.body.state }).toEqual({
      status: 200,
      state: 'APPROVED',
    });
    const activated = await asWorkload(
      activator.token,
      'POST',
      `/api/requests/${created.body.id}/activate`,
      {},
    );
    expect(activated.status).toBe(200);
    expect(activated.body.request.state).toBe('ACTIVE');
    expect(activated.body.credential.notAfter).toBe(activated.body.request.notAfter);
    return {
      id: created.body.id as string,
      notAfter: Date.parse(activated.body.request.notAfter),
      credential: activated.body.credential as Record<string, string>,
    };
  }

  /** Every event of the request the workload caused carries the identity its token proved, with its jti. */
  async function expectWorkloadEvents(requestId: string, filer: Minted, activator: Minted) {
    const { rows } = await stack.db.query(
      'SELECT action, actor_id, data FROM audit_events WHERE request_id = $1 ORDER BY seq',
      [requestId],
    );
    const identity = (jti: string) => ({ id: 'deploy-bot', issuer: issuer.issuer, subject: SUBJECT, jti });
    const byWorkload = rows.filter((row) => row.actor_id === workloadUserId);
    expect(byWorkload.map((row) => row.action)).toEqual([
      'request.created',
      'request.activated',
      'grant.issued',
    ]);
    for (const row of byWorkload) {
      const jti = row.action === 'request.created' ? filer.jti : activator.jti;
      expect({ action: row.action, workload: row.data.workload }).toEqual({
        action: row.action,
        workload: identity(jti),
      });
    }
    // A person's decision is theirs: bob's approval carries his passkey evidence, not the workload.
    const approval = rows.find((row) => row.action === 'approval.recorded')!;
    expect(approval.data.workload).toBeUndefined();
    expect(approval.data.evidence).toBeDefined();
    // The activation was proved by the token, not by a step-up.
    expect(byWorkload[1].data.evidence).toBeUndefined();
    return rows.map((row) => row.action as string);
  }

  /** The signed approval chain verifies offline and carries the workload's identity on its events. */
  async function expectBundle(requestId: string, filer: Minted, activator: Minted) {
    const jwks = (await clientAs(stack, null).get('/.well-known/audit-jwks.json')).body.keys;
    const bundle = await clientAs(stack, 'audrey').get(`/api/audit/requests/${requestId}/bundle`);
    expect(bundle.status).toBe(200);
    expect(await verifyBundle(bundle.body, { jwks })).toMatchObject({ ok: true, format: 'bundle' });
    const data = (action: string) =>
      bundle.body.events.find((event: { action: string }) => event.action === action)?.data;
    const identity = { id: 'deploy-bot', issuer: issuer.issuer, subject: SUBJECT };
    expect(data('request.created').workload).toEqual({ ...identity, jti: filer.jti });
    expect(data('request.activated').workload).toEqual({ ...identity, jti: activator.jti });
    expect(data('grant.issued').workload).toEqual({ ...identity, jti: activator.jti });
    expect(bundle.body.grants).toEqual([expect.objectContaining({ state: 'REVOKED' })]);
  }

  it('a workload token files jwt and postgres requests; bob approves with a passkey; the workload activates, uses both; both are revoked on time', async () => {
    const filer = await mint();
    const activator = await mint();
    const jwtGrant = await fileApproveActivate('deploy-token', filer, activator);
    const dbGrant = await fileApproveActivate('deploy-db', filer, activator);
    await ensureWorkloadUser();

    // The jwt: signed by the broker's published key, for the workload, active until notAfter.
    const keys = (await clientAs(stack, null).get('/.well-known/jwks.json')).body;
    const { payload } = await jwtVerify(jwtGrant.credential.token, createLocalJWKSet(keys), {
      audience: 'https://api.example.com',
    });
    expect(payload.exp! * 1000).toBe(jwtGrant.notAfter);
    expect(payload.sub).toBe('workload:deploy-bot');
    expect(await introspect(stack, jwtGrant.credential.token)).toMatchObject({
      active: true,
      sub: 'workload:deploy-bot',
    });

    // The postgres login: reads what the scoped role may, and holds a session open across notAfter.
    expect(dbGrant.credential.type).toBe('postgres');
    const session = new pg.Client({ connectionString: dbGrant.credential.connectionString });
    session.on('error', () => {}); // the revocation ends this session on purpose
    await session.connect();
    const { rows } = await session.query('SELECT version FROM releases ORDER BY version');
    expect(rows.map((row) => row.version)).toEqual(['v41', 'v42']);
    expect(Date.now()).toBeLessThan(Math.min(jwtGrant.notAfter, dbGrant.notAfter));

    for (const { id, notAfter } of [jwtGrant, dbGrant]) {
      const revoked = await revokedGrant(stack, id, notAfter);
      const lag = revoked.revoked_at.getTime() - revoked.not_after.getTime();
      expect({ id, requestState: revoked.request_state, late: lag < 0 || lag > REVOKE_LAG_MS }).toEqual({
        id,
        requestState: 'ENDED',
        late: false,
      });
    }
    expect((await introspect(stack, jwtGrant.credential.token)).active).toBe(false);
    await expect(session.query('SELECT 1')).rejects.toThrow();
    await session.end().catch(() => {});
    const again = new pg.Client({ connectionString: dbGrant.credential.connectionString });
    again.on('error', () => {});
    await expect(again.connect()).rejects.toThrow();
    const role = await withClient(adminUrl, (admin) =>
      admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [dbGrant.credential.username]),
    );
    expect(role.rowCount).toBe(0);

    for (const grant of [jwtGrant, dbGrant]) {
      expect(await expectWorkloadEvents(grant.id, filer, activator)).toEqual(
        expect.arrayContaining(['request.ended', 'grant.revoked']),
      );
      await expectBundle(grant.id, filer, activator);
    }
  }, 90_000);

  describe('refusals write nothing', () => {
    let pendingOfAlice: string;
    let before: Record<string, number>;

    beforeAll(async () => {
      await ensureWorkloadUser();
      pendingOfAlice = await alicePending('refusals: a person request the workload may not decide');
    }, 30_000);

    /** Runs one refused call and checks its status, code and that no row was added anywhere. */
    async function expectRefused(call: () => Promise<ApiResponse<any>>, status: number, code: string) {
      before = await rowCounts(stack);
      const refused = await call();
      expect({ status: refused.status, code: refused.body?.error?.code }).toEqual({ status, code });
      expect(await rowCounts(stack)).toEqual(before);
      return refused.body.error.message as string;
    }

    const fileWith = (token: string) => file(token, 'deploy-token', 300, 'should never be filed');

    it('a token signed by a key the issuer never published (new kid, and the issuer own kid)', async () => {
      const { privateKey } = await generateKeyPair('ES256');
      const issuerKid = ((await (await fetch(issuer.jwksUri)).json()) as { keys: [{ kid: string }] }).keys[0]
        .kid;
      for (const [kid, reason] of [
        [randomUUID(), /no key of the issuer's key set signed it/],
        [issuerKid, /signature does not verify/],
      ] as const) {
        const forged = await new SignJWT({})
          .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
          .setIssuer(issuer.issuer)
          .setSubject(SUBJECT)
          .setAudience(AUDIENCE)
          .setIssuedAt()
          .setJti(randomUUID())
          .setExpirationTime('5m')
          .sign(privateKey);
        expect(await expectRefused(() => fileWith(forged), 401, 'WORKLOAD_TOKEN_INVALID')).toMatch(reason);
      }
    });

    it("a token signed with another workload's keys of the same issuer, naming deploy-bot", async () => {
      // test-bot trusts `other`'s keys for the same `iss`: they must not vouch for deploy-bot's audience.
      const token = await other.token({ iss: issuer.issuer, sub: SUBJECT, aud: AUDIENCE, jti: randomUUID() });
      expect(await expectRefused(() => fileWith(token), 401, 'WORKLOAD_TOKEN_INVALID')).toMatch(
        /audience|no key of the issuer's key set/,
      );
    });

    it('an expired token, a wrong audience, a subject outside the pattern', async () => {
      const now = Math.floor(Date.now() / 1000);
      const cases: Array<[Promise<Minted>, RegExp]> = [
        // Past the 30 s clock tolerance.
        [mint({ exp: now - 90 }), /expired/],
        // Valid for two more days: longer than any CI job, so a mis-set issuer's token is refused.
        [mint({ exp: now + 2 * 86_400 }), /at most 86400 s is accepted/],
        [mint({ aud: 'someone-else' }), /audience/],
        [mint({ sub: 'repo:evil/app:ref:refs/heads/main' }), /matches no workload/],
        // `*` stays within one ':'-separated part.
        [mint({ sub: `${SUBJECT}:extra` }), /matches no workload/],
        [mint({ sub: 'repo:org/app:pull_request' }), /matches no workload/],
      ];
      for (const [minted, reason] of cases) {
        const { token } = await minted;
        expect(await expectRefused(() => fileWith(token), 401, 'WORKLOAD_TOKEN_INVALID')).toMatch(reason);
        // Reading is refused just the same.
        await expectRefused(
          () => asWorkload(token, 'GET', `/api/requests/${pendingOfAlice}`),
          401,
          'WORKLOAD_TOKEN_INVALID',
        );
      }
    });

    it('approve and deny of a person request, and break-glass', async () => {
      const { token } = await mint();
      for (const action of ['approve', 'deny']) {
        await expectRefused(
          () =>
            asWorkload(token, 'POST', `/api/requests/${pendingOfAlice}/${action}`, { reason: 'bot says no' }),
          403,
          'WORKLOAD_FORBIDDEN',
        );
      }
      // A well-formed break-glass body: a real `break-glass` step-up (alice's, issued before the snapshot).
      const params = { entitlementId: 'emergency-db', durationSeconds: 600, justification: 'prod is down' };
      const stepUp = await clientAs(stack, 'alice').stepUp('break-glass', params.entitlementId, params);
      await expectRefused(
        () => asWorkload(token, 'POST', '/api/requests', { ...params, stepUp }),
        403,
        'WORKLOAD_FORBIDDEN',
      );
      const view = await clientAs(stack, 'alice').get(`/api/requests/${pendingOfAlice}`);
      expect(view.body.state).toBe('PENDING');
    });

    it('a duration above the workload cap (10m set, 15m by default)', async () => {
      const { token } = await mint();
      await expectRefused(() => file(token, 'deploy-token', 601, 'too long'), 422, 'DURATION_TOO_LONG');
      await expectRefused(() => file(token, 'deploy-db', 15 * 60 + 1, 'too long'), 422, 'DURATION_TOO_LONG');
      // The caps themselves are allowed (nothing refused below): the workload cap, not maxDuration, binds.
      expect((await file(token, 'deploy-token', 600, 'at the cap')).status).toBe(201);
    });
  });

  describe('the long-poll', () => {
    it('returns at its timeout when nothing is decided', async () => {
      const { token } = await mint();
      const created = await file(token, 'deploy-token', 300, 'long-poll: no decision');
      expect(created.status).toBe(201);
      const started = performance.now();
      const waited = await asWorkload(token, 'GET', `/api/requests/${created.body.id}/wait?timeout=3`);
      const elapsed = performance.now() - started;
      expect(waited.status).toBe(200);
      expect(waited.body).toMatchObject({
        changed: false,
        request: { id: created.body.id, state: 'PENDING' },
      });
      expect(elapsed).toBeGreaterThanOrEqual(2900);
      expect(elapsed).toBeLessThan(4500);
      for (const timeout of ['0', '61', '2.5']) {
        const refused = await asWorkload(
          token,
          'GET',
          `/api/requests/${created.body.id}/wait?timeout=${timeout}`,
        );
        expect({ timeout, status: refused.status }).toEqual({ timeout, status: 400 });
      }
    });

    /**
     * Starts a long-poll and resolves once the broker holds it (RequestWaits' count of open waits went up), so
     * that a decision made next comes while it waits; the started call resolves with when its answer arrived.
     */
    async function parkedWait(call: () => Promise<ApiResponse<any>>) {
      const waits = stack.broker.get(RequestWaits);
      const held = waits.open;
      const answered = call().then((response) => ({ response, at: performance.now() }));
      await waitFor(async () => (waits.open > held ? true : undefined), 5000, 'the long-poll to park');
      // Wrapped: an async function returning the promise itself would resolve only once it is answered.
      return { answered };
    }

    it("returns within 1 s of bob's decision", async () => {
      const { token } = await mint();
      const created = await file(token, 'deploy-token', 300, 'long-poll: bob approves');
      const route = `/api/requests/${created.body.id}/wait?timeout=30&state=PENDING`;
      const { answered } = await parkedWait(() => asWorkload(token, 'GET', route));
      const decidedFrom = performance.now();
      const approved = await clientAs(stack, 'bob').decide(created.body.id, 'approve');
      const decidedAt = performance.now();
      expect(approved.status).toBe(200);
      const { response, at } = await answered;
      expect(response.body).toMatchObject({ changed: true, request: { state: 'APPROVED' } });
      expect(at).toBeGreaterThan(decidedFrom);
      expect(at - decidedAt).toBeLessThan(1000);
    });

    it('a person waits on her own request with her session', async () => {
      const requestId = await alicePending('long-poll: alice waits');
      const route = `/api/requests/${requestId}/wait?timeout=30`;
      const { answered } = await parkedWait(() => clientAs(stack, 'alice').get(route));
      const decidedFrom = performance.now();
      const denied = await clientAs(stack, 'bob').decide(requestId, 'deny', { reason: 'not now' });
      const decidedAt = performance.now();
      expect(denied.status).toBe(200);
      const { response, at } = await answered;
      expect(response.status).toBe(200);
      expect(response.body).toMatchObject({ changed: true, request: { id: requestId, state: 'DENIED' } });
      expect(at).toBeGreaterThan(decidedFrom);
      expect(at - decidedAt).toBeLessThan(1000);
      // Not another person's: carol may not wait on alice's request.
      const carol = await clientAs(stack, 'carol').get(`/api/requests/${requestId}/wait?timeout=1`);
      expect(carol.status).toBe(404);
    });
  });

  describe('a policy granting a workload no human approval is refused at load', () => {
    const variants: Array<[string, (text: string) => string]> = [
      [
        'zero approvals',
        (text) =>
          text.replace(
            'approval: { approvals: 1, approverGroups: [approvers] }',
            'approval: { approvals: 0, approverGroups: [approvers] }',
          ),
      ],
      [
        'break-glass',
        (text) =>
          text.replace(
            'approval: { approvals: 1, approverGroups: [approvers] }',
            'breakGlass: { notify: [approvers], postReviewWithin: 24h }',
          ),
      ],
    ];

    /** The admin route's reload, with a `policy.reload` step-up: what activating a policy takes. */
    async function reloadByAdmin() {
      const admin = clientAs(stack, 'admin');
      return admin.post('/api/admin/policies/reload', {
        stepUp: await admin.stepUp('policy.reload', 'policy', {}),
      });
    }

    it('by an admin reload and by the load a booting broker does; the version in force stays', async () => {
      const policyFile = path.join(policyDir, 'workloads.yaml');
      const original = await readFile(policyFile, 'utf8');
      const inForce = (await clientAs(stack, 'admin').get('/api/admin/policies')).body.inForce as string;
      const refusal = /lists eligibleWorkloads but .*; a workload always needs at least one human approval/;
      try {
        for (const [name, edit] of variants) {
          await writeFile(policyFile, edit(original));
          const refused = await reloadByAdmin();
          expect({ name, status: refused.status, code: refused.body.error?.code }).toEqual({
            name,
            status: 422,
            code: 'POLICY_INVALID',
          });
          expect(refused.body.error.details).toEqual([
            expect.objectContaining({ file: policyFile, reason: expect.stringMatching(refusal) }),
          ]);
          // A broker booting on this policy refuses to start, and closes what it opened (apps/broker/bootstrap.ts).
          await expect(createBroker(stack.config)).rejects.toThrow(refusal);
          expect((await clientAs(stack, 'admin').get('/api/admin/policies')).body.inForce).toBe(inForce);
        }
      } finally {
        await writeFile(policyFile, original);
      }
      // The workload goes on under the version in force.
      expect((await file((await mint()).token, 'deploy-token', 300, 'after the refusals')).status).toBe(201);
    }, 60_000);
  });
});
