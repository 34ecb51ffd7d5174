// Scale-out and graceful shutdown (issue 19): two broker and two worker processes, built and run as in
// production, on one PostgreSQL database and one Redis. Requests, step-ups and approvals go through both
// brokers; 200 webhook grants are each revoked once while a worker is SIGKILLed; a policy reload reaches
// both brokers; then a broker is sent SIGTERM during traffic and a worker with due jobs is sent SIGTERM.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import pg from 'pg';
import { answers200, spawnNode, waitUntil, type AppProcess } from '../../bench/lib/apps.js';
import { verifyChain } from '../../libs/audit/chain.js';
import { verifyWebhookSignature, type WebhookEvent } from '../../libs/connectors/webhook.connector.js';
import { createDataSource, migrateAsOwner } from '../../libs/db/data-source.js';
import { createBrokerDatabase, dropLoginRoles } from '../../libs/devstack/database-roles.js';
import { databaseUrl, dropDatabase } from '../../libs/devstack/databases.js';
import { freePort } from '../../libs/devstack/free-port.js';
import { createInvite } from '../../libs/identity/invites.js';
import { storedChain } from '../support/audit-chain.js';
import { SoftAuthenticator } from '../support/soft-authenticator.js';
import { waitFor } from '../support/stack.js';
import { sharedBuild } from '../support/temp-build.js';

jest.setTimeout(120_000);

const SECRET = 'whsec_e2e_scale_out_7c1d9e4b2a';
const SHUTDOWN_GRACE_MS = 5_000;
const GRANT_SECONDS = 4;
const pad = (index: number) => String(index + 1).padStart(2, '0');
const SELF_SERVICE = Array.from({ length: 10 }, (_, index) => `hook-${pad(index)}`);
const APPROVED = 'hook-approved';
const LATE = 'hook-late';
const REQUESTERS = Array.from({ length: 20 }, (_, index) => `user-${pad(index)}`);
const APPROVERS = Array.from({ length: 10 }, (_, index) => `approver-${pad(index)}`);
/** The second worker is SIGKILLed once this many of the 200 grants are active (some already due). */
const KILL_AFTER_ACTIVATIONS = 80;

interface Answer {
  status: number;
  body: any;
}

interface Person {
  username: string;
  cookie: string;
  authenticator: SoftAuthenticator;
}

/** The most revoke deliveries a SIGKILL can cut between the receiver's answer and the commit (concurrency). */
const REVOCATION_CONCURRENCY = 8;

/**
 * The external system: revoke deliveries per grant, the Idempotency-Keys they carried (a redelivery of one
 * operation carries the same key, so a real receiver applies it once), what it still holds, bad signatures.
 */
const receiver = {
  held: new Set<string>(),
  revokes: new Map<string, number>(),
  revokeKeys: new Map<string, Set<string>>(),
  unverified: 0,
};

function entitlementYaml(id: string, extra: string): string {
  return [
    `  - id: ${id}`,
    `    title: Webhook entitlement ${id}`,
    '    connector: hook',
    `    scope: { role: ${id} }`,
    '    eligible: [requesters]',
    '    maxDuration: 1h',
    '    requires: { justification: false }',
    `    ${extra}`,
  ].join('\n');
}

function policyYaml(receiverUrl: string): string {
  return [
    'groups:',
    `  requesters: [${REQUESTERS.join(', ')}]`,
    `  approvers: [${APPROVERS.join(', ')}]`,
    'connectors:',
    `  hook: { type: webhook, url: '${receiverUrl}', secretEnv: E2E_WEBHOOK_SECRET }`,
    'entitlements:',
    ...SELF_SERVICE.map((id) => entitlementYaml(id, 'selfService: true')),
    entitlementYaml(APPROVED, 'approval: { approvals: 1, approverGroups: [approvers] }'),
    '',
  ].join('\n');
}

