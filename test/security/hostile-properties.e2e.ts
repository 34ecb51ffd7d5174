// Issue 20, point 5: hostile input, property-based. Builds on test/e2e/hostile-input-sweep.e2e.ts (its fixed
// list of hostile values) with fast-check: every registered route (read from the Express router, so a new route
// is not silently skipped) gets generated bodies or queries — random JSON, huge strings up to ~1 MB (over the
// body limit: 413), NUL, lone surrogates, bidi controls, `__proto__`/`constructor`/`prototype` keys, wrong
// types and deep nesting in place of each field — and path ids of other people's objects; every WebAuthn field
// of the registration, sign-in and step-up `response` is replaced the same way. Properties: never a 5xx; every
// refusal is a JSON error envelope with a code; a refusal writes nothing (row counts of every table unchanged,
// audit events only of refusal actions); Object.prototype is not polluted (the broker runs in this process).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { AuditAction } from '../../libs/audit/audit-actions.js';
import { PUBLIC_ROUTES, SOME_UUID, templates } from '../support/hostile-templates.js';
import { registeredRoutes, type RegisteredRoute } from '../support/routes.js';
import {
  enroll,
  INTROSPECTION_CLIENT,
  inviteToken,
  startStack,
  type Person,
  type TestStack,
} from '../support/stack.js';

const SEED = Number(process.env.HOSTILE_SEED ?? 20_2605);
const RUNS_PER_ROUTE = 12;
const RUNS_PER_WEBAUTHN_FIELD = 5;
const BODY_LIMIT_BYTES = 256 * 1024;
/** Audit events a refusal may append: the refused ceremonies and lockouts. */
const REFUSAL_ACTIONS = new Set<string>([
  AuditAction.LoginFailed,
  AuditAction.EnrollFailed,
  AuditAction.RegisterFailed,
  AuditAction.StepUpFailed,
  AuditAction.StepUpLocked,
  AuditAction.IntrospectionLocked,
  AuditAction.InviteApprovalRefused,
]);
/** Challenges a failed ceremony spends: their row count may fall, never rise. */
const MAY_SHRINK = new Set(['webauthn_ceremonies', 'step_up_challenges']);
const POLLUTION_KEY = 'hostilePolluted';
const WEBAUTHN_FIELDS: string[][] = [
  ['id'],
  ['rawId'],
  ['type'],
  ['response', 'clientDataJSON'],
  ['response', 'attestationObject'],
  ['response', 'authenticatorData'],
  ['response', 'signature'],
  ['response', 'userHandle'],
  ['response', 'transports'],
  ['clientExtensionResults'],
  ['authenticatorAttachment'],
];

const hostileText = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.constantFrom(
    '\u0000',
    'a\u0000b',
    '\uD800',
    '\uDFFF',
    '\u202Eevil',
    '\u2066x\u2069',
    '\u0085',
    '\uFEFF',
  ),
  fc.constantFrom('__proto__', 'constructor', 'prototype'),
  fc.integer({ min: 1_000, max: 60_000 }).map((length) => 'x'.repeat(length)),
);
const protoKeyed = fc
  .tuple(fc.constantFrom('__proto__', 'constructor', 'prototype'), fc.jsonValue())
  .map(
    ([key, value]) =>
      `{"${key}":{"${POLLUTION_KEY}":1,"prototype":{"${POLLUTION_KEY}":1},"v":${JSON.stringify(value) ?? 'null'}}}`,
  );
const deep = fc
  .integer({ min: 20, max: 400 })
  .map((depth) => JSON.parse(`${'['.repeat(depth)}${']'.repeat(depth)}`));
/** A value in place of a known field: wrong types, hostile strings, pollution attempts, depth. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  hostileText,
  fc.jsonValue({ maxDepth: 4 }),
  fc.array(hostileText, { maxLength: 4 }),
  fc.double(),
  protoKeyed.map((text) => JSON.parse(text)),
  deep,
);

function withField(body: unknown, path: string[], value: unknown): unknown {
  if (path.length === 0) return value;
  const [head, ...rest] = path;
  const copy = typeof body === 'object' && body !== null ? { ...(body as Record<string, unknown>) } : {};
  // defineProperty: a field named `__proto__` stays an own key, as JSON.parse would make it.
  Object.defineProperty(copy, head, {
    value: withField(copy[head], rest, value),
    enumerable: true,
    writable: true,
  });
  return copy;
}

/** Paths of every field of a template, nested objects included. */
function fieldPaths(body: Record<string, unknown>, prefix: string[] = []): string[][] {
  return Object.entries(body).flatMap(([key, value]) => [
    [...prefix, key],
    ...(typeof value === 'object' && value !== null && !Array.isArray(value)
      ? fieldPaths(value as Record<string, unknown>, [...prefix, key])
      : []),
  ]);
}

