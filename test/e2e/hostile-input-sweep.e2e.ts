// Issue 12, acceptance: the review's sweep. Every registered route (read from the Express router, so a new
// route is swept without anyone editing this file) gets a bounded set of hostile inputs as the role that
// reaches it: wrong types for each known field, huge strings, NUL, lone surrogates and bidi controls, deep
// JSON, unknown keys, oversized bodies, hostile path and query values, and mutated WebAuthn responses.
// No answer may be 5xx, and a refused input may write nothing but its audit event (a failed ceremony also
// spends its challenge).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { PUBLIC_ROUTES, SOME_UUID, templates, toBase64Url } from '../support/hostile-templates.js';
import { registeredRoutes } from '../support/routes.js';
import type { CeremonyOverrides } from '../support/soft-authenticator.js';
import { SoftAuthenticator } from '../support/soft-authenticator.js';
import {
  enroll,
  INTROSPECTION_CLIENT,
  inviteToken,
  startStack,
  type Person,
  type TestStack,
} from '../support/stack.js';

/** Tables a refused input may change: the audit trail, and the challenges a failed ceremony spends. */
const MAY_CHANGE = new Set(['audit_events', 'audit_chain_head', 'webauthn_ceremonies', 'step_up_challenges']);

/** Routes whose nested objects (stepUp, response, filters) are swept field by field; elsewhere only as a whole. */
const DEEP_ROUTES = new Set([
  'POST /api/auth/enroll/verify',
  'POST /api/auth/login/verify',
  'POST /api/me/authenticators/verify',
  'POST /api/requests/:id/approve',
  'POST /api/audit/export',
  'POST /api/step-up/challenge',
]);

function deepJson(levels: number): unknown {
  let value: unknown = 'bottom';
  for (let level = 0; level < levels; level++) value = level % 2 ? [value] : { a: value };
  return value;
}

/** Values put in place of each known field. */
const HOSTILE_VALUES: Array<[string, unknown]> = [
  ['number', 1],
  ['boolean', true],
  ['null', null],
  ['array', []],
  ['object', {}],
  ['100 KB string', 'x'.repeat(100_000)],
  ['NUL', 'a\u0000b'],
  ['lone surrogate', '\uD800'],
  ['bidi and C1 controls', '\u202Eabc\u0085'],
  ['deep JSON', deepJson(28)],
];

/** Whole bodies sent raw to every POST route. */
const HOSTILE_RAW_BODIES: Array<[string, string]> = [
  ['array body', '[]'],
  ['string body', '"x"'],
  ['number body', '1'],
  ['null body', 'null'],
  ['malformed JSON', '{"a":'],
  ['deep JSON', `${'{"a":'.repeat(40)}1${'}'.repeat(40)}`],
  ['deeper JSON', `{"a":${'['.repeat(100_000)}${']'.repeat(100_000)}}`],
  ['__proto__', '{"__proto__":{"polluted":1}}'],
  ['constructor.prototype', '{"constructor":{"prototype":{"polluted":1}}}'],
  ['unknown key', '{"unexpected":1}'],
  ['unknown key with 100 KB', JSON.stringify({ unexpected: 'x'.repeat(100_000) })],
  ['NUL key', '{"\\u0000":1}'],
  ['lone surrogate key', '{"\\ud800":1}'],
  ['over the size limit', JSON.stringify({ unexpected: 'x'.repeat(300_000) })],
];

/** Values put in place of each path parameter (already percent-encoded). */
const HOSTILE_PATH_VALUES = [
  '%00',
  '%ED%A0%80',
  '%E2%80%AE',
  '%C2%85',
  '%FF',
  'x'.repeat(2000),
  '..%2F..',
  '%25',
];

/** Query strings tried on every GET route. */
const HOSTILE_QUERIES = [
  '?limit=abc',
  '?limit=-1',
  '?limit[]=1&limit[]=2',
  '?limit[a]=1',
  '?cursor=%00',
  '?state=%ED%A0%80',
  '?actorId=%E2%80%AEx',
  `?from=${'x'.repeat(4000)}`,
  '?unexpected=1',
];

