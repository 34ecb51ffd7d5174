import 'reflect-metadata';
import type { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DataSource } from 'typeorm';
import { chainAuditEventsAtCommit } from '../../libs/audit/audit-flush.js';
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
  // Before any job runs: a revocation or expiry becomes visible with its chained event (libs/audit/audit-flush.ts).
  chainAuditEventsAtCommit(app.get(DataSource));
  // No signal hooks here: main.ts stops gracefully on SIGTERM and SIGINT (shutdown.ts).
  await app.init();
  return app;
}
