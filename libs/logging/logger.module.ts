import {
  Global,
  Inject,
  Module,
  RequestMethod,
  type DynamicModule,
  type MiddlewareConsumer,
  type NestModule,
} from '@nestjs/common';
import type { HttpLogger } from 'pino-http';
import type { AppConfig } from '../config/config.js';
import { AppLogger, ROOT_LOGGER } from './app-logger.js';
import { bindRequestLogger, createHttpLogger, createRootLogger } from './request-logger.js';

const HTTP_LOGGER = Symbol('HTTP_LOGGER');

/**
 * Every path, the root included (`{/*splat}`: express 5's path syntax; the missing leading slash is what makes
 * `/` match too, as nestjs-pino does).
 */
const EVERY_ROUTE = { path: '{/*splat}', method: RequestMethod.ALL };

/**
 * Structured JSON logs (pino) for the broker and the worker: Nest's own lines through `AppLogger`, and one
 * line per HTTP request (pino-http) with its id. Written here rather than taken from nestjs-pino, whose
 * releases for Nest 12 need Node 22 while we support Node 20.19 (issue 19).
 */
@Global()
@Module({})
export class LoggingModule implements NestModule {
  constructor(@Inject(HTTP_LOGGER) private readonly httpLogger: HttpLogger) {}

  static forRoot(config: AppConfig): DynamicModule {
    const root = createRootLogger(config.logLevel);
    return {
      module: LoggingModule,
      providers: [
        { provide: ROOT_LOGGER, useValue: root },
        { provide: HTTP_LOGGER, useValue: createHttpLogger(root, config.env !== 'test') },
        AppLogger,
      ],
      exports: [ROOT_LOGGER, AppLogger],
    };
  }

  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(this.httpLogger, bindRequestLogger).forRoutes(EVERY_ROUTE);
  }
}

/** The logging module for an app built from `config`. */
export function loggerModule(config: AppConfig): DynamicModule {
  return LoggingModule.forRoot(config);
}