/** Paths of every field of `body`, nested objects included when `deep`. */
function fieldPaths(body: Record<string, unknown>, deep: boolean, prefix: string[] = []): string[][] {
  return Object.entries(body).flatMap(([key, value]) => {
    const path = [...prefix, key];
    const nested =
      deep && typeof value === 'object' && value !== null && !Array.isArray(value)
        ? fieldPaths(value as Record<string, unknown>, deep, path)
        : [];
    return [path, ...nested];
  });
}

function withField(body: unknown, path: string[], value: unknown): unknown {
  if (path.length === 0) return value;
  const [head, ...rest] = path;
  const copy = { ...(body as Record<string, unknown>) };
  copy[head] = withField(copy[head], rest, value);
  return copy;
}

/** Ways to spoil a genuine WebAuthn response; each leaves its JSON shape intact where the edge checks shape. */
const WEBAUTHN_MUTATIONS: Array<[string, (response: any) => unknown]> = [
  ['NUL in id', (r) => ({ ...r, id: '\u0000' })],
  ['lone surrogate in id', (r) => ({ ...r, id: '\uD800' })],
  ['NUL in rawId', (r) => ({ ...r, rawId: 'AA\u0000' })],
  ['lone surrogate in rawId', (r) => ({ ...r, rawId: '\uDC00' })],
  ['NUL in type', (r) => ({ ...r, type: 'public-key\u0000' })],
  ['lone surrogate in type', (r) => ({ ...r, type: '\uD800' })],
  ['NUL in clientExtensionResults', (r) => ({ ...r, clientExtensionResults: { credProps: '\u0000' } })],
  [
    'NUL key in clientExtensionResults',
    (r) => ({ ...r, clientExtensionResults: { '\u0000': { rk: true } } }),
  ],
  ['lone surrogate in clientExtensionResults', (r) => ({ ...r, clientExtensionResults: { x: ['\uD800'] } })],
  ['NUL in authenticatorAttachment', (r) => ({ ...r, authenticatorAttachment: '\u0000' })],
  ['NUL in authenticatorData', (r) => ({ ...r, response: { ...r.response, authenticatorData: 'AA\u0000' } })],
  ['garbage authenticatorData', (r) => ({ ...r, response: { ...r.response, authenticatorData: 'AAAA' } })],
  ['NUL in clientDataJSON', (r) => ({ ...r, response: { ...r.response, clientDataJSON: '\u0000' } })],
  [
    'clientDataJSON not UTF-8',
    (r) => ({
      ...r,
      response: { ...r.response, clientDataJSON: toBase64Url(Uint8Array.of(0xff, 0xfe, 0x7b)) },
    }),
  ],
  ...(['topOrigin', 'type', 'origin', 'challenge'] as const).flatMap(
    (member): Array<[string, (response: any) => unknown]> =>
      [
        ['NUL', '\u0000'],
        ['lone surrogate', '\uD800'],
      ].map(([what, text]) => [
        `${what} in clientDataJSON.${member} (unsigned)`,
        (r) => {
          const clientData = JSON.parse(Buffer.from(r.response.clientDataJSON, 'base64url').toString('utf8'));
          clientData[member] = `x${text}`;
          return {
            ...r,
            response: { ...r.response, clientDataJSON: toBase64Url(JSON.stringify(clientData)) },
          };
        },
      ]),
  ),
];

