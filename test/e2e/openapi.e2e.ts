// Issue 19 point 4: the broker's OpenAPI document at /api/docs.json is valid OpenAPI 3 and describes every
// route the Express router dispatches, each with its request shape (from the DTOs) and the error envelope.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Validator } from '@seriousme/openapi-schema-validator';
import { API_DOCS_JSON_PATH, API_DOCS_PATH } from '../../apps/broker/openapi/openapi.js';
import { registeredRoutes } from '../support/routes.js';
import { enroll, startStack, type TestStack } from '../support/stack.js';

interface Operation {
  operationId?: string;
  security?: unknown[];
  parameters?: Array<{ name: string; in: string; required?: boolean; schema?: Record<string, unknown> }>;
  requestBody?: { content: Record<string, { schema: { $ref?: string } }> };
  responses: Record<string, { content?: Record<string, { schema: { $ref?: string } }> }>;
}

interface Schema {
  type?: string;
  required?: string[];
  properties?: Record<string, Schema & { $ref?: string }>;
  additionalProperties?: boolean;
  enum?: unknown[];
  maxLength?: number;
  pattern?: string;
}

interface Document {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema> };
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'options', 'head', 'trace'];

/** Express's `/api/requests/:id` as OpenAPI's `/api/requests/{id}`. */
function openApiPath(expressPath: string): string {
  return expressPath.replace(/:(\w+)/g, '{$1}');
}

/** The docs' own routes (the UI, its init script, the JSON) describe the API; they are not part of it. */
function isDocsRoute(path: string): boolean {
  return path === API_DOCS_JSON_PATH || path === API_DOCS_PATH || path.startsWith(`${API_DOCS_PATH}/`);
}

