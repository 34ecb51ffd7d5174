import 'reflect-metadata';
import path from 'node:path';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { NextFunction, Request, Response } from 'express';
import { DataSource } from 'typeorm';
import type { AppConfig } from '../../libs/config/config.js';
import { AppLogger } from '../../libs/logging/app-logger.js';
import { Metrics } from '../../libs/metrics/metrics.js';
import { SYSTEM_ACTOR } from '../../libs/audit/audit-log.js';
import { sequencePendingAuditEvents } from '../../libs/audit/audit-sequencer.js';
import { ConnectorRegistry } from '../../libs/elevation/connector-registry.js';
import { PolicyService } from '../../libs/policy/policy.service.js';
import { BrokerModule } from './broker.module.js';
import { jsonTooDeep, MAX_JSON_DEPTH } from './errors/json-depth.js';
import { serveOpenApi } from './openapi/openapi.js';
import { httpMetrics } from './metrics/http-metrics.js';

const BODY_LIMIT = '256kb';

/** Paths the UI never answers: the API and the machine endpoints (DESIGN §10), so their 404s stay JSON. */
const NOT_UI_PATHS = /^\/(api|health|\.well-known|metrics)(\/|$)/;

/** The UI loads only its own scripts and styles and cannot be framed; invite links never leak via Referer. */
const UI_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
};

/** API answers are data, never a page: nothing may load, run or frame them, and they are never cached. */
const API_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy':
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Cache-Control': 'no-store',
};

/** body-parser `verify` hook: a body nested too deep is an exposed 400, before JSON.parse and the DTO pipes. */
function refuseDeepJson(_request: unknown, _response: unknown, raw: Buffer): void {
  if (jsonTooDeep(raw)) {
    throw Object.assign(new Error(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`), {
      status: 400,
      expose: true,
    });
  }
}

/** Builds the broker (migrations run, policy loaded) without listening; `main.ts` and the tests share it. */
export async function createBroker(config: AppConfig): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(BrokerModule.forRoot(config), {
    bufferLogs: true,
    bodyParser: false,
    abortOnError: false,
  });
  app.useLogger(app.get(AppLogger));
  app.use(httpMetrics(app.get(Metrics)));
  // Every answer, JSON and errors included, is read as the type it declares, never sniffed into HTML or a
  // script. First, so that the body parser's refusals (413, malformed JSON) carry it too.
  app.use((_request: Request, response: Response, next: NextFunction) => {
    response.setHeader('X-Content-Type-Options', 'nosniff');
    next();
  });
  // API answers carry credentials, options with challenges and personal data: never cache or frame them.
  // Before the body parser too, so that its 400 and 413 answers carry them.
  app.use('/api', (_request: Request, response: Response, next: NextFunction) => {
    response.set(API_SECURITY_HEADERS);
    next();
  });
  // Nest's typing reserves `verify` for its rawBody option, which this app does not use; express.json takes it.
  app.useBodyParser('json', {
    limit: BODY_LIMIT,
    verify: refuseDeepJson,
  } as Parameters<NestExpressApplication['useBodyParser']>[1]);
  app.useBodyParser('urlencoded', { limit: BODY_LIMIT, extended: false });
  app.disable('x-powered-by');
  app.set('trust proxy', config.trustProxy);
  serveWebUi(app, config.webDir);
  if (config.apiDocs) serveOpenApi(app);
  // No signal hooks here: main.ts drains on SIGTERM and SIGINT (shutdown.ts), SIGHUP reloads the policy.
  try {
    await prepare(app);
  } catch (error) {
    // A broker that cannot start (a policy refused at load) closes its pools and Redis clients, so an
    // in-process caller (tests, the dev stack) is not left with connections that retry for ever.
    await app.close().catch(() => undefined);
    throw error;
  }
  return app;
}

/** What must hold before the first request: leftover audit events chained, the policy loaded, keys ready. */
async function prepare(app: NestExpressApplication): Promise<void> {
  // Audit events a previous broker committed but did not live to chain (issue 22).
  await sequencePendingAuditEvents(app.get(DataSource));
  const { policy } = await app.get(PolicyService).loadFromDirectory(SYSTEM_ACTOR);
  // Load the SSH CA now, not on the first mint, where it would take a second pooled connection inside the
  // activation transaction (the jwt key is preloaded by the ConnectorRegistry itself).
  if (Object.values(policy.connectors).some((connector) => connector.type === 'ssh')) {
    await app.get(ConnectorRegistry).signingKeys.currentSshCaKey();
  }
}

/**
 * The built single-page UI from `webDir`: its files, and index.html for every other GET outside the API, so
 * that `/enroll?invite=…` and the other client-side routes load. Plain Express middleware, not a Nest
 * controller: it registers no route, and it runs before Nest's router but steps aside for NOT_UI_PATHS.
 */
function serveWebUi(app: NestExpressApplication, webDir: string): void {
  const indexFile = path.join(webDir, 'index.html');
  app.use((request: Request, response: Response, next: NextFunction) => {
    if ((request.method !== 'GET' && request.method !== 'HEAD') || NOT_UI_PATHS.test(request.path)) {
      next();
      return;
    }
    response.set(UI_SECURITY_HEADERS);
    const notFound = (message: string) => {
      response.status(404).set('Cache-Control', 'no-store').type('text/plain').send(`${message}\n`);
    };
    // A path with a file extension names a built file (`/assets/index-3f2a.js`); anything else is a page.
    if (/\.[A-Za-z0-9]+$/.test(request.path)) {
      let file: string;
      try {
        file = decodeURIComponent(request.path);
      } catch {
        notFound('Not found');
        return;
      }
      // `root` confines the lookup to webDir (a `..` is refused); Vite names assets by content hash.
      const immutable = file.startsWith('/assets/');
      response.sendFile(
        file,
        { root: webDir, dotfiles: 'deny', immutable, maxAge: immutable ? '365d' : 0 },
        (error?: Error) => {
          if (error && !response.headersSent) notFound('Not found');
        },
      );
      return;
    }
    // Always revalidated, so a new build is picked up at once.
    response.sendFile(indexFile, { headers: { 'Cache-Control': 'no-cache' } }, (error?: Error) => {
      if (!error || response.headersSent) return;
      notFound(
        (error as NodeJS.ErrnoException).code === 'ENOENT'
          ? 'The web UI is not built: run `npm run build` (or set WEB_DIR to a built UI).'
          : 'Not found',
      );
    });
  });
}
