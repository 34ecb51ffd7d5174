import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { Logger } from 'nestjs-pino';
import type { AppConfig } from '../../libs/config/config.js';
import { SYSTEM_ACTOR } from '../../libs/audit/audit-log.js';
import { PolicyService } from '../../libs/elevation/policy.service.js';
import { BrokerModule } from './broker.module.js';

const BODY_LIMIT = '256kb';

/** Builds the broker (migrations run, policy loaded) without listening; `main.ts` and the tests share it. */
export async function createBroker(config: AppConfig): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(BrokerModule.forRoot(config), {
    bufferLogs: true,
    bodyParser: false,
    abortOnError: false,
  });
  app.useLogger(app.get(Logger));
  app.useBodyParser('json', { limit: BODY_LIMIT });
  app.useBodyParser('urlencoded', { limit: BODY_LIMIT, extended: false });
  app.disable('x-powered-by');
  // API answers carry credentials, options with challenges and personal data: never cache them.
  app.use(
    '/api',
    (_request: unknown, response: { setHeader(name: string, value: string): void }, next: () => void) => {
      response.setHeader('Cache-Control', 'no-store');
      next();
    },
  );
  app.set('trust proxy', false);
  // Not SIGHUP: that reloads the policy (main.ts).
  app.enableShutdownHooks(['SIGINT', 'SIGTERM']);
  await app.get(PolicyService).loadFromDirectory(SYSTEM_ACTOR);
  return app;
}
