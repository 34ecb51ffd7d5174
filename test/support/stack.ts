import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { INestApplicationContext } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import pg from 'pg';
import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import { DataSource } from 'typeorm';
import { createBroker } from '../../apps/broker/bootstrap.js';
import { createWorker } from '../../apps/worker/bootstrap.js';
import { loadConfig, type AppConfig } from '../../libs/config/config.js';
import { createBrokerDatabase, dropLoginRoles } from '../../libs/devstack/database-roles.js';
import { databaseUrl, dropDatabase } from '../../libs/devstack/databases.js';
import { freePort } from '../../libs/devstack/free-port.js';
import { migrateAsOwner } from '../../libs/db/data-source.js';
import type { UserRole } from '../../libs/db/index.js';
import { createInvite } from '../../libs/identity/invites.js';
import {
  SoftAuthenticator,
  type CeremonyOverrides,
  type SoftAuthenticatorOptions,
} from './soft-authenticator.js';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const INTROSPECTION_CLIENT = { id: 'resource-server', secret: randomBytes(24).toString('base64url') };

/** A broker and a worker on a fresh database and queue prefix, against the e2e PostgreSQL and Redis. */
export interface TestStack {
  baseUrl: string;
  /** The browser origin the broker expects (`http://localhost:PORT`); requests still go to 127.0.0.1. */
  origin: string;
  /** People enrolled through enroll(), by username. */
  people: Map<string, Person>;
  config: AppConfig;
  /**
   * A separate pool for assertions made behind the broker's back, as the superuser (it may break what the
   * broker cannot); the broker and worker connect as the runtime role (config.databaseUrl).
   */
  db: pg.Pool;
  /**
   * The owner role's URL, for tests that act as the owner. The broker and worker never get it (unless a test
   * opts in with startStack({ migrateAtBoot: true })): the stack migrates before booting them, as `npm start` does.
   */
  ownerUrl: string;
  broker: NestExpressApplication;
  worker: INestApplicationContext | null;
  close(): Promise<void>;
}

function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value)
    throw new Error(`${name} is not set: run the e2e tier through jest (its globalSetup provides it)`);
  return value;
}

/** Boots the stack; always pair with `close()` in afterAll. */
export async function startStack(
  options: {
    policyDir?: string;
    env?: Record<string, string>;
    worker?: boolean;
    /** Hand the broker and worker MIGRATION_DATABASE_URL so that they migrate at boot, instead of migrating first. */
    migrateAtBoot?: boolean;
  } = {},
) {
  const adminUrl = requiredEnv('E2E_PG_ADMIN_URL');
  const suffix = randomBytes(6).toString('hex');
  const databaseName = `e2e_${suffix}`;
  // Least privilege as in production: the owner role migrates, the runtime role cannot rewrite audit_events.
  const roles = { owner: `${databaseName}_owner`, runtime: `${databaseName}_runtime` };
  const port = await freePort();
  // Popped last to first: the database goes before the roles it refers to.
  const closers: Array<() => Promise<unknown>> = [
    () => dropLoginRoles(adminUrl, [roles.runtime, roles.owner]),
    () => dropDatabase(adminUrl, databaseName),
  ];
  const close = async () => {
    for (let closer = closers.pop(); closer; closer = closers.pop()) await closer().catch(console.error);
  };
  try {
    const { ownerUrl, runtimeUrl } = await createBrokerDatabase(adminUrl, databaseName, roles);
    if (!options.migrateAtBoot) await migrateAsOwner(ownerUrl, roles.runtime);
    const config = loadConfig({
      NODE_ENV: 'test',
      DATABASE_URL: runtimeUrl,
      ...(options.migrateAtBoot ? { MIGRATION_DATABASE_URL: ownerUrl } : {}),
      REDIS_URL: requiredEnv('E2E_REDIS_URL'),
      PORT: String(port),
      POLICY_DIR: options.policyDir ?? path.join(PROJECT_ROOT, 'policies'),
      BROKER_MASTER_KEY: randomBytes(32).toString('base64'),
      QUEUE_PREFIX: `e2e-${suffix}`,
      PUBLIC_URL: `http://localhost:${port}`,
      // Suites share one client address and file many requests: the anti-fatigue and per-IP limits are
      // relaxed here and tested with their real values in suites that set them (startStack({ env })).
      MAX_OPEN_REQUESTS_PER_ENTITLEMENT: '1000',
      MAX_OPEN_REQUESTS: '1000',
      REQUEST_RATE_LIMIT: '1000',
      DENIAL_LOCKOUT_COUNT: '1000',
      DENIAL_COOLDOWN_SECONDS: '1',
      IP_RATE_LIMIT: '100000',
      // Checkpoints append audit events on a timer, which would race the suites' "writes nothing" row
      // counts; the audit suite turns them on.
      CHECKPOINT_INTERVAL_SECONDS: '0',
      INTROSPECTION_CLIENTS: `${INTROSPECTION_CLIENT.id}:${INTROSPECTION_CLIENT.secret}`,
      LOG_LEVEL: 'warn',
      ...options.env,
    });
    const db = new pg.Pool({ connectionString: databaseUrl(adminUrl, databaseName), max: 4 });
    // An idle client whose backend ends (57P01) is dropped by the pool; without a listener its error would
    // crash the suite (pg's documented advice: always listen). A query on a live client still rejects.
    db.on('error', (error) =>
      console.warn(`test pool for ${databaseName}: idle client lost: ${error.message}`),
    );
    closers.push(() => db.end());
    const broker = await createBroker(config);
    closers.push(() => broker.close());
    await broker.listen(port, '127.0.0.1');
    let worker: INestApplicationContext | null = null;
    if (options.worker !== false) {
      worker = await createWorker(config);
      closers.push(() => worker!.close());
    }
    const stack: TestStack = {
      baseUrl: `http://127.0.0.1:${port}`,
      origin: `http://localhost:${port}`,
      people: new Map(),
      config,
      db,
      ownerUrl,
      broker,
      worker,
      close,
    };
    return stack;
  } catch (error) {
    await close();
    throw error;
  }
}

