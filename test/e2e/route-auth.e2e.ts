import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { registeredRoutes } from '../support/routes.js';
import { httpClient, startStack, type TestStack } from '../support/stack.js';

/** Routes that answer without a session (DESIGN §10); everything else must demand one. */
const PUBLIC_ROUTES = [
  'POST /api/auth/enroll/options',
  'POST /api/auth/enroll/verify',
  'POST /api/auth/login/options',
  'POST /api/auth/login/verify',
  'GET /health/live',
  'GET /health/ready',
  'GET /.well-known/jwks.json',
  'POST /api/introspect',
  // The ssh connector's CA public key and revocation list: sshd fetches them without a session.
  'GET /api/ssh/krl',
  'GET /api/ssh/ca.pub',
  // The audit key, so an offline verifier can pin the manifest signature.
  'GET /.well-known/audit-jwks.json',
  // The OpenAPI document and its Swagger UI (apps/broker/openapi): the API's shapes, no data.
  'GET /api/docs',
  'GET /api/docs.json',
];
/** Public routes that a build may or may not register. */
const OPTIONAL_PUBLIC_ROUTES: string[] = [
  // The Swagger UI's script and the stock files it refuses (404), as @nestjs/swagger registers them.
  'GET /api/docs/',
  'GET /api/docs/swagger-ui-init.js',
  'GET /api/docs/docs/swagger-ui-init.js',
  'GET /api/docs/index.html',
  'GET /api/docs/LICENSE',
];

const SOME_UUID = '0190f3a2-7c1e-7b3a-9d4e-5f6a7b8c9d0e';

/** A concrete URL for a route pattern: ids become a UUID, usernames a plausible username. */
function concretePath(path: string): string {
  const filled = path.replace(/:(\w+)/g, (_match, name: string) =>
    /user(name)?$/i.test(name) ? 'alice' : SOME_UUID,
  );
  if (/[:*{}()]/.test(filled)) throw new Error(`cannot fill the route pattern ${path}`);
  return filled;
}

describe('every registered route needs a session unless it is on the public allow-list', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await startStack({ worker: false });
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  it('answers 401 with the error envelope without a session, and with an unknown session token', async () => {
    const routes = registeredRoutes(stack);
    const keys = new Set(routes.map((route) => `${route.method} ${route.path}`));

    // If the enumeration broke and found nothing, the loop below would pass vacuously.
    expect(routes.length).toBeGreaterThanOrEqual(15);
    for (const route of PUBLIC_ROUTES) expect(keys).toContain(route);
    const allowList = new Set([...PUBLIC_ROUTES, ...OPTIONAL_PUBLIC_ROUTES]);

    const anonymous = httpClient(stack, null);
    // Well formed (43 base64url characters) so it reaches the session lookup, but no session has it.
    const unknownSession = httpClient(stack, `jit_session=${randomBytes(32).toString('base64url')}`);
    const wrong: string[] = [];
    let checked = 0;
    for (const route of routes) {
      const key = `${route.method} ${route.path}`;
      const url = concretePath(route.path);
      if (allowList.has(key)) {
        // Public routes may refuse for other reasons (no client credentials, bad body), never for a session.
        const answer = await anonymous.call(route.method, url, route.method === 'GET' ? undefined : {});
        if (answer.body?.error?.code === 'UNAUTHENTICATED')
          wrong.push(`${key}: public but asks for a session`);
        continue;
      }
      for (const [who, client] of [
        ['no cookie', anonymous],
        ['unknown session', unknownSession],
      ] as const) {
        const answer = await client.call(route.method, url, route.method === 'GET' ? undefined : {});
        const envelope = answer.body?.error;
        if (
          answer.status !== 401 ||
          envelope?.code !== 'UNAUTHENTICATED' ||
          typeof envelope?.message !== 'string' ||
          Object.keys(answer.body).length !== 1
        ) {
          wrong.push(`${key} (${who}): ${answer.status} ${JSON.stringify(answer.body)}`);
        }
      }
      checked += 1;
    }
    expect(wrong).toEqual([]);
    expect(checked).toBeGreaterThanOrEqual(10);
  });
});