function startReceiver(): Promise<Server> {
  const server = createServer((incoming, response) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.on('end', () => {
      const body = Buffer.concat(chunks);
      const header = (name: string) => incoming.headers[name] as string | undefined;
      if (!verifyWebhookSignature(SECRET, header('x-jit-timestamp'), body, header('x-jit-signature'))) {
        receiver.unverified += 1;
        response.writeHead(401).end();
        return;
      }
      const event = JSON.parse(body.toString('utf8')) as WebhookEvent;
      if (event.event === 'mint') {
        receiver.held.add(event.grantId!);
        response.writeHead(201, { 'Content-Type': 'application/json' });
        response.end(JSON.stringify({ credential: { group: 'scale-out' }, externalRef: event.grantId }));
        return;
      }
      const grantId = event.externalRef;
      receiver.revokes.set(grantId, (receiver.revokes.get(grantId) ?? 0) + 1);
      const keys = receiver.revokeKeys.get(grantId) ?? new Set<string>();
      receiver.revokeKeys.set(grantId, keys.add(header('idempotency-key') ?? 'none'));
      receiver.held.delete(event.externalRef);
      response.writeHead(204).end();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** One broker database, two brokers and two workers (dist/ of a temp build), the receiver, a superuser pool. */
interface Cluster {
  workDir: string;
  buildDir: string;
  databaseName: string;
  roles: { owner: string; runtime: string };
  env: NodeJS.ProcessEnv;
  runtimeUrl: string;
  origin: string;
  brokers: Array<{ url: string; app: AppProcess }>;
  workers: AppProcess[];
  db: pg.Pool;
  server: Server;
}

const adminUrl = () => process.env.E2E_PG_ADMIN_URL!;

async function startBroker(cluster: Cluster, name: string, port: number): Promise<void> {
  const script = path.join(cluster.buildDir, 'dist', 'apps', 'broker', 'main.js');
  const env = { ...cluster.env, PORT: String(port) };
  const app = await spawnNode(name, script, env, path.join(cluster.workDir, `${name}.log`));
  const url = `http://127.0.0.1:${port}`;
  cluster.brokers.push({ url, app });
  await waitUntil(() => answers200(`${url}/health/ready`), `${name} to be ready`, app);
}

async function startWorker(cluster: Cluster, name: string): Promise<AppProcess> {
  const script = path.join(cluster.buildDir, 'dist', 'apps', 'worker', 'main.js');
  const app = await spawnNode(name, script, cluster.env, path.join(cluster.workDir, `${name}.log`));
  cluster.workers.push(app);
  await waitUntil(
    async () => (await readFile(app.logFile, 'utf8')).includes('Boot sweep scheduled'),
    `${name} to finish its boot sweep`,
    app,
  );
  return app;
}

function clusterEnv(cluster: Cluster, policyDir: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    NODE_ENV: 'production',
    LOG_LEVEL: 'info',
    HOST: '127.0.0.1',
    // Both brokers stand behind one public name, as behind a proxy: passkeys are bound to that origin.
    PUBLIC_URL: cluster.origin,
    DATABASE_URL: cluster.runtimeUrl,
    REDIS_URL: process.env.E2E_REDIS_URL,
    QUEUE_PREFIX: `scale-${randomBytes(4).toString('hex')}`,
    POLICY_DIR: policyDir,
    BROKER_MASTER_KEY: randomBytes(32).toString('base64'),
    E2E_WEBHOOK_SECRET: SECRET,
    SWEEP_INTERVAL_SECONDS: '1',
    REVOKE_BACKOFF_MS: '50',
    SHUTDOWN_GRACE_MS: String(SHUTDOWN_GRACE_MS),
    MAX_OPEN_REQUESTS_PER_ENTITLEMENT: '100000',
    MAX_OPEN_REQUESTS: '100000',
    REQUEST_RATE_LIMIT: '100000',
    IP_RATE_LIMIT: '1000000',
    WEB_DIR: cluster.workDir,
  };
}

async function startCluster(): Promise<Cluster> {
  const workDir = await mkdtemp(path.join(tmpdir(), 'jit-scale-out-'));
  const server = await startReceiver();
  const receiverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  await writeFile(path.join(workDir, 'policy.yaml'), policyYaml(receiverUrl));
  const databaseName = `e2e_scale_${randomBytes(4).toString('hex')}`;
  const roles = { owner: `${databaseName}_owner`, runtime: `${databaseName}_runtime` };
  const cluster = { workDir, server, databaseName, roles, brokers: [], workers: [] } as unknown as Cluster;
  const [buildDir, urls] = await Promise.all([
    sharedBuild(120_000),
    createBrokerDatabase(adminUrl(), databaseName, roles),
  ]);
  cluster.buildDir = buildDir;
  await migrateAsOwner(urls.ownerUrl, roles.runtime);
  cluster.runtimeUrl = urls.runtimeUrl;
  cluster.db = new pg.Pool({ connectionString: databaseUrl(adminUrl(), databaseName), max: 4 });
  const [portA, portB] = [await freePort(), await freePort()];
  cluster.origin = `http://localhost:${portA}`;
  cluster.env = clusterEnv(cluster, workDir);
  await Promise.all([startBroker(cluster, 'broker-a', portA), startBroker(cluster, 'broker-b', portB)]);
  await Promise.all([startWorker(cluster, 'worker-1'), startWorker(cluster, 'worker-2')]);
  return cluster;
}

async function stopCluster(cluster: Cluster | undefined): Promise<void> {
  if (!cluster) return;
  const apps = [...cluster.brokers.map((broker) => broker.app), ...cluster.workers];
  await Promise.all(apps.map((app) => app.stop().catch(console.error)));
  await cluster.db?.end();
  cluster.server.closeAllConnections();
  await new Promise<void>((resolve) => cluster.server.close(() => resolve()));
  if (cluster.runtimeUrl) {
    await dropDatabase(adminUrl(), cluster.databaseName).catch(console.error);
    await dropLoginRoles(adminUrl(), [cluster.roles.runtime, cluster.roles.owner]).catch(console.error);
  }
  await rm(cluster.workDir, { recursive: true, force: true });
}

async function call(
  cluster: Cluster,
  baseUrl: string,
  cookie: string | null,
  route: string,
  body?: unknown,
): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json', origin: cluster.origin };
  if (cookie) headers.cookie = cookie;
  const response = await fetch(`${baseUrl}${route}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** POST /api/requests/:id/<action> on `baseUrl` with a step-up challenged and answered there. */
async function decide(
  cluster: Cluster,
  baseUrl: string,
  person: Person,
  requestId: string,
  action: 'approve' | 'activate',
): Promise<Answer> {
  const issued = await call(cluster, baseUrl, person.cookie, '/api/step-up/challenge', {
    action,
    subjectId: requestId,
  });
  expect(issued.status).toBe(200);
  const stepUp = {
    challengeId: issued.body.challengeId,
    response: person.authenticator.authenticate(issued.body.options),
  };
  return call(cluster, baseUrl, person.cookie, `/api/requests/${requestId}/${action}`, { stepUp });
}

async function invites(cluster: Cluster, usernames: string[]): Promise<string[]> {
  const dataSource = createDataSource(cluster.runtimeUrl, { poolSize: 1, applicationName: 'jit-e2e' });
  await dataSource.initialize();
  try {
    const tokens: string[] = [];
    for (const username of usernames) {
      const invite = await dataSource.transaction((manager) =>
        createInvite(manager, { publicUrl: cluster.origin, ttlSeconds: 3600 }, 'e2e', {
          username,
          roles: [],
        }),
      );
      tokens.push(invite.token);
    }
    return tokens;
  } finally {
    await dataSource.destroy();
  }
}

/** Enrolls every username (genuine WebAuthn registration), alternating brokers. */
async function enrollAll(cluster: Cluster, usernames: string[]): Promise<Map<string, Person>> {
  const tokens = await invites(cluster, usernames);
  const people = new Map<string, Person>();
  for (const [index, username] of usernames.entries()) {
    const { url } = cluster.brokers[index % 2];
    const authenticator = new SoftAuthenticator({ origin: cluster.origin });
    const invite = tokens[index];
    const options = await call(cluster, url, null, '/api/auth/enroll/options', { invite });
    const response = await fetch(`${url}/api/auth/enroll/verify`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: cluster.origin },
      body: JSON.stringify({ invite, response: authenticator.register(options.body) }),
    });
    expect(response.status).toBe(200);
    const setCookie = response.headers.getSetCookie().find((value) => /jit_session=/.test(value));
    people.set(username, { username, authenticator, cookie: setCookie!.split(';')[0] });
  }
  return people;
}

/** Files on `filing`, approves (when gated) on the other broker, activates on `filing`; returns the request id. */
async function elevate(
  cluster: Cluster,
  filing: number,
  requester: Person,
  entitlementId: string,
  approver: Person | null,
  seconds = GRANT_SECONDS,
): Promise<string> {
  const { url } = cluster.brokers[filing];
  const filed = await call(cluster, url, requester.cookie, '/api/requests', {
    entitlementId,
    durationSeconds: seconds,
  });
  expect(filed.status).toBe(201);
  const requestId = (filed.body.request?.id ?? filed.body.id) as string;
  if (approver) {
    const approved = await decide(cluster, cluster.brokers[1 - filing].url, approver, requestId, 'approve');
    expect(approved.body.state).toBe('APPROVED');
  }
  const activated = await decide(cluster, url, requester, requestId, 'activate');
  expect(activated.status).toBe(200);
  return requestId;
}

async function grantsOf(cluster: Cluster, requestIds: string[]) {
  const { rows } = await cluster.db.query(
    'SELECT id, state, not_after FROM grants WHERE request_id = ANY($1::uuid[])',
    [requestIds],
  );
  return rows as Array<{ id: string; state: string; not_after: Date }>;
}

async function waitAllRevoked(cluster: Cluster, requestIds: string[], timeoutMs: number) {
  return waitFor(
    async () => {
      const grants = await grantsOf(cluster, requestIds);
      const done = grants.length === requestIds.length && grants.every((grant) => grant.state === 'REVOKED');
      return done ? grants : undefined;
    },
    timeoutMs,
    `${requestIds.length} grants to be revoked`,
  );
}

/**
 * Each grant: one grant.revoked audit event, one revoke operation at the receiver (one Idempotency-Key), and
 * nothing held any more. `redeliveries` is how many deliveries may repeat one (a SIGKILL between the receiver's
 * answer and the commit); 0 for a graceful stop.
 */
async function expectRevokedOnce(cluster: Cluster, grantIds: string[], redeliveries: number): Promise<void> {
  const { rows } = await cluster.db.query(
    `SELECT subject_id, count(*)::int AS n FROM audit_events
      WHERE action = 'grant.revoked' AND subject_id = ANY($1::text[]) GROUP BY subject_id`,
    [grantIds],
  );
  expect(rows).toHaveLength(grantIds.length);
  expect(rows.filter((row) => row.n !== 1)).toEqual([]);
  expect(grantIds.filter((id) => receiver.revokeKeys.get(id)?.size !== 1)).toEqual([]);
  expect(grantIds.filter((id) => [...receiver.revokeKeys.get(id)!][0] !== `revoke:${id}`)).toEqual([]);
  const repeated = grantIds.reduce((sum, id) => sum + receiver.revokes.get(id)! - 1, 0);
  expect(repeated).toBeLessThanOrEqual(redeliveries);
  expect(grantIds.filter((id) => receiver.held.has(id))).toEqual([]);
}

async function expectChainHolds(cluster: Cluster): Promise<void> {
  const events = await storedChain(cluster.db);
  expect(events.length).toBeGreaterThan(1000);
  expect(verifyChain(events)).toBeNull();
}

async function lists(cluster: Cluster, baseUrl: string, person: Person, entitlementId: string) {
  const answer = await call(cluster, baseUrl, person.cookie, '/api/entitlements');
  return JSON.stringify(answer.body).includes(`"id":"${entitlementId}"`);
}

/** One call of traffic(): its status or network error, and when it was sent and answered. */
interface Outcome {
  result: number | string;
  sentAt: number;
  answeredAt: number;
}

/** Keeps GET /api/requests going on `baseUrl` until `until` settles; every answer or network error. */
async function traffic(cluster: Cluster, baseUrl: string, people: Person[], until: Promise<unknown>) {
  const outcomes: Outcome[] = [];
  let done = false;
  void until.finally(() => (done = true));
  await Promise.all(
    people.map(async (person) => {
      while (!done) {
        const sentAt = performance.now();
        try {
          const { status } = await call(cluster, baseUrl, person.cookie, '/api/requests');
          outcomes.push({ result: status, sentAt, answeredAt: performance.now() });
        } catch (error) {
          const result = String((error as Error).cause ?? error);
          outcomes.push({ result, sentAt, answeredAt: performance.now() });
          await delay(20);
        }
      }
    }),
  );
  return outcomes;
}

/** `promise`, or a failure naming `what` after `ms`: a drain that hangs fails here, not at the suite timeout. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function exitOf(app: AppProcess): Promise<{ code: number | null; signal: string | null }> {
  if (app.child.exitCode !== null || app.child.signalCode !== null)
    return Promise.resolve({ code: app.child.exitCode, signal: app.child.signalCode });
  return new Promise((resolve) => app.child.once('exit', (code, signal) => resolve({ code, signal })));
}

describe('scale-out: two brokers and two workers on one PostgreSQL and one Redis', () => {
  let cluster: Cluster | undefined;
  let people: Map<string, Person>;
  const person = (username: string) => people.get(username)!;

  beforeAll(async () => {
    cluster = await startCluster();
    people = await enrollAll(cluster, [...REQUESTERS, ...APPROVERS]);
  }, 200_000);

  afterAll(async () => {
    await stopCluster(cluster);
    expect(receiver.unverified).toBe(0);
  }, 60_000);

  it('spreads 200 grants over both brokers, revokes each once through a SIGKILLed worker, reloads policy everywhere', async () => {
    const stack = cluster!;
    const requestIds: string[] = [];
    const perBroker = [0, 0];
    const killed = stack.workers[1];
    // Each requester works through their entitlements in turn (one passkey, one assertion at a time),
    // alternating brokers; requesters run in parallel. The first ten also need one approval each.
    await Promise.all(
      REQUESTERS.map(async (username, index) => {
        const wanted = index < APPROVERS.length ? [...SELF_SERVICE.slice(1), APPROVED] : SELF_SERVICE;
        for (const [step, entitlementId] of wanted.entries()) {
          const broker = (index + step) % 2;
          const approver = entitlementId === APPROVED ? person(APPROVERS[index]) : null;
          requestIds.push(await elevate(stack, broker, person(username), entitlementId, approver));
          perBroker[broker] += 1;
          if (requestIds.length === KILL_AFTER_ACTIVATIONS) killed.child.kill('SIGKILL');
        }
      }),
    );
    expect(requestIds).toHaveLength(200);
    expect(perBroker[0]).toBeGreaterThan(60);
    expect(perBroker[1]).toBeGreaterThan(60);
    expect((await exitOf(killed)).signal).toBe('SIGKILL');

    // A policy reload (SIGHUP to broker A) is in force at broker B too.
    await writeFile(
      path.join(stack.workDir, 'late.yaml'),
      `entitlements:\n${entitlementYaml(LATE, 'selfService: true')}\n`,
    );
    expect(await lists(stack, stack.brokers[1].url, person('user-01'), LATE)).toBe(false);
    stack.brokers[0].app.child.kill('SIGHUP');
    await waitFor(
      async () => ((await lists(stack, stack.brokers[1].url, person('user-01'), LATE)) ? true : undefined),
      10_000,
      'broker B to see the reloaded policy',
    );
    expect(await lists(stack, stack.brokers[0].url, person('user-01'), LATE)).toBe(true);

    const grants = await waitAllRevoked(stack, requestIds, 60_000);
    await expectRevokedOnce(
      stack,
      grants.map((grant) => grant.id),
      REVOCATION_CONCURRENCY,
    );
    const { rows: duplicated } = await stack.db.query(
      `SELECT action, subject_id, count(*)::int AS n FROM audit_events
        WHERE action LIKE 'grant.%' OR action LIKE 'request.%' GROUP BY 1, 2 HAVING count(*) > 1`,
    );
    expect(duplicated).toEqual([]);
    await expectChainHolds(stack);
  });

  it('drains a broker on SIGTERM during traffic (no 5xx) and loses no job of a worker stopped with SIGTERM', async () => {
    const stack = cluster!;
    await startWorker(stack, 'worker-3');
    const [brokerA, brokerB] = stack.brokers;
    const workerOne = stack.workers[0];
    const requesters = REQUESTERS.map(person);
    // A live-update stream on broker B, which must end when B drains.
    const stream = await fetch(`${brokerB.url}/api/events`, {
      headers: { cookie: requesters[0].cookie, origin: stack.origin },
    });
    expect(stream.status).toBe(200);
    const streamEnded = stream.text().then(
      () => 'ended',
      (error: unknown) => String(error),
    );

    // Requests through broker A go on while B is stopped: 20 more grants, due in 2 s.
    const filing = Promise.all(requesters.map((requester) => elevate(stack, 0, requester, LATE, null, 2)));
    const onB = traffic(stack, brokerB.url, requesters.slice(0, 8), filing);
    await delay(300);
    const stopped = exitOf(brokerB.app);
    const signalledAt = performance.now();
    brokerB.app.child.kill('SIGTERM');
    const requestIds = await filing;
    const outcomes = await onB;
    expect(await within(stopped, SHUTDOWN_GRACE_MS + 5_000, 'broker B to exit')).toEqual({
      code: 0,
      signal: null,
    });
    expect(await within(streamEnded, SHUTDOWN_GRACE_MS, 'the stream on B to end')).toBe('ended');
    expect(await readFile(brokerB.app.logFile, 'utf8')).toContain('Stopped: connections drained');
    // Refused or reset connections are fine (a proxy retries them elsewhere); an error answer is not.
    expect(outcomes.filter(({ result }) => typeof result === 'number' && result !== 200)).toEqual([]);
    // Requests in flight when the signal came were answered, not cut.
    const inFlight = outcomes.filter(
      ({ sentAt, answeredAt }) => sentAt < signalledAt && answeredAt > signalledAt,
    );
    expect(inFlight.filter(({ result }) => result === 200).length).toBeGreaterThan(0);
    expect((await call(stack, brokerA.url, requesters[0].cookie, '/api/requests')).status).toBe(200);

    // Worker 1 is stopped as the grants fall due; worker 3 revokes whatever it did not finish.
    await waitFor(
      async () =>
        (await grantsOf(stack, requestIds)).some((grant) => grant.state !== 'ACTIVE') ? true : undefined,
      15_000,
      'the first grant to fall due',
    );
    const workerStopped = exitOf(workerOne);
    workerOne.child.kill('SIGTERM');
    expect(await within(workerStopped, 20_000, 'worker 1 to exit')).toEqual({ code: 0, signal: null });
    expect(await readFile(workerOne.logFile, 'utf8')).toContain('Stopped: active jobs finished');
    const grants = await waitAllRevoked(stack, requestIds, 30_000);
    await expectRevokedOnce(
      stack,
      grants.map((grant) => grant.id),
      0,
    );
  });
});
