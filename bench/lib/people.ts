import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import { createDataSource } from '../../libs/db/data-source.js';
import type { UserRole } from '../../libs/db/index.js';
import { createInvite } from '../../libs/identity/invites.js';
import { SoftAuthenticator } from '../../test/support/soft-authenticator.js';
import type { BenchStack } from './stack.js';

/** A parsed JSON body: a benchmark reads the fields it needs. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

/** A JSON answer. */
export interface ApiResponse {
  status: number;
  body: Json;
  headers: Headers;
}

/** The `stepUp` member of a protected call's body. */
export interface StepUp {
  challengeId: string;
  response: AuthenticationResponseJSON;
}

/** An enrolled person: a software passkey (genuine ES256 WebAuthn assertions) and a session cookie. */
export interface Person {
  username: string;
  userId: string;
  cookie: string;
  authenticator: SoftAuthenticator;
  get(route: string): Promise<ApiResponse>;
  post(route: string, body?: unknown): Promise<ApiResponse>;
  /** A step-up challenge for `action` on `subjectId`, answered with this person's passkey. */
  stepUp(action: string, subjectId: string, params?: Record<string, unknown>): Promise<StepUp>;
  /** POST /api/requests/:id/<action> with a fresh step-up for it. */
  decide(requestId: string, action: 'approve' | 'deny' | 'activate', body?: object): Promise<ApiResponse>;
}

/** A JSON call to the broker, with the expected Origin and, given one, a session cookie. */
export async function call(
  stack: Pick<BenchStack, 'baseUrl' | 'origin'>,
  cookie: string | null,
  method: string,
  route: string,
  body?: unknown,
): Promise<ApiResponse> {
  const headers: Record<string, string> = { 'content-type': 'application/json', origin: stack.origin };
  if (cookie) headers.cookie = cookie;
  const response = await fetch(`${stack.baseUrl}${route}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null, headers: response.headers };
}

/** Like call(), but throws unless the answer is 2xx; returns the body. */
export async function expectOk(answer: Promise<ApiResponse>, what: string): Promise<Json> {
  const { status, body } = await answer;
  if (status < 200 || status >= 300) throw new Error(`${what}: ${status} ${JSON.stringify(body)}`);
  return body;
}

/** One-time invites made directly in the database as the CLI does (runtime role), one per username. */
async function invites(stack: BenchStack, people: Array<{ username: string; roles: UserRole[] }>) {
  const dataSource = createDataSource(stack.env.DATABASE_URL!, { poolSize: 1, applicationName: 'jit-bench' });
  await dataSource.initialize();
  try {
    const tokens: string[] = [];
    for (const person of people) {
      const invite = await dataSource.transaction((manager) =>
        createInvite(manager, { publicUrl: stack.origin, ttlSeconds: 3600 }, 'bench', person),
      );
      tokens.push(invite.token);
    }
    return tokens;
  } finally {
    await dataSource.destroy();
  }
}

/** Enrolls each username (invite + genuine WebAuthn registration) and returns them signed in, in order. */
export async function enrollAll(
  stack: BenchStack,
  usernames: string[],
  roles: Partial<Record<string, UserRole[]>> = {},
): Promise<Person[]> {
  const tokens = await invites(
    stack,
    usernames.map((username) => ({ username, roles: roles[username] ?? [] })),
  );
  return Promise.all(usernames.map((username, index) => enrollWith(stack, username, tokens[index])));
}

async function enrollWith(stack: BenchStack, username: string, invite: string): Promise<Person> {
  const authenticator = new SoftAuthenticator({ origin: stack.origin });
  const options = await expectOk(
    call(stack, null, 'POST', '/api/auth/enroll/options', { invite }),
    'enroll/options',
  );
  const verified = await call(stack, null, 'POST', '/api/auth/enroll/verify', {
    invite,
    response: authenticator.register(options),
  });
  if (verified.status !== 200)
    throw new Error(`enroll/verify ${verified.status}: ${JSON.stringify(verified.body)}`);
  const setCookie = verified.headers.getSetCookie().find((cookie) => /^(__Host-)?jit_session=/.test(cookie));
  if (!setCookie) throw new Error('enroll/verify set no session cookie');
  return personFor(stack, username, verified.body.user.id as string, authenticator, setCookie.split(';')[0]);
}

function personFor(
  stack: BenchStack,
  username: string,
  userId: string,
  authenticator: SoftAuthenticator,
  cookie: string,
): Person {
  const stepUp: Person['stepUp'] = async (action, subjectId, params) => {
    const issued = await expectOk(
      call(stack, cookie, 'POST', '/api/step-up/challenge', {
        action,
        subjectId,
        ...(params ? { params } : {}),
      }),
      'step-up/challenge',
    );
    return { challengeId: issued.challengeId, response: authenticator.authenticate(issued.options) };
  };
  return {
    username,
    userId,
    cookie,
    authenticator,
    get: (route) => call(stack, cookie, 'GET', route),
    post: (route, body = {}) => call(stack, cookie, 'POST', route, body),
    stepUp,
    decide: async (requestId, action, body = {}) =>
      call(stack, cookie, 'POST', `/api/requests/${requestId}/${action}`, {
        ...body,
        stepUp: await stepUp(action, requestId),
      }),
  };
}