/** A raw body for a route: random JSON, a pollution attempt, a huge string, or its template with a field replaced. */
function bodyArbitrary(template: Record<string, unknown>): fc.Arbitrary<string> {
  const paths = fieldPaths(template);
  const mutated = paths.length
    ? fc
        .tuple(fc.constantFrom(...paths), hostileValue)
        .map(([path, value]) => JSON.stringify(withField(template, path, value)))
    : fc.constant('{}');
  return fc.oneof(
    { weight: 4, arbitrary: mutated },
    { weight: 2, arbitrary: fc.json({ maxDepth: 3 }) },
    { weight: 1, arbitrary: protoKeyed },
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: 100_000, max: 1_000_000 })
        .map((n) => JSON.stringify({ ...template, x: 'y'.repeat(n) })),
    },
  );
}

/** Percent-encodes text; a lone surrogate goes out as its (invalid) UTF-8-style bytes, which encodeURIComponent refuses. */
const encode = (text: string) =>
  Array.from(text, (char) => (/[\uD800-\uDFFF]/.test(char) ? '%ED%A0%80' : encodeURIComponent(char))).join(
    '',
  );

const queryArbitrary = fc
  .array(
    fc.tuple(
      fc.constantFrom(
        'limit',
        'cursor',
        'state',
        'timeout',
        'actorId',
        'from',
        'to',
        '__proto__',
        'constructor[prototype]',
        'x[]',
      ),
      hostileText,
    ),
    { minLength: 1, maxLength: 3 },
  )
  .map((pairs) => `?${pairs.map(([key, value]) => `${key}=${encode(value.slice(0, 3000))}`).join('&')}`);

type Cast = Record<'alice' | 'bob' | 'admin' | 'auditor' | 'mallory' | 'leaver', Person>;

/** Sends hostile inputs and records every broken property; the checks of one input, in order. */
class Prober {
  readonly failures: string[] = [];
  readonly statuses: Record<number, number> = {};
  inputs = 0;
  fiveXx = 0;
  private readonly protoKeys = Object.getOwnPropertyNames(Object.prototype).sort().join();

  constructor(
    private readonly stack: TestStack,
    private readonly tables: string[],
  ) {}

  private async snapshot(): Promise<Record<string, number>> {
    const counts = this.tables.map((name) => `(SELECT count(*)::int FROM "${name}") AS "${name}"`).join(', ');
    const { rows } = await this.stack.db.query(
      `SELECT ${counts}, (SELECT seq::int FROM audit_chain_head) AS head`,
    );
    return rows[0] as Record<string, number>;
  }

  /** One input: status, body limit, prototype, envelope, and (for a refusal) what it wrote. */
  async send(label: string, method: string, url: string, caller: Person | null, raw?: string): Promise<void> {
    const before = await this.snapshot();
    const headers: Record<string, string> = { 'content-type': 'application/json', origin: this.stack.origin };
    if (caller) headers.cookie = caller.cookie;
    if (url.startsWith('/api/introspect'))
      headers.authorization = `Basic ${Buffer.from(`${INTROSPECTION_CLIENT.id}:${INTROSPECTION_CLIENT.secret}`).toString('base64')}`;
    const response = await fetch(`${this.stack.baseUrl}${url}`, { method, headers, body: raw });
    // A live-update stream never ends by itself: its status is the answer.
    const stream = response.headers.get('content-type')?.startsWith('text/event-stream');
    const text = stream ? (await response.body?.cancel(), '') : await response.text();
    const { status } = response;
    this.inputs++;
    this.statuses[status] = (this.statuses[status] ?? 0) + 1;
    const where = `${label} [${(raw ?? url).slice(0, 160)}]`;
    if (status >= 500) this.fiveXx++;
    if (status >= 500) this.failures.push(`${where}: ${status} ${text.slice(0, 200)}`);
    if (raw && Buffer.byteLength(raw) > BODY_LIMIT_BYTES && status !== 413)
      this.failures.push(`${where}: ${Buffer.byteLength(raw)} bytes answered ${status}, not 413`);
    if (Object.getOwnPropertyNames(Object.prototype).sort().join() !== this.protoKeys || POLLUTION_KEY in {})
      this.failures.push(`${where}: Object.prototype polluted`);
    if (status < 400) return;
    if (typeof errorCode(text) !== 'string')
      this.failures.push(`${where}: ${status} without an error code: ${text.slice(0, 120)}`);
    await this.checkWrites(where, before);
  }

