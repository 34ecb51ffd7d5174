import { Logger, type INestApplicationContext } from '@nestjs/common';

/**
 * SIGTERM and SIGINT stop the worker gracefully and exit 0: it takes no new jobs, lets the active ones finish
 * (WorkerModule.beforeApplicationShutdown), then closes Redis and the database pool. A job cut by a SIGKILL
 * is not lost either: its lock lapses and another worker takes it.
 */
export function closeOnSignals(app: INestApplicationContext): void {
  const logger = new Logger('Shutdown');
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    // Once stopping, another signal (Ctrl-C reaches the whole process group, then `npm start` sends SIGTERM)
    // changes nothing: the stop is bounded already, and SIGKILL is there for the impatient.
    if (stopping) return;
    stopping = true;
    logger.log(`${signal}: finishing active jobs`);
    app.close().then(
      () => {
        logger.log('Stopped: active jobs finished, queues and pools closed');
        process.exit(0);
      },
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
