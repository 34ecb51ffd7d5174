import type { Server } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { Logger } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { LiveUpdates } from './events/live-updates.js';

const IDLE_SWEEP_MS = 100;

/**
 * Graceful stop: refuse new connections, end the live-update streams, let in-flight requests finish for at
 * most `graceMs` (each keep-alive connection is closed as soon as it goes idle), then cut what remains and
 * close the application (queues, Redis, the database pool), in that order, so that no request that was
 * accepted meets a closed pool.
 */
export async function drainAndClose(app: NestExpressApplication, graceMs: number): Promise<void> {
  const logger = new Logger('Shutdown');
  const server = app.getHttpServer() as Server;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  app.get(LiveUpdates).closeAllStreams();
  const deadline = Date.now() + graceMs;
  let drained = false;
  void closed.then(() => (drained = true));
  while (!drained && Date.now() < deadline) {
    server.closeIdleConnections();
    await Promise.race([closed, delay(IDLE_SWEEP_MS)]);
  }
  if (!drained) {
    logger.warn(`In-flight requests still open after SHUTDOWN_GRACE_MS=${graceMs}: closing them`);
    server.closeAllConnections();
    await closed;
  }
  await app.close();
  logger.log('Stopped: connections drained, queues and pools closed');
}

/** SIGTERM and SIGINT drain and exit 0 (exit 1 if closing failed); the stop is bounded by `graceMs`. */
export function closeOnSignals(app: NestExpressApplication, graceMs: number): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    // Once stopping, another signal (Ctrl-C reaches the whole process group, then `npm start` sends SIGTERM)
    // changes nothing: the stop is bounded already, and SIGKILL is there for the impatient.
    if (stopping) return;
    stopping = true;
    new Logger('Shutdown').log(`${signal}: draining (at most ${graceMs} ms)`);
    drainAndClose(app, graceMs).then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