  private async checkWrites(where: string, before: Record<string, number>): Promise<void> {
    const after = await this.snapshot();
    const changed = this.tables.filter(
      (t) => t !== 'audit_events' && (MAY_SHRINK.has(t) ? after[t] > before[t] : after[t] !== before[t]),
    );
    if (changed.length) this.failures.push(`${where}: refused but changed ${changed.join(', ')}`);
    if (after.head === before.head) return;
    const { rows } = await this.stack.db.query(
      'SELECT action FROM audit_events WHERE seq > $1 AND seq <= $2',
      [before.head, after.head],
    );
    const written = (rows as Array<{ action: string }>)
      .map((row) => row.action)
      .filter((a) => !REFUSAL_ACTIONS.has(a));
    if (written.length) this.failures.push(`${where}: refused but audited ${written.join(', ')}`);
  }
}

function errorCode(text: string): unknown {
  try {
    const code = JSON.parse(text)?.error?.code;
    return typeof code === 'string' && code ? code : undefined;
  } catch {
    return undefined;
  }
}

/** Who calls a route: the role that reaches it, else mallory (a plain user) acting on other people's ids. */
function callerFor(people: Cast, key: string, path: string): Person | null {
  if (PUBLIC_ROUTES.has(key)) return null;
  if (path.startsWith('/api/admin')) return people.admin;
  if (path.startsWith('/api/audit')) return people.auditor;
  if (key === 'POST /api/auth/logout') return people.leaver;
  return people.mallory;
}

/** Generated bodies (or queries) and path values, per route, RUNS_PER_ROUTE each. */
async function sweepRoutes(
  prober: Prober,
  people: Cast,
  routes: RegisteredRoute[],
  bodies: Record<string, Record<string, unknown>>,
  ids: string[],
): Promise<void> {
  const pathValue = fc.oneof(
    fc.constantFrom(...ids, 'alice', 'leaver', 'api-admin-token'),
    hostileText.map((t) => t.slice(0, 2000)),
  );
  // Cancel and revoke end the request the others act on: last. Logout ends its caller's session: last of all.
  const last = (r: RegisteredRoute) =>
    Number(/\/(cancel|revoke)$/.test(r.path)) + 2 * Number(r.path.endsWith('/logout'));
  for (const route of [...routes].sort((a, b) => last(a) - last(b))) {
    const key = `${route.method} ${route.path}`;
    const caller = callerFor(people, key, route.path);
    const params = fc.tuple(...(route.path.match(/:\w+/g) ?? []).map(() => pathValue));
    const input =
      route.method === 'GET'
        ? fc.tuple(params, queryArbitrary)
        : fc.tuple(params, bodyArbitrary(bodies[key]));
    await fc.assert(
      fc.asyncProperty(input, async ([values, extra]) => {
        let index = 0;
        const url = route.path.replace(/:\w+/g, () => encode(values[index++]));
        if (route.method === 'GET') await prober.send(key, 'GET', `${url}${extra}`, caller);
        else await prober.send(key, route.method, url, caller, extra);
      }),
      { seed: SEED, numRuns: RUNS_PER_ROUTE },
    );
  }
}

