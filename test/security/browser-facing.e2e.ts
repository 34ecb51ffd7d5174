// Browser-facing controls over HTTP against the real broker (issue 20, point 6): cross-origin state changes
// refused with nothing written, the session token rotated at sign-in, cookie flags over https, and the
// security headers of the web UI and the API. Logout ending the session server-side and the cookie flags
// on http://localhost are proved in test/e2e/identity.e2e.ts; they are not repeated here.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  enroll,
  httpClient,
  sessionCookieFrom,
  startStack,
  type ApiResponse,
  type Person,
  type TestStack,
} from '../support/stack.js';

const REQUEST_BODY = { entitlementId: 'api-admin-token', durationSeconds: 600, justification: 'csrf probe' };

/** A POST with exactly these headers (the JSON client always sends its own Origin and content type). */
async function rawPost(
  stack: TestStack,
  route: string,
  headers: Record<string, string>,
  body: string,
): Promise<ApiResponse<any>> {
  const response = await fetch(`${stack.baseUrl}${route}`, { method: 'POST', headers, body });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: kept as text
  }
  return { status: response.status, body: parsed, headers: response.headers };
}

async function rowCounts(stack: TestStack): Promise<Record<string, number>> {
  const { rows } = await stack.db.query<Record<string, number>>(
    `SELECT (SELECT count(*)::int FROM elevation_requests) AS requests,
            (SELECT count(*)::int FROM audit_events) AS audit,
            (SELECT count(*)::int FROM sessions WHERE ended_at IS NULL) AS "liveSessions"`,
  );
  return rows[0];
}

/** Passkey sign-in from a browser that already holds `cookie` (or none); the verify answer. */
async function signInCarrying(stack: TestStack, person: Person, cookie: string | null) {
  const client = httpClient(stack, cookie);
  const options = await client.post('/api/auth/login/options', {});
  expect(options.status).toBe(200);
  return client.post('/api/auth/login/verify', { response: person.authenticator.authenticate(options.body) });
}

function cookieAttributes(setCookie: string): { pair: string; attributes: string[] } {
  const [pair, ...attributes] = setCookie.split(';').map((part) => part.trim());
  return { pair, attributes };
}