export interface ApiResponse<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Headers;
}

/** The `stepUp` field of a protected call's body. */
export interface StepUpBody {
  challengeId: string;
  response: AuthenticationResponseJSON;
}

/** A JSON client: with a session cookie it acts as that person; every call carries the expected Origin. */
export function httpClient(stack: TestStack, cookie: string | null, origin: string | null = stack.origin) {
  const call = async (
    method: string,
    route: string,
    body?: unknown,
    raw?: string,
  ): Promise<ApiResponse<any>> => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (cookie) headers.cookie = cookie;
    if (origin) headers.origin = origin;
    const response = await fetch(`${stack.baseUrl}${route}`, {
      method,
      headers,
      body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
    });
    const text = await response.text();
    let parsed: unknown = null;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    return { status: response.status, body: parsed, headers: response.headers };
  };
  return {
    get: (route: string) => call('GET', route),
    post: (route: string, body: unknown = {}) => call('POST', route, body),
    postRaw: (route: string, raw: string) => call('POST', route, undefined, raw),
    call,
  };
}

/** An enrolled person: a software passkey, a session cookie, and helpers for step-up-protected calls. */
export interface Person extends ReturnType<typeof httpClient> {
  username: string;
  userId: string;
  authenticator: SoftAuthenticator;
  cookie: string;
  /** Asks for a step-up challenge and answers it with this person's passkey. */
  stepUp(
    action: string,
    subjectId: string,
    params?: Record<string, unknown>,
    overrides?: CeremonyOverrides,
  ): Promise<StepUpBody>;
  /** POST `/api/requests/:id/<action>` with a fresh step-up for that action and request. */
  decide(
    requestId: string,
    action: 'approve' | 'deny' | 'activate',
    body?: Record<string, unknown>,
  ): Promise<ApiResponse<any>>;
}

/** The session cookie (`name=value`) from a Set-Cookie answer. */
export function sessionCookieFrom(headers: Headers): string {
  const setCookie = headers.getSetCookie().find((cookie) => /^(__Host-)?jit_session=/.test(cookie));
  if (!setCookie) throw new Error('the response set no session cookie');
  return setCookie.split(';')[0];
}

