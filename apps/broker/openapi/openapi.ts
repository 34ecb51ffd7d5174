import type { INestApplication } from '@nestjs/common';
import { PATH_METADATA, ROUTE_ARGS_METADATA } from '@nestjs/common/constants.js';
import { RouteParamtypes } from '@nestjs/common/enums/route-paramtypes.enum.js';
import { ModulesContainer } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import {
  DocumentBuilder,
  SwaggerModule,
  type OpenAPIObject,
  type OperationObject,
  type ParameterObject,
  type PathItemObject,
  type ReferenceObject,
  type ResponsesObject,
  type SchemaObject,
} from '@nestjs/swagger';
import type { NextFunction, Request, Response } from 'express';
import { ErrorCode } from '../../../libs/domain/errors.js';
import { IS_PUBLIC } from '../auth/public.decorator.js';
import { STATUS_OF } from '../errors/error-envelope.filter.js';
import { DtoSchemas, schemaRef, type DtoClass } from './dto-schema.js';

/** Where the broker serves its API description: the Swagger UI page and the OpenAPI 3 JSON document. */
export const API_DOCS_PATH = '/api/docs';
export const API_DOCS_JSON_PATH = '/api/docs.json';

/** The session cookie (`__Host-jit_session` over https, `jit_session` on plain-http localhost). */
const SESSION_SCHEME = 'session';

/** Codes the error filter gives errors raised below the domain (body parser, router). */
const TRANSPORT_CODES = ['METHOD_NOT_ALLOWED', 'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE'];

/** The one error shape of every route (apps/broker/errors/error-envelope.filter.ts). */
const ERROR_ENVELOPE: SchemaObject = {
  type: 'object',
  required: ['error'],
  additionalProperties: false,
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      additionalProperties: false,
      properties: {
        code: {
          type: 'string',
          description: 'Stable, machine-readable; `HTTP_<status>` for statuses without a code of their own.',
          enum: [...Object.values(ErrorCode), ...TRANSPORT_CODES],
        },
        message: { type: 'string', description: 'For people; may change between versions.' },
        details: { description: 'Structured context, e.g. the failed fields of VALIDATION_FAILED.' },
      },
    },
  },
};

/** What the router knows of one handler: whether it needs a session, and the DTOs of its body and query. */
interface HandlerFacts {
  isPublic: boolean;
  body?: DtoClass | 'none';
  query?: DtoClass | 'none';
}

interface RouteArgument {
  index: number;
}

/** The body and query parameter classes of a handler, from Nest's route-argument metadata. */
function argumentsOf(controller: DtoClass, method: string): Pick<HandlerFacts, 'body' | 'query'> {
  const args = (Reflect.getMetadata(ROUTE_ARGS_METADATA, controller, method) ?? {}) as Record<
    string,
    RouteArgument
  >;
  const types = (Reflect.getMetadata('design:paramtypes', controller.prototype as object, method) ??
    []) as unknown[];
  const facts: Pick<HandlerFacts, 'body' | 'query'> = {};
  for (const [key, { index }] of Object.entries(args)) {
    const kind = Number(key.split(':')[0]);
    if (kind !== RouteParamtypes.BODY && kind !== RouteParamtypes.QUERY) continue;
    const type = types[index];
    // `unknown` with the EmptyBodyPipe: nothing may be sent.
    const dto = typeof type === 'function' && type !== Object ? (type as DtoClass) : 'none';
    facts[kind === RouteParamtypes.BODY ? 'body' : 'query'] = dto;
  }
  return facts;
}

/** Every controller handler by its OpenAPI operation id (`Controller_method`). */
function handlerFacts(app: INestApplication): Map<string, HandlerFacts> {
  const facts = new Map<string, HandlerFacts>();
  for (const module of app.get(ModulesContainer).values()) {
    for (const wrapper of module.controllers.values()) {
      const controller = wrapper.metatype as DtoClass | null;
      if (controller === null || typeof controller !== 'function') continue;
      const classPublic = Reflect.getMetadata(IS_PUBLIC, controller) === true;
      for (const method of Object.getOwnPropertyNames(controller.prototype)) {
        const handler = (controller.prototype as Record<string, unknown>)[method];
        if (typeof handler !== 'function' || Reflect.getMetadata(PATH_METADATA, handler) === undefined)
          continue;
        facts.set(`${controller.name}_${method}`, {
          isPublic: classPublic || Reflect.getMetadata(IS_PUBLIC, handler) === true,
          ...argumentsOf(controller, method),
        });
      }
    }
  }
  return facts;
}

function errorResponse(description: string): ResponsesObject[string] {
  return { description, content: { 'application/json': { schema: schemaRef('ErrorEnvelope') } } };
}

/** The codes the filter answers with `status`, for the response descriptions. */
function codesOf(status: number): string {
  return (Object.keys(STATUS_OF) as ErrorCode[]).filter((code) => STATUS_OF[code] === status).join(', ');
}