describe('OpenAPI document (/api/docs.json)', () => {
  let stack: TestStack;
  let document: Document;

  const operations = (): Array<[string, Operation]> =>
    Object.entries(document.paths).flatMap(([path, item]) =>
      Object.entries(item)
        .filter(([method]) => METHODS.includes(method))
        .map(([method, operation]): [string, Operation] => [`${method.toUpperCase()} ${path}`, operation]),
    );

  const schemaNamed = (ref: string | undefined): Schema => {
    expect(ref).toMatch(/^#\/components\/schemas\//);
    const schema = document.components.schemas[ref!.split('/').pop()!];
    expect(schema).toBeDefined();
    return schema!;
  };

  beforeAll(async () => {
    stack = await startStack({ worker: false });
    const response = await fetch(`${stack.baseUrl}${API_DOCS_JSON_PATH}`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    document = (await response.json()) as Document;
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  it('validates as OpenAPI 3 with every $ref resolvable', async () => {
    const validator = new Validator();
    const result = await validator.validate(
      structuredClone(document) as unknown as Parameters<Validator['validate']>[0],
    );
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toMatch(/^3\./);
    expect(() => validator.resolveRefs()).not.toThrow();
  });

  it('documents exactly the routes the router registers, no more and no fewer', () => {
    const registered = registeredRoutes(stack)
      .filter((route) => !isDocsRoute(route.path))
      .map((route) => `${route.method} ${openApiPath(route.path)}`);
    // If the enumeration broke and found nothing, the comparison would pass vacuously.
    expect(registered.length).toBeGreaterThanOrEqual(40);
    const documented = operations().map(([key]) => key);
    const missing = registered.filter((key) => !documented.includes(key));
    const extra = documented.filter((key) => !registered.includes(key));
    expect({ missing, extra }).toEqual({ missing: [], extra: [] });
  });

  it('gives every route the error envelope, and a 401 to every route that needs a session', () => {
    const envelope = document.components.schemas.ErrorEnvelope;
    expect(envelope?.required).toEqual(['error']);
    expect(envelope?.properties?.error?.required).toEqual(['code', 'message']);
    expect(envelope?.properties?.error?.properties?.code?.enum).toEqual(
      expect.arrayContaining(['VALIDATION_FAILED', 'UNAUTHENTICATED', 'STEP_UP_REQUIRED', 'RATE_LIMITED']),
    );
    const wrong: string[] = [];
    for (const [key, operation] of operations()) {
      const errorRef = operation.responses.default?.content?.['application/json']?.schema.$ref;
      if (errorRef !== '#/components/schemas/ErrorEnvelope') wrong.push(`${key}: no error envelope`);
      const needsSession = operation.security === undefined;
      if (needsSession && operation.responses['401'] === undefined) wrong.push(`${key}: no 401`);
    }
    expect(wrong).toEqual([]);
    // The public routes say so; the rest inherit the session requirement.
    const security = (key: string) => operations().find(([candidate]) => candidate === key)?.[1].security;
    expect(security('GET /health/ready')).toEqual([]);
    expect(security('POST /api/auth/login/options')).toEqual([]);
    expect(security('GET /api/requests')).toBeUndefined();
    // Machine routes name their own credentials, and answer 401 without them.
    expect(security('GET /metrics')).toEqual([{ metrics: [] }]);
    expect(security('POST /api/introspect')).toEqual([{ client: [] }]);
    const introspect = operations().find(([key]) => key === 'POST /api/introspect')![1];
    expect(introspect.responses['401']).toBeDefined();
  });

  it('states each request body and query from the DTO rules the ValidationPipe enforces', () => {
    const byKey = new Map(operations());
    const bodyOf = (key: string) =>
      schemaNamed(byKey.get(key)?.requestBody?.content['application/json']?.schema.$ref);
    const create = bodyOf('POST /api/requests');
    // Inherited fields (ExtendRequestDto) included; optional ones not required; unknown fields refused.
    expect(create.required?.sort()).toEqual(['durationSeconds', 'entitlementId']);
    expect(create.additionalProperties).toBe(false);
    expect(create.properties?.justification).toMatchObject({ type: 'string', maxLength: 2000 });
    expect(create.properties?.durationSeconds).toMatchObject({ type: 'integer', minimum: 1 });
    // A nested DTO is a schema of its own, down to the WebAuthn assertion.
    const stepUp = schemaNamed(create.properties?.stepUp?.$ref);
    expect(stepUp.required?.sort()).toEqual(['challengeId', 'response']);
    const assertion = schemaNamed(stepUp.properties?.response?.$ref);
    expect(assertion.properties?.type?.enum).toEqual(['public-key']);
    expect(bodyOf('POST /api/step-up/challenge').properties?.action?.enum).toContain('approve');

    // Every POST states its body (the DTO's, or an empty object for the body-less ones).
    const withoutBody = operations()
      .filter(([key, operation]) => key.startsWith('POST ') && operation.requestBody === undefined)
      .map(([key]) => key);
    expect(withoutBody).toEqual([]);

    const list = byKey.get('GET /api/requests')?.parameters ?? [];
    const state = list.find((parameter) => parameter.name === 'state');
    expect(state).toMatchObject({ in: 'query', required: false });
    expect(state?.schema?.enum).toEqual(expect.arrayContaining(['PENDING', 'ACTIVE']));
    expect(byKey.get('GET /api/requests/{id}')?.parameters).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'id', in: 'path', required: true })]),
    );
  });

  it('describes what the broker actually refuses: a field the schema forbids is a 400 VALIDATION_FAILED', async () => {
    const alice = await enroll(stack, 'alice');
    const create = document.paths['/api/requests']!.post!;
    const schema = schemaNamed(create.requestBody?.content['application/json']?.schema.$ref);
    expect(schema.properties).not.toHaveProperty('approver');
    const refused = await alice.post('/api/requests', {
      entitlementId: 'api-admin-token',
      durationSeconds: 60,
      justification: 'openapi e2e',
      approver: 'alice',
    });
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe('VALIDATION_FAILED');
    const maxLength = schema.properties!.justification!.maxLength!;
    const tooLong = await alice.post('/api/requests', {
      entitlementId: 'api-admin-token',
      durationSeconds: 60,
      justification: 'x'.repeat(maxLength + 1),
    });
    expect(tooLong.status).toBe(400);
  });

  it("answers every request with its id: the proxy's X-Request-Id when it is a plain token, else a UUID", async () => {
    const forwarded = await fetch(`${stack.baseUrl}/health/live`, {
      headers: { 'x-request-id': 'proxy-7f3a9c1e.42' },
    });
    expect(forwarded.headers.get('x-request-id')).toBe('proxy-7f3a9c1e.42');
    for (const hostile of ['short', 'has spaces in it', 'x'.repeat(200), '<script>alert(1)</script>']) {
      const answer = await fetch(`${stack.baseUrl}/health/live`, { headers: { 'x-request-id': hostile } });
      expect(answer.headers.get('x-request-id')).toMatch(
        /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
      );
    }
  });

  it('serves the Swagger UI at /api/docs without a session, unframeable and running only its own scripts', async () => {
    const page = await fetch(`${stack.baseUrl}${API_DOCS_PATH}`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await page.text()).toContain('swagger-ui-init.js');
    const policy = page.headers.get('content-security-policy') ?? '';
    expect(policy).toContain("script-src 'self'");
    expect(policy).toContain("frame-ancestors 'none'");
  });
});