/** Genuinely signed hostile client data: the authenticator signs what it is told (issue 12, finding 1). */
const SIGNED_OVERRIDES: Array<[string, CeremonyOverrides]> = [
  ['signed NUL in topOrigin', { clientDataFields: { topOrigin: 'https://evil\u0000' } }],
  ['signed lone surrogate in topOrigin', { clientDataFields: { topOrigin: '\uD800' } }],
  ['signed NUL in tokenBinding.status', { clientDataFields: { tokenBinding: { status: '\u0000' } } }],
  [
    'signed lone surrogate in tokenBinding.status',
    { clientDataFields: { tokenBinding: { status: '\uDBFF' } } },
  ],
  ['signed NUL in type', { type: 'webauthn.get\u0000' }],
  ['signed NUL in origin', { origin: 'http://localhost\u0000' }],
];
const REGISTRATION_OVERRIDES: Array<[string, CeremonyOverrides]> = [
  ...SIGNED_OVERRIDES.map(([what, overrides]): [string, CeremonyOverrides] => [
    what.replace('webauthn.get', 'webauthn.create'),
    overrides.type ? { type: 'webauthn.create\u0000' } : overrides,
  ]),
  ['NUL in attestation fmt', { attestationFormat: 'none\u0000' }],
  ['lone surrogate in attestation fmt', { attestationFormat: '\uD800' }],
];

