import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startOidcIssuer, type OidcIssuer } from '../support/oidc-issuer.js';
import { registeredRoutes } from '../support/routes.js';
import {
  enroll,
  httpClient,
  inviteToken,
  personFor,
  sessionCookieFrom,
  startStack,
  type Person,
  type TestStack,
} from '../support/stack.js';
import {
  AUTHZ_MATRIX,
  CALLERS,
  type Caller,
  type MatrixRow,
  type ObjectKind,
  type Role,
} from './authz-matrix.js';

/** The workload caller's OIDC subject and audience, as matrix-bot declares them. */
const WORKLOAD_TOKEN = { sub: 'repo:org/matrix:ref:refs/heads/main', aud: 'jit-broker' };

/** The matrix's policy; `${ISSUER}` is the suite's local OIDC issuer (matrix-bot's tokens). */
const POLICY = `
groups:
  engineers: [alice, carol]
  approvers: [bob]
  other-approvers: [erin]
connectors:
  token: { type: jwt, audience: https://api.example.com }
workloads:
  - id: matrix-bot
    title: Matrix workload
    issuer: \${ISSUER}
    audience: ${WORKLOAD_TOKEN.aud}
    subject: '${WORKLOAD_TOKEN.sub}'
    ownerGroup: engineers
entitlements:
  - id: tok
    connector: token
    scope: { scopes: ['read'] }
    eligible: [engineers]
    eligibleWorkloads: [matrix-bot]
    maxDuration: 1h
    workloadMaxDuration: 15m
    approval: { approvals: 1, approverGroups: [approvers] }
  - id: other
    connector: token
    scope: { scopes: ['read'] }
    eligible: [engineers]
    maxDuration: 1h
    approval: { approvals: 1, approverGroups: [other-approvers] }
  - id: self
    connector: token
    scope: { scopes: ['read'] }
    eligible: [engineers]
    maxDuration: 15m
    selfService: true
`;

const PEOPLE: Record<Exclude<Role, 'anonymous'>, string> = {
  owner: 'alice',
  other: 'carol',
  outsider: 'erin',
  approver: 'bob',
  auditor: 'audrey',
  admin: 'root',
  suspended: 'sam',
};

interface World {
  stack: TestStack;
  issuer: OidcIssuer;
  people: Map<Role, Person>;
  request: string;
  grant: string;
  passkey: string;
  invite: string;
  policyHash: string;
}

/** A new session of `person`'s through the WebAuthn login ceremony. */
async function login(stack: TestStack, person: Person): Promise<Person> {
  const anonymous = httpClient(stack, null);
  const options = await anonymous.post('/api/auth/login/options', {});
  const verified = await anonymous.post('/api/auth/login/verify', {
    response: person.authenticator.authenticate(options.body),
  });
  if (verified.status !== 200) throw new Error(`login ${verified.status}: ${JSON.stringify(verified.body)}`);
  return personFor(
    stack,
    person.username,
    person.userId,
    person.authenticator,
    sessionCookieFrom(verified.headers),
  );
}

async function fileRequest(owner: Person, entitlementId = 'tok'): Promise<string> {
  const filed = await owner.post('/api/requests', {
    entitlementId,
    durationSeconds: 600,
    justification: 'matrix',
  });
  if (filed.status !== 201) throw new Error(`request ${filed.status}: ${JSON.stringify(filed.body)}`);
  return filed.body.id as string;
}

/** A fresh, valid OIDC token of matrix-bot's. */
const workloadToken = (issuer: OidcIssuer) => issuer.token(WORKLOAD_TOKEN);

async function buildWorld(stack: TestStack, issuer: OidcIssuer): Promise<World> {
  const people = new Map<Role, Person>();
  for (const [role, username] of Object.entries(PEOPLE) as Array<[Role, string]>) {
    const roles = role === 'admin' ? ['admin' as const] : role === 'auditor' ? ['auditor' as const] : [];
    people.set(role, await enroll(stack, username, { roles }));
  }
  const owner = people.get('owner')!;
  const admin = people.get('admin')!;
  const params = { status: 'suspended', reason: 'matrix' };
  const suspended = await admin.post('/api/admin/users/sam/status', {
    ...params,
    stepUp: await admin.stepUp('user.suspend', 'sam', params),
  });
  if (suspended.status !== 200)
    throw new Error(`suspend ${suspended.status}: ${JSON.stringify(suspended.body)}`);
  const selfService = await fileRequest(owner, 'self');
  const activated = await owner.decide(selfService, 'activate');
  if (activated.status !== 200)
    throw new Error(`activate ${activated.status}: ${JSON.stringify(activated.body)}`);
  await inviteToken(stack, 'ivan');
  // matrix-bot's first call creates its users row (workload-auth.ts): made here, so no refused cell does it.
  const bot = await fetch(`${stack.baseUrl}/api/requests?limit=1`, {
    headers: { authorization: `Bearer ${await workloadToken(issuer)}` },
  });
  if (bot.status !== 403) throw new Error(`workload first call ${bot.status}: ${await bot.text()}`);
  const one = async (sql: string, values: unknown[] = []) => (await stack.db.query(sql, values)).rows[0];
  return {
    stack,
    issuer,
    people,
    request: await fileRequest(owner),
    grant: (await one('SELECT id FROM grants WHERE request_id = $1', [selfService])).id,
    passkey:
      (await owner.get('/api/me/authenticators')).body.items?.[0]?.id ??
      (await one('SELECT id FROM authenticators WHERE user_id = $1', [owner.userId])).id,
    invite: (await one('SELECT id FROM enrollment_invites ORDER BY created_at DESC LIMIT 1')).id,
    policyHash: (await one('SELECT hash FROM policy_versions LIMIT 1')).hash,
  };
}