describe('browser-facing: cross-origin refusal, session rotation, headers (http://localhost)', () => {
  let stack: TestStack;
  let webDir: string;
  let alice: Person;

  beforeAll(async () => {
    webDir = await mkdtemp(path.join(tmpdir(), 'jit-web-sec-'));
    await writeFile(path.join(webDir, 'index.html'), '<!doctype html><title>jit</title>\n');
    stack = await startStack({ env: { WEB_DIR: webDir } });
    alice = await enroll(stack, 'alice');
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    if (webDir) await rm(webDir, { recursive: true, force: true });
  }, 30_000);

  it('refuses cross-origin state changes of a signed-in person with 403 and writes nothing', async () => {
    const json = JSON.stringify(REQUEST_BODY);
    const before = await rowCounts(stack);
    const attempts: Array<[string, Record<string, string>, string]> = [
      ['another site', { origin: 'https://evil.example', 'content-type': 'application/json' }, json],
      [
        'a null Origin (sandboxed frame, data: URL)',
        { origin: 'null', 'content-type': 'application/json' },
        json,
      ],
      [
        'no Origin, Sec-Fetch-Site cross-site',
        { 'sec-fetch-site': 'cross-site', 'content-type': 'application/json' },
        json,
      ],
      [
        'a text/plain form from another site',
        { origin: 'https://evil.example', 'content-type': 'text/plain' },
        json,
      ],
      ['a text/plain form without Origin', { 'content-type': 'text/plain' }, json],
      [
        'an urlencoded form from another site',
        { origin: 'https://evil.example', 'content-type': 'application/x-www-form-urlencoded' },
        new URLSearchParams({ ...REQUEST_BODY, durationSeconds: '600' }).toString(),
      ],
      [
        'a look-alike origin',
        { origin: `${stack.origin}.evil.example`, 'content-type': 'application/json' },
        json,
      ],
    ];
    for (const [label, headers, body] of attempts) {
      for (const route of ['/api/requests', '/api/auth/logout']) {
        const answer = await rawPost(stack, route, { ...headers, cookie: alice.cookie }, body);
        expect({ label, route, status: answer.status, code: answer.body?.error?.code }).toEqual({
          label,
          route,
          status: 403,
          code: 'ORIGIN_NOT_ALLOWED',
        });
      }
    }
    expect(await rowCounts(stack)).toEqual(before);
    // The session survived every refused logout.
    expect((await alice.get('/api/me')).status).toBe(200);
  });

  it('accepts the same POST from its own origin, and answers a same-origin text/plain body with 4xx', async () => {
    const before = await rowCounts(stack);
    const plain = await rawPost(
      stack,
      '/api/requests',
      { origin: stack.origin, 'content-type': 'text/plain', cookie: alice.cookie },
      JSON.stringify(REQUEST_BODY),
    );
    expect(plain.status).toBeGreaterThanOrEqual(400);
    expect(plain.status).toBeLessThan(500);
    expect(await rowCounts(stack)).toEqual(before);

    const created = await alice.post('/api/requests', REQUEST_BODY);
    expect(created.status).toBe(201);
    const after = await rowCounts(stack);
    expect(after.requests).toBe(before.requests + 1);
  });

  it('rotates the session at sign-in: a planted cookie is replaced and never authenticates', async () => {
    const planted = `jit_session=${randomBytes(32).toString('base64url')}`;
    const signedIn = await signInCarrying(stack, alice, planted);
    expect(signedIn.status).toBe(200);
    const issued = sessionCookieFrom(signedIn.headers);
    expect(issued).not.toBe(planted);
    expect((await httpClient(stack, planted).get('/api/me')).status).toBe(401);
    expect((await httpClient(stack, issued).get('/api/me')).status).toBe(200);
  });

  it('rotates a live session at sign-in: the token held before no longer authenticates', async () => {
    const first = sessionCookieFrom((await signInCarrying(stack, alice, null)).headers);
    expect((await httpClient(stack, first).get('/api/me')).status).toBe(200);
    const again = await signInCarrying(stack, alice, first);
    expect(again.status).toBe(200);
    const second = sessionCookieFrom(again.headers);
    expect(second).not.toBe(first);
    expect((await httpClient(stack, first).get('/api/me')).status).toBe(401);
    expect((await httpClient(stack, second).get('/api/me')).status).toBe(200);
    const { rows } = await stack.db.query(
      `SELECT end_reason AS "endReason" FROM sessions WHERE user_id = $1 AND ended_at IS NOT NULL`,
      [alice.userId],
    );
    expect(rows).toContainEqual({ endReason: 'replaced-at-sign-in' });
    // The audit event names whose session was ended, not only who signed in.
    const ended = await stack.db.query(
      `SELECT data FROM audit_events WHERE action = 'session.ended' AND data->>'reason' = 'replaced-at-sign-in'`,
    );
    expect(ended.rows.map((row) => row.data)).toContainEqual({
      reason: 'replaced-at-sign-in',
      userId: alice.userId,
    });
  });

  it('lets a step-up lend the session no privilege: it sets no cookie and the token stays the same', async () => {
    const created = await alice.post('/api/requests', { ...REQUEST_BODY, justification: 'step-up probe' });
    expect(created.status).toBe(201);
    // The proof is spent by the one call it is bound to (step-up.e2e.ts); the session itself never changes.
    const options = await alice.post('/api/step-up/challenge', {
      action: 'revoke',
      subjectId: created.body.id,
    });
    expect(options.status).toBe(200);
    expect(options.headers.getSetCookie()).toEqual([]);
    expect((await alice.get('/api/me')).status).toBe(200);
  });

  it('sends the security headers on the web UI index and its client-side routes', async () => {
    for (const route of ['/', '/enroll?invite=x', '/requests/1']) {
      const response = await fetch(`${stack.baseUrl}${route}`);
      expect({ route, status: response.status }).toEqual({ route, status: 200 });
      const csp = response.headers.get('content-security-policy') ?? '';
      const scriptSrc = /script-src ([^;]*)/.exec(csp)?.[1] ?? /default-src ([^;]*)/.exec(csp)?.[1];
      expect(scriptSrc).toBe("'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).toContain("base-uri 'none'");
      expect(response.headers.get('x-frame-options')).toBe('DENY');
      expect(response.headers.get('x-content-type-options')).toBe('nosniff');
      expect(response.headers.get('referrer-policy')).toBe('no-referrer');
      expect(response.headers.get('cross-origin-opener-policy')).toBe('same-origin');
      expect(response.headers.get('x-powered-by')).toBeNull();
      await response.text();
    }
  });

  it('sends the security headers on every kind of /api answer, refusals and parser errors included', async () => {
    const anonymous = httpClient(stack, null);
    const answers: Array<[string, ApiResponse<any>, number]> = [
      ['signed-in read', await alice.get('/api/me'), 200],
      ['anonymous read', await anonymous.get('/api/me'), 401],
      ['unknown route', await alice.get('/api/no-such-route'), 404],
      ['malformed JSON', await alice.postRaw('/api/requests', '{"entitlementId":'), 400],
      ['body over the limit', await alice.postRaw('/api/requests', `"${'x'.repeat(300 * 1024)}"`), 413],
      [
        'JSON nested too deep',
        await alice.postRaw('/api/requests', `${'['.repeat(40)}${']'.repeat(40)}`),
        400,
      ],
      [
        'foreign origin',
        await httpClient(stack, alice.cookie, 'https://evil.example').post('/api/requests', REQUEST_BODY),
        403,
      ],
      ['sign-in options', await anonymous.post('/api/auth/login/options', {}), 200],
    ];
    for (const [label, answer, status] of answers) {
      const header = (name: string) => answer.headers.get(name);
      expect({
        label,
        status: answer.status,
        csp: header('content-security-policy'),
        frame: header('x-frame-options'),
        nosniff: header('x-content-type-options'),
        referrer: header('referrer-policy'),
        cache: header('cache-control'),
        coop: header('cross-origin-opener-policy'),
        corp: header('cross-origin-resource-policy'),
        poweredBy: header('x-powered-by'),
      }).toEqual({
        label,
        status,
        csp: expect.stringContaining("frame-ancestors 'none'"),
        frame: 'DENY',
        nosniff: 'nosniff',
        referrer: 'no-referrer',
        cache: 'no-store',
        coop: 'same-origin',
        corp: 'same-origin',
        poweredBy: null,
      });
      expect(header('content-security-policy')).toMatch(/^default-src 'none'/);
    }
  });
});

describe('browser-facing: the session cookie over https', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startStack({ env: { PUBLIC_URL: 'https://broker.example' }, worker: false });
    // The browser is on the https origin; the test still reaches the broker on 127.0.0.1.
    stack.origin = 'https://broker.example';
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  it('sets __Host-jit_session HttpOnly, Secure, SameSite=Strict, Path=/, without Domain, at enroll and sign-in', async () => {
    const bob = await enroll(stack, 'bob');
    const enrolledCookie = bob.cookie;
    const signedIn = await signInCarrying(stack, bob, enrolledCookie);
    expect(signedIn.status).toBe(200);
    const setCookies = signedIn.headers.getSetCookie();
    expect(setCookies).toHaveLength(1);
    const { pair, attributes } = cookieAttributes(setCookies[0]);
    expect(pair).toMatch(/^__Host-jit_session=[A-Za-z0-9_-]{43}$/);
    const names = attributes.map((attribute) => attribute.split('=')[0].toLowerCase());
    expect(names).toEqual(expect.arrayContaining(['httponly', 'secure', 'samesite', 'path']));
    expect(names).not.toContain('domain');
    expect(attributes).toContainEqual(expect.stringMatching(/^SameSite=Strict$/i));
    expect(attributes).toContainEqual('Path=/');
    // The cookie the enrollment set was rotated away by the sign-in.
    expect((await httpClient(stack, enrolledCookie).get('/api/me')).status).toBe(401);
    expect((await httpClient(stack, pair).get('/api/me')).status).toBe(200);
    // The plain-http name is not read when the origin is https.
    const downgraded = pair.replace(/^__Host-/, '');
    expect((await httpClient(stack, downgraded).get('/api/me')).status).toBe(401);
  });
});