describe('hostile-input sweep: no 5xx, and a refused input writes nothing but its audit event', () => {
  let stack: TestStack;
  let alice: Person;
  let bob: Person;
  let admin: Person;
  let auditor: Person;
  let pendingId: string;
  let invite: string;
  let checksumSql: string;

  beforeAll(async () => {
    stack = await startStack({
      worker: false,
      // Failed step-ups are counted per user; a lock would write users.step_up_locked_until mid-sweep.
      env: { STEP_UP_MAX_FAILURES: '100000' },
    });
    alice = await enroll(stack, 'alice');
    bob = await enroll(stack, 'bob');
    admin = await enroll(stack, 'admin', { roles: ['admin'] });
    auditor = await enroll(stack, 'auditor', { roles: ['auditor'] });
    const created = await alice.post('/api/requests', {
      entitlementId: 'api-admin-token',
      durationSeconds: 600,
      justification: 'sweep',
    });
    expect(created.status).toBe(201);
    pendingId = created.body.id;
    invite = await inviteToken(stack, 'newcomer');

    // One checksum per table (every table but MAY_CHANGE, so a table added later is covered); a session's
    // last_seen_at moves with every authenticated call.
    const { rows } = await stack.db.query(
      `SELECT table_name AS name FROM information_schema.tables
        WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name`,
    );
    const tables = (rows as Array<{ name: string }>)
      .map((row) => row.name)
      .filter((name) => !MAY_CHANGE.has(name));
    expect(tables).toEqual(expect.arrayContaining(['elevation_requests', 'approvals', 'grants', 'users']));
    checksumSql = `SELECT ${tables
      .map(
        (name) =>
          `(SELECT md5(coalesce(string_agg((to_jsonb(t) - 'last_seen_at')::text, '|' ORDER BY (to_jsonb(t) - 'last_seen_at')::text), '')) FROM "${name}" t) AS "${name}"`,
      )
      .join(', ')}`;
  }, 90_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  async function checksums(): Promise<Record<string, string>> {
    const { rows } = await stack.db.query(checksumSql);
    return rows[0] as Record<string, string>;
  }

  it('sweeps every route', async () => {
    const routes = registeredRoutes(stack);
    expect(routes.length).toBeGreaterThanOrEqual(30);
    const bodies = templates(invite);
    const missing = routes
      .filter((route) => route.method !== 'GET' && !bodies[`${route.method} ${route.path}`])
      .map((route) => `${route.method} ${route.path}`);
    // A new POST route needs a plausible body here, so that its fields are swept too.
    expect(missing).toEqual([]);

    const authenticatorId = (await alice.get('/api/me/authenticators')).body.items[0].id as string;
    const callerFor = (key: string, path: string): Person | null => {
      if (PUBLIC_ROUTES.has(key)) return null;
      if (path.startsWith('/api/admin')) return admin;
      if (path.startsWith('/api/audit')) return auditor;
      if (/\/(approve|deny|revoke|review)$|^\/api\/(approvals|reviews)/.test(path)) return bob;
      return alice;
    };
    const fill = (path: string, override?: [string, string]) =>
      path.replace(/:(\w+)/g, (_match, name: string) => {
        if (override && override[0] === name) return override[1];
        if (/user(name)?$/i.test(name)) return 'alice';
        if (name === 'entitlementId') return 'api-admin-token';
        if (path.startsWith('/api/me/authenticators')) return authenticatorId;
        if (path.startsWith('/api/requests') || path.startsWith('/api/audit/requests')) return pendingId;
        return SOME_UUID;
      });

    const failures: string[] = [];
    /** Hostile-looking inputs a route accepted (2xx): legitimate, but worth a look when this list grows. */
    const accepted: string[] = [];
    let calls = 0;
    let baseline: Record<string, string> | null = null;

    /** Sends one hostile input and checks the answer and, for a refusal, what it wrote. */
    const send = async (
      label: string,
      method: string,
      url: string,
      caller: Person | null,
      raw?: string,
      mustRefuse = false,
    ) => {
      const before = baseline ?? (await checksums());
      const headers: Record<string, string> = { 'content-type': 'application/json', origin: stack.origin };
      if (caller) headers.cookie = caller.cookie;
      if (url.startsWith('/api/introspect')) {
        headers.authorization = `Basic ${Buffer.from(`${INTROSPECTION_CLIENT.id}:${INTROSPECTION_CLIENT.secret}`).toString('base64')}`;
      }
      let status: number;
      let text: string;
      try {
        const response = await fetch(`${stack.baseUrl}${url}`, { method, headers, body: raw });
        status = response.status;
        // A live-update stream (GET /api/events) never ends by itself: its status is the answer.
        if (response.headers.get('content-type')?.startsWith('text/event-stream')) {
          await response.body?.cancel();
          text = '';
        } else text = await response.text();
      } catch (error) {
        failures.push(`${label}: no answer (${(error as Error).message})`);
        baseline = null;
        return;
      }
      calls++;
      if (status >= 500) failures.push(`${label}: ${status} ${text.slice(0, 200)}`);
      if (status < 400 && mustRefuse) failures.push(`${label}: accepted with ${status}`);
      else if (status < 400 && method !== 'GET') accepted.push(`${label}: ${status}`);
      const after = await checksums();
      if (status >= 400) {
        const changed = Object.keys(after).filter((table) => after[table] !== before[table]);
        if (changed.length > 0)
          failures.push(`${label}: refused with ${status} but changed ${changed.join(', ')}`);
      }
      baseline = after;
    };

    // Cancel and revoke end the request the other routes act on: last.
    const ordered = [...routes].sort(
      (a, b) => Number(/\/(cancel|revoke)$/.test(a.path)) - Number(/\/(cancel|revoke)$/.test(b.path)),
    );
    for (const route of ordered) {
      const key = `${route.method} ${route.path}`;
      const caller = callerFor(key, route.path);
      const template = bodies[key];
      const url = fill(route.path);
      const body = template && Object.keys(template).length > 0 ? JSON.stringify(template) : undefined;

      for (const param of route.path.match(/:(\w+)/g) ?? []) {
        for (const value of HOSTILE_PATH_VALUES) {
          const hostileUrl = fill(route.path, [param.slice(1), value]);
          await send(
            `${key} ${param}=${value.slice(0, 12)}`,
            route.method,
            hostileUrl,
            caller,
            body ?? (route.method === 'GET' ? undefined : '{}'),
            true,
          );
        }
      }
      if (route.method === 'GET') {
        for (const query of HOSTILE_QUERIES)
          await send(`${key} ${query.slice(0, 24)}`, 'GET', `${url}${query}`, caller);
        continue;
      }
      for (const [what, raw] of HOSTILE_RAW_BODIES)
        await send(`${key} ${what}`, route.method, url, caller, raw, true);
      for (const path of fieldPaths(template, DEEP_ROUTES.has(key))) {
        for (const [what, value] of HOSTILE_VALUES) {
          await send(
            `${key} ${path.join('.')}=${what}`,
            route.method,
            url,
            caller,
            JSON.stringify(withField(template, path, value)),
          );
        }
      }
    }

    // Genuine WebAuthn responses, spoiled: sign-in, enrollment, adding a passkey, and a step-up.
    const anonymous = null;
    let enrolled = 0;
    const postJson = async (person: Person | null, route: string, payload: unknown) => {
      const response = await fetch(`${stack.baseUrl}${route}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          origin: stack.origin,
          ...(person ? { cookie: person.cookie } : {}),
        },
        body: JSON.stringify(payload),
      });
      return (await response.json()) as any;
    };
    const ceremonies: Array<
      [string, (overrides: CeremonyOverrides) => Promise<[string, Person | null, any]>]
    > = [
      [
        'login/verify',
        async (overrides) => {
          const options = await postJson(anonymous, '/api/auth/login/options', {});
          return [
            '/api/auth/login/verify',
            anonymous,
            { response: alice.authenticator.authenticate(options, overrides) },
          ];
        },
      ],
      [
        'enroll/verify',
        async (overrides) => {
          // A fresh invite each time: a spoiled response the library still accepts spends its invite.
          const fresh = await inviteToken(stack, `sweep-${(enrolled += 1)}`);
          const options = await postJson(anonymous, '/api/auth/enroll/options', { invite: fresh });
          const response = new SoftAuthenticator({ origin: stack.origin }).register(options, overrides);
          return ['/api/auth/enroll/verify', anonymous, { invite: fresh, response }];
        },
      ],
      [
        'me/authenticators/verify',
        async (overrides) => {
          const options = await postJson(alice, '/api/me/authenticators/options', {
            stepUp: await alice.stepUp('authenticator.add', 'alice', {}),
          });
          const response = new SoftAuthenticator({ origin: stack.origin }).register(options, overrides);
          return ['/api/me/authenticators/verify', alice, { response, name: 'sweep' }];
        },
      ],
      [
        'step-up (approve)',
        async (overrides) => {
          // A fresh request each time: a spoiled step-up the library still accepts approves its request.
          const filed = await alice.post('/api/requests', {
            entitlementId: 'api-admin-token',
            durationSeconds: 600,
            justification: 'sweep ceremonies',
          });
          const proof = await bob.stepUp('approve', filed.body.id, undefined, overrides);
          return [`/api/requests/${filed.body.id}/approve`, bob, { stepUp: proof }];
        },
      ],
    ];
    for (const [ceremony, prepare] of ceremonies) {
      const registration = ceremony.includes('enroll') || ceremony.includes('authenticators');
      for (const [what, overrides] of registration ? REGISTRATION_OVERRIDES : SIGNED_OVERRIDES) {
        baseline = null;
        const [route, person, payload] = await prepare(overrides);
        await send(`${ceremony} ${what}`, 'POST', route, person, JSON.stringify(payload));
      }
      for (const [what, mutate] of WEBAUTHN_MUTATIONS) {
        baseline = null;
        const [route, person, payload] = await prepare({});
        const spoiled = payload.stepUp
          ? { ...payload, stepUp: { ...payload.stepUp, response: mutate(payload.stepUp.response) } }
          : { ...payload, response: mutate(payload.response) };
        await send(`${ceremony} ${what}`, 'POST', route, person, JSON.stringify(spoiled));
      }
    }

    if (process.env.SWEEP_REPORT) console.log(`accepted:\n${accepted.join('\n')}`);
    expect(failures).toEqual([]);
    // Bounded: a few thousand calls.
    expect(calls).toBeGreaterThan(1000);
    expect(calls).toBeLessThan(5000);
  }, 240_000);
});