/** A well-formed step-up proof, signed by `person`'s passkey (alice's for anonymous), no challenge was issued for. */
function bogusStepUp(world: World, person: Person | null) {
  const response = (person ?? world.people.get('owner')!).authenticator.authenticate({
    challenge: Buffer.from(randomUUID()).toString('base64url'),
  } as never);
  return { challengeId: randomUUID(), response };
}

async function objectId(world: World, kind: ObjectKind | undefined): Promise<string> {
  const owner = world.people.get('owner')!;
  switch (kind) {
    case 'fresh-request':
      return fileRequest(owner);
    case 'grant':
      return world.grant;
    case 'passkey':
      return world.passkey;
    case 'invite':
      return world.invite;
    case 'fresh-session': {
      await login(world.stack, owner);
      const newest = await world.stack.db.query(
        'SELECT id FROM sessions WHERE user_id = $1 ORDER BY created_at DESC LIMIT 1',
        [owner.userId],
      );
      return newest.rows[0].id as string;
    }
    default:
      return world.request;
  }
}

/** The row's body for one cell: placeholders filled, '$stepUp' a bogus proof or (realStepUp) a valid one. */
async function cellBody(world: World, row: MatrixRow, role: Caller, person: Person | null, id: string) {
  if (role === 'workload' && row.workloadBody !== undefined) return JSON.stringify(row.workloadBody);
  if (row.body === undefined) return undefined;
  const fill = (value: unknown): unknown => {
    if (value === '$stepUp') return bogusStepUp(world, person);
    if (value === '$request') return world.request;
    if (value === '$id') return id;
    if (Array.isArray(value)) return value.map(fill);
    if (value && typeof value === 'object')
      return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, fill(item)]));
    return value;
  };
  const body = fill(row.body) as Record<string, unknown>;
  const real = row.realStepUp;
  if (person && role !== 'workload' && real?.callers.includes(role)) {
    const { stepUp: _proof, ...rest } = body;
    const params = { ...rest, ...(fill(real.params) as Record<string, unknown>) };
    body.stepUp = await person.stepUp(real.action, person.username, params);
  }
  return JSON.stringify(body);
}

/** Row counts of every table and the audit chain's head: a refused cell must leave them as they were. */
async function snapshot(world: World): Promise<Record<string, number>> {
  const { rows } = await world.stack.db.query(
    `SELECT table_name AS name FROM information_schema.tables
      WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name`,
  );
  const counts = (rows as Array<{ name: string }>)
    .map(({ name }) => `(SELECT count(*)::int FROM "${name}") AS "${name}"`)
    .join(', ');
  const result = await world.stack.db.query(
    `SELECT ${counts}, (SELECT seq::int FROM audit_chain_head) AS audit_head`,
  );
  return result.rows[0] as Record<string, number>;
}

/**
 * Runs one cell: the status `role` gets for this route, and for a refused workload the tables its call changed
 * (counted after the cell's own object, a fresh request or session, is made).
 */
async function runCell(
  world: World,
  key: string,
  row: MatrixRow,
  role: Caller,
): Promise<{ status: number; changed: string[] }> {
  const [method, pattern] = key.split(' ');
  const id = await objectId(world, row.object);
  const url = pattern
    .replace(':username', 'alice')
    .replace(':entitlementId', 'tok')
    .replace(':hash', world.policyHash)
    .replace(/:(id|inviteId)\b/, id)
    .concat(row.query ?? '');
  let person = role === 'anonymous' || role === 'workload' ? null : world.people.get(role)!;
  if (person && row.freshSession && role !== 'suspended') person = await login(world.stack, person);
  const body = await cellBody(world, row, role, person, id);
  const headers: Record<string, string> = { 'content-type': 'application/json', origin: world.stack.origin };
  if (person) headers.cookie = person.cookie;
  if (role === 'workload') headers.authorization = `Bearer ${await workloadToken(world.issuer)}`;
  const before = role === 'workload' ? await snapshot(world) : null;
  // Only the status counts: the body is dropped, so a stream (GET /api/events) does not hold the cell.
  const response = await fetch(`${world.stack.baseUrl}${url}`, { method, headers, body });
  await response.body?.cancel();
  if (!before || response.status < 400) return { status: response.status, changed: [] };
  const after = await snapshot(world);
  return {
    status: response.status,
    changed: Object.keys(after).filter((name) => after[name] !== before[name]),
  };
}

