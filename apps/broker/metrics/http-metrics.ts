import type { NextFunction, Request, Response } from 'express';
import type { Metrics } from '../../../libs/metrics/metrics.js';

/** The route label of requests that matched no route: UI files, 404s, refusals by the body parser. */
export const NO_ROUTE = '(none)';

/**
 * Express middleware timing every request into jit_http_request_duration_seconds. The route label is the
 * pattern that served it (`/api/requests/:id/approve`), never the URL, so ids do not explode the series.
 */
export function httpMetrics(metrics: Metrics) {
  return (request: Request, response: Response, next: NextFunction): void => {
    const end = metrics.httpRequestDuration.startTimer();
    response.once('finish', () => {
      const pattern = (request.route as { path?: unknown } | undefined)?.path;
      end({
        method: request.method,
        route: typeof pattern === 'string' ? pattern : NO_ROUTE,
        status: String(response.statusCode),
      });
    });
    next();
  };
}
