import 'reflect-metadata';
import type { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { AppConfig } from '../../libs/config/config.js';
import { AppLogger } from '../../libs/logging/app-logger.js';
import { WorkerModule } from './worker.module.js';

/** Starts the worker's application context (processors begin consuming at once). */
export async function createWorker(config: AppConfig): Promise<INestApplicationContext> {
  const app = await NestFactory.createApplicationContext(WorkerModule.forRoot(config), {
    bufferLogs: true,
    abortOnError: false,
  });
  app.useLogger(app.get(AppLogger));
  // No signal hooks here: main.ts stops gracefully on SIGTERM and SIGINT (shutdown.ts).
  await app.init();
  return app;
}