/** Every cell of the table; what went wrong, one line per cell. */
async function runMatrix(world: World): Promise<{ cells: number; wrong: string[] }> {
  const wrong: string[] = [];
  let cells = 0;
  for (const [key, row] of Object.entries(AUTHZ_MATRIX)) {
    for (const caller of CALLERS) {
      const { status, changed } = await runCell(world, key, row, caller);
      cells += 1;
      if (status !== row.expect[caller])
        wrong.push(`${key} as ${caller}: ${status}, expected ${row.expect[caller]}`);
      if (changed.length)
        wrong.push(`${key} as ${caller}: refused (${status}) but changed ${changed.join(', ')}`);
    }
  }
  return { cells, wrong };
}

/** One call of matrix-bot's, with a fresh token. */
async function asWorkload(world: World, method: string, url: string, body?: unknown) {
  const response = await fetch(`${world.stack.baseUrl}${url}`, {
    method,
    headers: {
      authorization: `Bearer ${await workloadToken(world.issuer)}`,
      'content-type': 'application/json',
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, any> };
}

/** matrix-bot files a request, reads it, waits on it, activates it (too early: 409) and cancels it. */
async function checkOwnRequest(world: World): Promise<void> {
  const call = (method: string, url: string, body?: unknown) => asWorkload(world, method, url, body);
  const filed = await call('POST', '/api/requests', {
    entitlementId: 'tok',
    durationSeconds: 600,
    justification: 'matrix bot',
  });
  expect(filed).toMatchObject({ status: 201, body: { requesterKind: 'workload', state: 'PENDING' } });
  const own = `/api/requests/${filed.body.id}`;
  expect((await call('GET', own)).status).toBe(200);
  // Not APPROVED when asked: answered at once, `changed` true.
  expect(await call('GET', `${own}/wait?state=APPROVED&timeout=1`)).toMatchObject({
    status: 200,
    body: { changed: true, request: { id: filed.body.id, state: 'PENDING' } },
  });
  expect((await call('POST', `${own}/activate`, {})).status).toBe(409);
  expect((await call('POST', `${own}/activate`, { stepUp: bogusStepUp(world, null) })).status).toBe(400);
  expect((await world.people.get('other')!.get(own)).status).toBe(404);
  expect(await call('POST', `${own}/cancel`, {})).toMatchObject({
    status: 200,
    body: { state: 'CANCELLED' },
  });
}

describe('authorization matrix: every registered route × every kind of caller', () => {
  let stack: TestStack;
  let issuer: OidcIssuer;
  let policyDir: string;
  let world: World;

  beforeAll(async () => {
    issuer = await startOidcIssuer();
    policyDir = await mkdtemp(path.join(tmpdir(), 'jit-authz-'));
    await writeFile(path.join(policyDir, 'policy.yaml'), POLICY.replace('${ISSUER}', issuer.issuer));
    // Every step-up cell spends a refused proof; the lockout (5 by default, tested in step-up.e2e.ts) would
    // turn later cells into 429s, so this suite's stack alone allows many.
    stack = await startStack({ policyDir, worker: false, env: { STEP_UP_MAX_FAILURES: '100000' } });
    world = await buildWorld(stack, issuer);
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await issuer?.close();
    if (policyDir) await rm(policyDir, { recursive: true, force: true });
  }, 30_000);

  it('has exactly one row per registered route', () => {
    const registered = new Set(
      registeredRoutes(stack)
        .map((route) => `${route.method} ${route.path}`)
        // The Swagger UI's stock files, as @nestjs/swagger registers them (public, no data; see route-auth.e2e.ts).
        .filter((key) => !/^GET \/api\/docs\//.test(key)),
    );
    const rows = new Set(Object.keys(AUTHZ_MATRIX));
    // A registered route without a row fails here, and so does a row for a route that no longer exists.
    const missing = [...registered].filter((key) => !rows.has(key));
    const stale = [...rows].filter((key) => !registered.has(key));
    expect({ missing, stale }).toEqual({ missing: [], stale: [] });
    expect(registered.size).toBeGreaterThan(50);
  });

  it('answers every cell as the table says', async () => {
    const { cells, wrong } = await runMatrix(world);
    const routes = Object.keys(AUTHZ_MATRIX).length;
    console.log(
      `authz-matrix: ${routes} routes x ${CALLERS.length} callers = ${cells} cells, ${wrong.length} wrong`,
    );
    expect(wrong).toEqual([]);
    expect(cells).toBe(routes * CALLERS.length);
  }, 90_000);

  it("lets the workload reach its own request through its five routes, and nobody else's", async () => {
    await checkOwnRequest(world);
  }, 30_000);
});