/** Every WebAuthn field of each ceremony's `response`, in place: registration, sign-in, and step-ups. */
async function sweepWebAuthn(
  prober: Prober,
  people: Cast,
  bodies: Record<string, Record<string, unknown>>,
  requestId: string,
): Promise<number> {
  const ceremonies: Array<[string, string, Person | null, string[]]> = [
    ['POST /api/auth/enroll/verify', '/api/auth/enroll/verify', null, ['response']],
    ['POST /api/auth/login/verify', '/api/auth/login/verify', null, ['response']],
    ['POST /api/me/authenticators/verify', '/api/me/authenticators/verify', people.mallory, ['response']],
    [
      'POST /api/requests/:id/approve',
      `/api/requests/${requestId}/approve`,
      people.bob,
      ['stepUp', 'response'],
    ],
    ['POST /api/admin/invites', '/api/admin/invites', people.admin, ['stepUp', 'response']],
  ];
  for (const [key, url, caller, prefix] of ceremonies) {
    for (const field of WEBAUTHN_FIELDS) {
      const path = [...prefix, ...field];
      await fc.assert(
        fc.asyncProperty(hostileValue, async (value) => {
          const raw = JSON.stringify(withField(bodies[key], path, value));
          await prober.send(`${key} ${path.join('.')}`, 'POST', url, caller, raw);
        }),
        { seed: SEED, numRuns: RUNS_PER_WEBAUTHN_FIELD },
      );
    }
  }
  return ceremonies.length;
}

/** The cast, alice's pending request, and other people's ids: her request, bob's passkey, her user id, none. */
async function setUp(stack: TestStack): Promise<{ people: Cast; ids: string[] }> {
  const people: Cast = {
    alice: await enroll(stack, 'alice'),
    bob: await enroll(stack, 'bob'),
    admin: await enroll(stack, 'admin', { roles: ['admin'] }),
    auditor: await enroll(stack, 'auditor', { roles: ['auditor'] }),
    mallory: await enroll(stack, 'mallory'),
    leaver: await enroll(stack, 'leaver'),
  };
  const created = await people.alice.post('/api/requests', {
    entitlementId: 'api-admin-token',
    durationSeconds: 600,
    justification: 'hostile properties',
  });
  expect(created.status).toBe(201);
  const bobKey = (await people.bob.get('/api/me/authenticators')).body.items[0].id as string;
  return { people, ids: [created.body.id, bobKey, people.alice.userId, SOME_UUID] };
}

describe('hostile properties: never 5xx, always an envelope, a refusal writes nothing, no pollution', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startStack({ worker: false, env: { STEP_UP_MAX_FAILURES: '100000' } });
  }, 90_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  it('holds for every route and every WebAuthn field', async () => {
    const { people, ids } = await setUp(stack);
    const { rows } = await stack.db.query(
      `SELECT table_name AS name FROM information_schema.tables
        WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name`,
    );
    const tables = (rows as Array<{ name: string }>).map((row) => row.name);
    expect(tables).toEqual(expect.arrayContaining(['audit_events', 'audit_chain_head', 'users', 'grants']));
    const routes = registeredRoutes(stack);
    expect(routes.length).toBeGreaterThanOrEqual(30);
    const bodies = templates(await inviteToken(stack, 'newcomer'));
    // A new POST route needs a plausible body in test/support/hostile-templates.ts, so that its fields are fuzzed.
    const missing = routes.filter((r) => r.method !== 'GET' && !bodies[`${r.method} ${r.path}`]);
    expect(missing.map((r) => `${r.method} ${r.path}`)).toEqual([]);

    const prober = new Prober(stack, tables);
    await sweepRoutes(prober, people, routes, bodies, ids);
    await sweepWebAuthn(prober, people, bodies, ids[0]);

    const { inputs, statuses } = prober;
    console.log(`hostile-properties: seed ${SEED} (HOSTILE_SEED), answers ${JSON.stringify(statuses)}`);
    console.log(
      `hostile-properties: ${inputs} inputs over ${routes.length} routes, 5xx seen = ${prober.fiveXx}`,
    );
    expect(prober.failures).toEqual([]);
    expect(inputs).toBeGreaterThan(routes.length * RUNS_PER_ROUTE);
    // The generators reach the body limit and the validation layer, not only the guards.
    expect(statuses[413]).toBeGreaterThan(0);
    expect(statuses[400]).toBeGreaterThan(inputs / 4);
  }, 150_000);
});
