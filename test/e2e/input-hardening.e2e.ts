// Issue 12, finding 6: the small edge weaknesses of the adversarial review, one test (or more) each.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DataSource } from 'typeorm';
import { DomainError } from '../../libs/domain/errors.js';
import { createInvite } from '../../libs/identity/invites.js';
import {
  enroll,
  httpClient,
  INTROSPECTION_CLIENT,
  startStack,
  type ApiResponse,
  type Person,
  type TestStack,
} from '../support/stack.js';

const SOME_UUID = '0190f3a2-7c1e-7b3a-9d4e-5f6a7b8c9d0e';

function expectError(answer: ApiResponse<any>, status: number, code: string): void {
  expect({ status: answer.status, code: answer.body?.error?.code }).toEqual({ status, code });
  expect(typeof answer.body.error.message).toBe('string');
}

/** The fields a VALIDATION_FAILED answer names. */
function refusedFields(answer: ApiResponse<any>): string[] {
  return ((answer.body?.error?.details ?? []) as Array<{ field: string }>).map((detail) => detail.field);
}

/** A RegistrationResponseJSON that passes the edge's shape checks (it would fail the ceremony). */
const SHAPED_REGISTRATION = {
  id: 'AAAA',
  rawId: 'AAAA',
  type: 'public-key',
  response: { clientDataJSON: 'AAAA', attestationObject: 'AAAA' },
  clientExtensionResults: {},
};

async function auditCount(stack: TestStack, action: string): Promise<number> {
  const { rows } = await stack.db.query(`SELECT count(*)::int AS count FROM audit_events WHERE action = $1`, [
    action,
  ]);
  return rows[0].count as number;
}