/** Creates a one-time invite directly in the database, as the CLI does. */
export async function inviteToken(
  stack: TestStack,
  username: string,
  roles: UserRole[] = [],
): Promise<string> {
  const dataSource = stack.broker.get(DataSource);
  const invite = await dataSource.transaction((manager) =>
    createInvite(
      manager,
      { publicUrl: stack.config.http.publicUrl, ttlSeconds: stack.config.inviteTtlSeconds },
      'test-harness',
      { username, roles },
    ),
  );
  return invite.token;
}

/**
 * Enrollment options + verify for an invite token with `authenticator`, as the enrollment page does: the
 * verify answer, or the options answer when that one is refused.
 */
export async function enrollWith(
  stack: TestStack,
  token: string,
  authenticator: SoftAuthenticator,
): Promise<ApiResponse<any>> {
  const anonymous = httpClient(stack, null);
  const creation = await anonymous.post('/api/auth/enroll/options', { invite: token });
  if (creation.status !== 200) return creation;
  return anonymous.post('/api/auth/enroll/verify', {
    invite: token,
    response: authenticator.register(creation.body),
  });
}

/** Enrolls `username` through the real invite + WebAuthn registration flow and signs them in. */
export async function enroll(
  stack: TestStack,
  username: string,
  options: { roles?: UserRole[]; authenticator?: Partial<SoftAuthenticatorOptions> } = {},
): Promise<Person> {
  const authenticator = new SoftAuthenticator({ origin: stack.origin, ...options.authenticator });
  const token = await inviteToken(stack, username, options.roles ?? []);
  const anonymous = httpClient(stack, null);
  const creation = await anonymous.post('/api/auth/enroll/options', { invite: token });
  if (creation.status !== 200)
    throw new Error(`enroll/options ${creation.status}: ${JSON.stringify(creation.body)}`);
  const verified = await anonymous.post('/api/auth/enroll/verify', {
    invite: token,
    response: authenticator.register(creation.body),
  });
  if (verified.status !== 200)
    throw new Error(`enroll/verify ${verified.status}: ${JSON.stringify(verified.body)}`);
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

/** Enrolls several people (admins and auditors by role), each with their own passkey. */
export async function enrollAll(
  stack: TestStack,
  usernames: string[],
  roles: Partial<Record<string, UserRole[]>> = {},
): Promise<Person[]> {
  const people: Person[] = [];
  for (const username of usernames)
    people.push(await enroll(stack, username, { roles: roles[username] ?? [] }));
  return people;
}

/** Builds a Person around an existing session cookie. */
export function personFor(
  stack: TestStack,
  username: string,
  userId: string,
  authenticator: SoftAuthenticator,
  cookie: string,
): Person {
  const client = httpClient(stack, cookie);
  const stepUp: Person['stepUp'] = async (action, subjectId, params, overrides) => {
    const issued = await client.post('/api/step-up/challenge', {
      action,
      subjectId,
      ...(params === undefined ? {} : { params }),
    });
    if (issued.status !== 200) {
      throw new Error(`step-up/challenge ${issued.status}: ${JSON.stringify(issued.body)}`);
    }
    return {
      challengeId: issued.body.challengeId,
      response: authenticator.authenticate(issued.body.options, overrides),
    };
  };
  return {
    ...client,
    username,
    userId,
    authenticator,
    cookie,
    stepUp,
    decide: async (requestId, action, body = {}) =>
      client.post(`/api/requests/${requestId}/${action}`, {
        ...body,
        stepUp: await stepUp(action, requestId),
      }),
  };
}

/** The client of an enrolled person, or an anonymous one for `null`. */
export function clientAs(stack: TestStack, username: string): Person;
export function clientAs(stack: TestStack, username: null): ReturnType<typeof httpClient>;
export function clientAs(stack: TestStack, username: string | null): Person | ReturnType<typeof httpClient>;
export function clientAs(stack: TestStack, username: string | null) {
  if (username === null) return httpClient(stack, null);
  const person = stack.people.get(username);
  if (!person) throw new Error(`${username} is not enrolled: call enroll(stack, '${username}') first`);
  return person;
}

/** Polls `probe` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
