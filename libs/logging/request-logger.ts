import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { destination, pino, type DestinationStream, type Logger } from 'pino';
import { pinoHttp, type HttpLogger } from 'pino-http';

/** Log lines are written to stdout in batches of this many bytes, and at least this often. */
const BATCH_BYTES = 4096;
const FLUSH_EVERY_MS = 250;

/** An `X-Request-Id` from the proxy is kept when it is this plain (no log or header injection), else ours. */
const FORWARDED_REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;

/** The logger of the request being served, so that every line logged while serving it carries its id. */
const requestScope = new AsyncLocalStorage<Logger>();

let stdout: DestinationStream | undefined;

/**
 * One batched stdout stream per process (one write per 4 KiB or 250 ms, not one per line), flushed
 * synchronously when the process exits; every app built in the process (the tests build many) shares it.
 */
function stdoutStream(): DestinationStream {
  stdout ??= destination({ dest: 1, minLength: BATCH_BYTES, periodicFlush: FLUSH_EVERY_MS });
  return stdout;
}

/** The process's JSON logger: credentials and cookies in headers never reach it. */
export function createRootLogger(level: string): Logger {
  return pino(
    {
      level,
      redact: ['req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]'],
    },
    stdoutStream(),
  );
}

/** The logger for the current request, or `root` outside one. */
export function currentLogger(root: Logger): Logger {
  return requestScope.getStore() ?? root;
}

/**
 * A request log line keeps what traces a call (the request id, method, URL, client address, status and
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

/** The proxy's request id when it is a plain token, else a fresh UUID; echoed in `X-Request-Id`. */
function requestId(request: IncomingMessage, response: ServerResponse): string {
  const forwarded = request.headers['x-request-id'];
  const id = typeof forwarded === 'string' && FORWARDED_REQUEST_ID.test(forwarded) ? forwarded : randomUUID();
  response.setHeader('X-Request-Id', id);
  return id;
}

/** pino-http's middleware (one line per finished request, at info, unless `logRequests` is off). */
export function createHttpLogger(root: Logger, logRequests: boolean): HttpLogger {
  return pinoHttp({
    logger: root,
    serializers: requestSerializers,
    autoLogging: logRequests,
    genReqId: requestId,
  });
}

/** Express middleware, after the HTTP logger: runs the rest of the request inside its logger's scope. */
export function bindRequestLogger(
  request: IncomingMessage & { log?: Logger },
  _response: unknown,
  next: () => void,
): void {
  if (request.log === undefined) {
    next();
    return;
  }
  requestScope.run(request.log, next);
}