describe('input hardening (issue 12, finding 6)', () => {
  let stack: TestStack;
  let alice: Person;
  let bob: Person;
  let admin: Person;
  let auditor: Person;
  let pendingId: string;

  beforeAll(async () => {
    stack = await startStack({ worker: false, env: { STEP_UP_MAX_FAILURES: '1000' } });
    alice = await enroll(stack, 'alice');
    bob = await enroll(stack, 'bob');
    admin = await enroll(stack, 'admin', { roles: ['admin'] });
    auditor = await enroll(stack, 'auditor', { roles: ['auditor'] });
    const created = await alice.post('/api/requests', {
      entitlementId: 'api-admin-token',
      durationSeconds: 600,
      justification: 'input hardening e2e',
    });
    expect(created.status).toBe(201);
    pendingId = created.body.id;
  }, 90_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  it('refuses a stepUp that is not one object (e.g. []) with 400 on every route that takes one, counting nothing', async () => {
    const authenticatorId = (await alice.get('/api/me/authenticators')).body.items[0].id as string;
    const proof = await bob.stepUp('approve', pendingId);
    const routes: Array<[Person, string, Record<string, unknown>]> = [
      [
        alice,
        '/api/requests',
        { entitlementId: 'api-admin-token', durationSeconds: 600, justification: 'x' },
      ],
      [bob, `/api/requests/${pendingId}/approve`, {}],
      [bob, `/api/requests/${pendingId}/deny`, { reason: 'no' }],
      [alice, `/api/requests/${pendingId}/activate`, {}],
      [bob, `/api/requests/${pendingId}/revoke`, { reason: 'incident' }],
      [admin, '/api/admin/invites', { username: 'newcomer', roles: [] }],
      [admin, '/api/admin/users/alice/status', { status: 'suspended', reason: 'test' }],
      [admin, '/api/admin/policies/reload', {}],
      [auditor, '/api/audit/export', { format: 'ndjson' }],
      [alice, '/api/me/authenticators/options', {}],
      [alice, `/api/me/authenticators/${authenticatorId}/remove`, {}],
    ];
    const failuresBefore = await auditCount(stack, 'step-up.failed');
    const wrong: string[] = [];
    for (const [person, route, body] of routes) {
      for (const stepUp of [[], [proof], 'proof', 7]) {
        const answer = await person.post(route, { ...body, stepUp });
        if (answer.status !== 400 || answer.body.error.code !== 'VALIDATION_FAILED')
          wrong.push(`${route} stepUp=${JSON.stringify(stepUp).slice(0, 20)}: ${answer.status}`);
        else if (!refusedFields(answer).includes('stepUp')) wrong.push(`${route}: does not name stepUp`);
      }
    }
    expect(wrong).toEqual([]);
    expect(await auditCount(stack, 'step-up.failed')).toBe(failuresBefore);
    // The proof was never spent: it still approves.
    expect((await bob.post(`/api/requests/${pendingId}/approve`, { stepUp: proof })).status).toBe(200);
  });

  describe('free text shown to another person', () => {
    const HOSTILE: Array<[string, string]> = [
      ['right-to-left override', 'approve \u202Eexe.tnemyap\u202C now'],
      ['left-to-right embedding', 'a\u202Ab'],
      ['pop directional formatting', 'a\u202Cb'],
      ['right-to-left isolate', 'a\u2067b\u2069'],
      ['first strong isolate', 'a\u2068b'],
      ['C1 next line', 'a\u0085b'],
      ['C1 control sequence introducer', 'a\u009B31mred'],
      ['NUL', 'a\u0000b'],
      ['escape', 'a\u001B[2Jb'],
      ['bell', 'a\u0007b'],
      ['lone high surrogate', 'a\uD800b'],
      ['lone low surrogate', 'a\uDC00b'],
    ];

    /** [who, route, base body, free-text field, multi-line?] */
    const FIELDS: () => Array<[Person, string, Record<string, unknown>, string, boolean]> = () => [
      [
        alice,
        '/api/requests',
        { entitlementId: 'api-admin-token', durationSeconds: 600 },
        'justification',
        true,
      ],
      [
        alice,
        '/api/requests',
        { entitlementId: 'api-admin-token', durationSeconds: 600, justification: 'x' },
        'ticket',
        false,
      ],
      [alice, `/api/requests/${SOME_UUID}/extend`, { durationSeconds: 600 }, 'justification', true],
      [alice, `/api/requests/${SOME_UUID}/extend`, { durationSeconds: 600 }, 'ticket', false],
      [alice, `/api/requests/${SOME_UUID}/cancel`, {}, 'reason', true],
      [bob, `/api/requests/${SOME_UUID}/revoke`, {}, 'reason', true],
      [bob, `/api/requests/${SOME_UUID}/deny`, {}, 'reason', true],
      [bob, `/api/requests/${SOME_UUID}/approve`, {}, 'comment', true],
      [bob, `/api/requests/${SOME_UUID}/review`, {}, 'comment', true],
      [admin, '/api/admin/invites', { username: 'newcomer', roles: [] }, 'displayName', false],
      [admin, '/api/admin/users/alice/status', { status: 'suspended' }, 'reason', true],
      [alice, '/api/me/authenticators/verify', { response: SHAPED_REGISTRATION }, 'name', false],
    ];

    it('refuses bidi, C1 and C0 controls and lone surrogates in every free-text field: 400 naming the field', async () => {
      const wrong: string[] = [];
      for (const [person, route, body, field, multiLine] of FIELDS()) {
        const cases = multiLine ? HOSTILE : [...HOSTILE, ['line feed', 'a\nb'] as [string, string]];
        for (const [what, text] of cases) {
          const answer = await person.post(route, { ...body, [field]: text });
          const fields = refusedFields(answer);
          if (answer.status !== 400 || answer.body.error.code !== 'VALIDATION_FAILED')
            wrong.push(`${route} ${field} (${what}): ${answer.status} ${answer.body?.error?.code}`);
          else if (fields.length !== 1 || fields[0] !== field || !answer.body.error.message.includes(field))
            wrong.push(`${route} ${field} (${what}): names ${fields.join(',')}`);
        }
      }
      expect(wrong).toEqual([]);
    });

    it('refuses bidi, C1 and C0 controls in the comment of an sshPublicKey: 400 naming the field', async () => {
      const wrong: string[] = [];
      const body = { entitlementId: 'api-admin-token', durationSeconds: 600, justification: 'ssh comment' };
      for (const [what, text] of [...HOSTILE, ['tab', 'a\tb'] as [string, string]]) {
        const answer = await alice.post('/api/requests', {
          ...body,
          sshPublicKey: `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA me@${text}`,
        });
        if (answer.status !== 400 || !refusedFields(answer).includes('sshPublicKey'))
          wrong.push(
            `${what}: ${answer.status} ${answer.body?.error?.code} ${refusedFields(answer).join(',')}`,
          );
      }
      expect(wrong).toEqual([]);
    });

    it('refuses a CLI invite whose --display-name holds a control character, storing nothing', async () => {
      const dataSource = stack.broker.get(DataSource);
      const settings = { publicUrl: stack.config.http.publicUrl, ttlSeconds: stack.config.inviteTtlSeconds };
      const wrong: string[] = [];
      for (const [index, [what, text]] of [...HOSTILE, ['line feed', 'a\nb'] as [string, string]].entries()) {
        const outcome = await dataSource
          .transaction((manager) =>
            createInvite(manager, settings, 'cli', {
              username: `cli-newcomer-${index}`,
              displayName: text,
              roles: [],
            }),
          )
          .then(
            () => 'created',
            (error: unknown) =>
              error instanceof DomainError ? `${error.code}: ${error.message}` : String(error),
          );
        if (!/^VALIDATION_FAILED: .*display name/i.test(outcome)) wrong.push(`${what}: ${outcome}`);
      }
      expect(wrong).toEqual([]);
      const { rows } = await stack.db.query(
        `SELECT count(*)::int AS count FROM users WHERE username LIKE 'cli-newcomer%'`,
      );
      expect(rows[0].count).toBe(0);
    });

    it('accepts ordinary text in any script, and tabs and line breaks where text spans lines', async () => {
      const created = await alice.post('/api/requests', {
        entitlementId: 'api-admin-token',
        durationSeconds: 600,
        justification: 'Müller – 東京 😀 שלום עולם\n\tsecond line\r\n',
        ticket: 'INC-1 ✓ عربى',
      });
      expect(created.status).toBe(201);
      expect(created.body.justification).toBe('Müller – 東京 😀 שלום עולם\n\tsecond line\r\n');
    });

    it('refuses NUL and lone surrogates in any string of any body, keys included, outside WebAuthn responses', async () => {
      const cases: Array<[Person | ReturnType<typeof httpClient>, string, unknown]> = [
        [
          alice,
          '/api/step-up/challenge',
          { action: 'invite.create', subjectId: 'x', params: { a: '\u0000' } },
        ],
        [
          alice,
          '/api/step-up/challenge',
          { action: 'invite.create', subjectId: 'x', params: { a: ['\uDFFF'] } },
        ],
        [
          alice,
          '/api/step-up/challenge',
          { action: 'invite.create', subjectId: 'x', params: { 'a\u0000': 1 } },
        ],
      ];
      for (const [client, route, body] of cases) {
        const answer = await client.post(route, body);
        expectError(answer, 400, 'VALIDATION_FAILED');
        expect(answer.body.error.message).toContain('params');
      }
      const hint = await fetch(`${stack.baseUrl}/api/introspect`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${INTROSPECTION_CLIENT.id}:${INTROSPECTION_CLIENT.secret}`).toString('base64')}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify({ token: 'abc', token_type_hint: '\u0000' }),
      });
      expect(hint.status).toBe(400);
      expect(((await hint.json()) as any).error.message).toContain('token_type_hint');
    });
  });

  it('sends X-Content-Type-Options: nosniff on every answer, JSON and errors included', async () => {
    const anonymous = httpClient(stack, null);
    const answers = [
      await alice.get('/api/me'),
      await alice.get('/api/requests/not-a-uuid'),
      await alice.get('/api/no-such-route'),
      await anonymous.get('/api/me'),
      await anonymous.post('/api/introspect', { token: 'x' }),
      await anonymous.get('/health/live'),
      await anonymous.get('/.well-known/jwks.json'),
      await anonymous.postRaw('/api/auth/login/verify', '{"response":'),
    ];
    expect(answers.map((answer) => answer.headers.get('x-content-type-options'))).toEqual(
      answers.map(() => 'nosniff'),
    );
  });

  it('answers a 200 KB body of unknown keys with a small 400 that counts what it leaves out', async () => {
    const body: Record<string, number> = {};
    for (let index = 0; index < 8_000; index++) body[`unknown_field_${index}`] = index;
    expect(JSON.stringify(body).length).toBeGreaterThan(200_000);
    const refused = await alice.post('/api/requests', body);
    expectError(refused, 400, 'VALIDATION_FAILED');
    expect(JSON.stringify(refused.body).length).toBeLessThan(16_384);
    expect(refused.body.error.details.length).toBeLessThanOrEqual(20);
    expect(refused.body.error.message).toMatch(/and \d+ more/);

    // One key of 100 KB: each reported problem is cut short too.
    const longKey = await alice.post('/api/requests', { ['k'.repeat(100_000)]: 1 });
    expectError(longKey, 400, 'VALIDATION_FAILED');
    expect(JSON.stringify(longKey.body).length).toBeLessThan(16_384);
  });

  it('answers a body over the size limit with 413 in the error envelope', async () => {
    const answer = await alice.post('/api/requests', { justification: 'x'.repeat(300_000) });
    expectError(answer, 413, 'PAYLOAD_TOO_LARGE');
    expect(answer.headers.get('x-content-type-options')).toBe('nosniff');
  });
});

describe('limits answer 429 with Retry-After (small limits, clients told apart by X-Forwarded-For)', () => {
  const IP_LIMIT = 4;
  const INTROSPECTION_PER_IP = 3;
  const INTROSPECTION_PER_CLIENT = 5;
  const OTHER_CLIENT = { id: 'other-server', secret: 'another-secret-of-at-least-32-characters' };
  const RACED_CLIENT = { id: 'raced-server', secret: 'a-third-secret-of-at-least-32-characters' };
  let stack: TestStack;
  let alice: Person;

  beforeAll(async () => {
    stack = await startStack({
      worker: false,
      env: {
        TRUST_PROXY: 'loopback',
        IP_RATE_LIMIT: String(IP_LIMIT),
        REQUEST_RATE_LIMIT: '2',
        INTROSPECTION_CLIENTS: [INTROSPECTION_CLIENT, OTHER_CLIENT, RACED_CLIENT]
          .map((client) => `${client.id}:${client.secret}`)
          .join(','),
        INTROSPECTION_FAILURE_LIMIT_PER_IP: String(INTROSPECTION_PER_IP),
        INTROSPECTION_FAILURE_LIMIT_PER_CLIENT: String(INTROSPECTION_PER_CLIENT),
      },
    });
    // Enrollment uses two ceremonies of 127.0.0.1's budget; the tests below speak from other addresses.
    alice = await enroll(stack, 'alice');
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  async function post(route: string, from: string, body: unknown, authorization?: string) {
    const response = await fetch(`${stack.baseUrl}${route}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        origin: stack.origin,
        'x-forwarded-for': from,
        ...(authorization ? { authorization } : {}),
      },
      body: JSON.stringify(body),
    });
    return { status: response.status, headers: response.headers, body: (await response.json()) as any };
  }

  function expectRetryAfter(answer: { status: number; headers: Headers }, atMostSeconds: number): void {
    expect(answer.status).toBe(429);
    const retryAfter = answer.headers.get('retry-after');
    expect(retryAfter).toMatch(/^[1-9][0-9]*$/);
    expect(Number(retryAfter)).toBeLessThanOrEqual(atMostSeconds);
  }

  const basic = (id: string, secret: string) =>
    `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

  it('per-IP ceremony limit: 429 RATE_LIMITED with Retry-After', async () => {
    let last;
    for (let attempt = 0; attempt <= IP_LIMIT; attempt++)
      last = await post('/api/auth/login/options', '203.0.113.7', {});
    expect(last!.body.error.code).toBe('RATE_LIMITED');
    expectRetryAfter(last!, stack.config.ipRateLimit.windowSeconds);
  });

  it('request rate limit: 429 REQUEST_RATE_LIMITED with Retry-After', async () => {
    const body = { entitlementId: 'api-admin-token', durationSeconds: 600, justification: 'rate' };
    expect((await alice.post('/api/requests', body)).status).toBe(201);
    expect((await alice.post('/api/requests', body)).status).toBe(201);
    const refused = await alice.post('/api/requests', body);
    expect(refused.body.error.code).toBe('REQUEST_RATE_LIMITED');
    expectRetryAfter(refused, stack.config.antiFatigue.requestWindowSeconds);
  });

  it('introspection: wrong secrets from one address lock that address out (429, Retry-After), audited once', async () => {
    const from = '198.51.100.1';
    const statuses: number[] = [];
    for (let attempt = 0; attempt < INTROSPECTION_PER_IP; attempt++)
      statuses.push(
        (await post('/api/introspect', from, { token: 'x' }, basic(INTROSPECTION_CLIENT.id, 'wrong'))).status,
      );
    expect(statuses).toEqual(Array(INTROSPECTION_PER_IP).fill(401));
    // Now even the right secret is refused from there (no oracle), but not from elsewhere.
    const locked = await post(
      '/api/introspect',
      from,
      { token: 'x' },
      basic(INTROSPECTION_CLIENT.id, INTROSPECTION_CLIENT.secret),
    );
    expect(locked.body.error.code).toBe('RATE_LIMITED');
    expectRetryAfter(locked, 15 * 60);
    const elsewhere = await post(
      '/api/introspect',
      '198.51.100.2',
      { token: 'x' },
      basic(INTROSPECTION_CLIENT.id, INTROSPECTION_CLIENT.secret),
    );
    expect(elsewhere.status).toBe(200);
    const { rows } = await stack.db.query(
      `SELECT subject_type AS "subjectType", subject_id AS "subjectId", data FROM audit_events
        WHERE action = 'introspection.locked'`,
    );
    expect(rows).toEqual([
      { subjectType: 'client-address', subjectId: from, data: expect.objectContaining({ alert: true }) },
    ]);
  });

  it('introspection: wrong secrets for one client id from many addresses lock out wrong secrets only, audited once', async () => {
    const statuses: number[] = [];
    for (let attempt = 0; attempt < INTROSPECTION_PER_CLIENT; attempt++) {
      statuses.push(
        (
          await post(
            '/api/introspect',
            `192.0.2.${attempt + 1}`,
            { token: 'x' },
            basic(OTHER_CLIENT.id, `wrong-${attempt}`),
          )
        ).status,
      );
    }
    expect(statuses).toEqual(Array(INTROSPECTION_PER_CLIENT).fill(401));
    // Past the limit a wrong secret is 429 from any address...
    for (const from of ['192.0.2.100', '192.0.2.101']) {
      const locked = await post(
        '/api/introspect',
        from,
        { token: 'x' },
        basic(OTHER_CLIENT.id, 'wrong-again'),
      );
      expect(locked.body.error.code).toBe('RATE_LIMITED');
      expectRetryAfter(locked, 15 * 60);
    }
    // ...but client ids are not secret: anyone could lock a resource server out, so its right secret still
    // works from an address that is not locked (secrets of 32+ characters keep guessing infeasible).
    const rightSecret = await post(
      '/api/introspect',
      '192.0.2.200',
      { token: 'x' },
      basic(OTHER_CLIENT.id, OTHER_CLIENT.secret),
    );
    expect({ status: rightSecret.status, active: rightSecret.body.active }).toEqual({
      status: 200,
      active: false,
    });
    // Another client is unaffected.
    const other = await post(
      '/api/introspect',
      '192.0.2.201',
      { token: 'x' },
      basic(INTROSPECTION_CLIENT.id, INTROSPECTION_CLIENT.secret),
    );
    expect(other.status).toBe(200);
    const { rows } = await stack.db.query(
      `SELECT subject_id AS "subjectId", data FROM audit_events
        WHERE action = 'introspection.locked' AND subject_type = 'introspection-client'`,
    );
    expect(rows).toEqual([
      {
        subjectId: OTHER_CLIENT.id,
        data: expect.objectContaining({ alert: true, failures: INTROSPECTION_PER_CLIENT }),
      },
    ]);
  });

  it('introspection: concurrent wrong secrets are counted atomically, exactly the limit evaluated, the rest 429', async () => {
    const attempts = 20;
    // One address, an unknown client id: only the per-address limit applies.
    const fromOneAddress = await Promise.all(
      Array.from({ length: attempts }, (_, attempt) =>
        post('/api/introspect', '198.51.100.50', { token: 'x' }, basic('no-such-client', `wrong-${attempt}`)),
      ),
    );
    expect(fromOneAddress.map((answer) => answer.status).sort()).toEqual([
      ...Array(INTROSPECTION_PER_IP).fill(401),
      ...Array(attempts - INTROSPECTION_PER_IP).fill(429),
    ]);
    // One client id, every attempt from its own address: only the per-client limit applies.
    const forOneClient = await Promise.all(
      Array.from({ length: attempts }, (_, attempt) =>
        post(
          '/api/introspect',
          `203.0.113.${100 + attempt}`,
          { token: 'x' },
          basic(RACED_CLIENT.id, `wrong-${attempt}`),
        ),
      ),
    );
    expect(forOneClient.map((answer) => answer.status).sort()).toEqual([
      ...Array(INTROSPECTION_PER_CLIENT).fill(401),
      ...Array(attempts - INTROSPECTION_PER_CLIENT).fill(429),
    ]);
    const { rows } = await stack.db.query(
      `SELECT subject_type AS "subjectType", subject_id AS "subjectId" FROM audit_events
        WHERE action = 'introspection.locked' AND subject_id IN ('198.51.100.50', $1) ORDER BY seq`,
      [RACED_CLIENT.id],
    );
    expect(rows).toEqual([
      { subjectType: 'client-address', subjectId: '198.51.100.50' },
      { subjectType: 'introspection-client', subjectId: RACED_CLIENT.id },
    ]);
  });
});