/** States one operation's request (body, query) and error shapes, and how it is authenticated. */
function describeOperation(operation: OperationObject, facts: HandlerFacts, schemas: DtoSchemas): void {
  const pathParameters = (operation.parameters ?? []).filter(
    (parameter: ParameterObject | ReferenceObject) => !('in' in parameter) || parameter.in === 'path',
  );
  const query =
    facts.query !== undefined && facts.query !== 'none' ? schemas.queryParameters(facts.query) : [];
  operation.parameters = [...pathParameters, ...query];
  if (facts.body === 'none') {
    operation.requestBody = {
      required: false,
      description: 'No fields: send nothing or `{}`.',
      content: { 'application/json': { schema: { type: 'object', additionalProperties: false } } },
    };
  } else if (facts.body !== undefined) {
    operation.requestBody = {
      required: true,
      content: { 'application/json': { schema: schemas.refFor(facts.body) } },
    };
  } else {
    delete operation.requestBody;
  }
  if (facts.isPublic && operation.security === undefined) operation.security = [];
  const responses: ResponsesObject = { ...operation.responses };
  for (const [status, response] of Object.entries(responses)) {
    if (response !== undefined && 'description' in response && response.description === '')
      response.description = SUCCESS[status] ?? 'Success.';
  }
  if (operation.parameters.length > 0 || facts.body !== undefined)
    responses['400'] = errorResponse(`Malformed input: ${codesOf(400)}.`);
  if (!facts.isPublic || operation.security?.length)
    responses['401'] = errorResponse(`Not authenticated, or a step-up that does not hold: ${codesOf(401)}.`);
  responses.default = errorResponse(
    'Any other refusal (403, 404, 409, 410, 422, 429 with Retry-After, 5xx), always in this envelope; ' +
      'the code says which (see ErrorEnvelope.error.code).',
  );
  operation.responses = responses;
}

/** Descriptions for the success statuses @nestjs/swagger leaves blank. */
const SUCCESS: Readonly<Record<string, string>> = {
  '200': 'OK.',
  '201': 'Created.',
  '202': 'Accepted: the change is committed; its effect (a revocation) follows.',
  '204': 'Done; no body.',
};

const OPERATION_METHODS = ['get', 'put', 'post', 'delete', 'patch', 'options', 'head', 'trace'] as const;

/**
 * The broker's OpenAPI 3 document: paths and path parameters from Nest's router (through @nestjs/swagger),
 * request bodies and query parameters from the DTOs' validation rules, and the error envelope on every route.
 */
export function createOpenApiDocument(app: INestApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('JIT elevation broker API')
    .setDescription(
      'Passkey-approved, short-lived privileged access. Browser calls carry the session cookie and, when ' +
        'state-changing, an allowed Origin; protected actions carry a WebAuthn step-up (`stepUp`).',
    )
    .setVersion('1')
    .addCookieAuth('jit_session', { type: 'apiKey', in: 'cookie', name: 'jit_session' }, SESSION_SCHEME)
    .addBasicAuth(
      { type: 'http', scheme: 'basic', description: 'Introspection client credentials' },
      'client',
    )
    .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'METRICS_TOKEN' }, 'metrics')
    .addSecurityRequirements(SESSION_SCHEME)
    .build();
  const document = SwaggerModule.createDocument(app, config, {
    operationIdFactory: (controller, method) => `${controller}_${method}`,
  });
  const facts = handlerFacts(app);
  const schemas = new DtoSchemas();
  for (const pathItem of Object.values(document.paths) as PathItemObject[]) {
    for (const method of OPERATION_METHODS) {
      const operation = pathItem[method];
      const handler = operation?.operationId === undefined ? undefined : facts.get(operation.operationId);
      if (operation !== undefined && handler !== undefined) describeOperation(operation, handler, schemas);
    }
  }
  document.components = {
    ...document.components,
    schemas: { ...schemas.all(), ErrorEnvelope: ERROR_ENVELOPE },
  };
  return document;
}

/** The Swagger UI page runs only its own scripts and cannot be framed (its CSS is inline). */
function docsSecurityHeaders(_request: Request, response: Response, next: NextFunction): void {
  response.setHeader(
    'Content-Security-Policy',
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
      "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  );
  next();
}

/**
 * Serves the document at /api/docs.json and the Swagger UI at /api/docs, without a session: it describes
 * the API's shapes, nothing about users or grants (API_DOCS=false turns both off).
 */
export function serveOpenApi(app: NestExpressApplication): void {
  app.use(API_DOCS_PATH, docsSecurityHeaders);
  SwaggerModule.setup(API_DOCS_PATH.slice(1), app, () => createOpenApiDocument(app), {
    jsonDocumentUrl: API_DOCS_JSON_PATH.slice(1),
    raw: ['json'],
    ui: true,
  });
}
