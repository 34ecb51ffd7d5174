import { LoggerModule } from 'nestjs-pino';
import { destination } from 'pino';
import type { AppConfig } from '../config/config.js';

/** Log lines are written to stdout in batches of this many bytes, and at least this often. */
const BATCH_BYTES = 4096;
const FLUSH_EVERY_MS = 250;

/**
 * A request log line keeps what traces a call (pino-http's id, method, URL, client address, status and
 * response time), not its headers: serialising and redacting every header was a tenth of a read's cost.
 */
const requestSerializers = {
  req: (req: { id: unknown; method: string; url: string; remoteAddress?: string }) => ({
    id: req.id,
    method: req.method,
    url: req.url,
    remoteAddress: req.remoteAddress,
  }),
  res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
};

/**
 * Structured JSON logs (pino); credentials and cookies in headers never reach them. Lines are batched
 * (one write per 4 KiB or 250 ms, not one per line) and flushed synchronously when the process exits.
 */
export function loggerModule(config: AppConfig) {
  return LoggerModule.forRoot({
    pinoHttp: [
      {
        level: config.logLevel,
        redact: ['req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]'],
        serializers: requestSerializers,
        autoLogging: config.env !== 'test',
      },
      destination({ dest: 1, minLength: BATCH_BYTES, periodicFlush: FLUSH_EVERY_MS }),
    ],
  });
}
