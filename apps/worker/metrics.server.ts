import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../../libs/config/config.js';
import { Metrics } from '../../libs/metrics/metrics.js';
import { MetricsToken } from '../../libs/metrics/metrics-token.js';

/**
 * The worker's scrape endpoint: `GET /metrics` on HOST:WORKER_METRICS_PORT behind the broker's METRICS_TOKEN
 * bearer check (shut without a token, as the broker's). Unset WORKER_METRICS_PORT: no endpoint at all.
 * A bare node:http server: the worker has no HTTP stack, and this is its only route.
 */
@Injectable()
export class WorkerMetricsServer implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('WorkerMetrics');
  private readonly token: MetricsToken;
  private server: Server | null = null;

  constructor(
    private readonly metrics: Metrics,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.token = new MetricsToken(config.metricsToken);
  }

  /** The port it listens on (null when off). */
  get port(): number | null {
    return (this.server?.address() as AddressInfo | null)?.port ?? null;
  }

  async onApplicationBootstrap(): Promise<void> {
    const port = this.config.workerMetricsPort;
    if (port === null) {
      this.logger.log('No metrics endpoint: WORKER_METRICS_PORT is unset');
      return;
    }
    if (!this.config.metricsToken) {
      this.logger.warn('WORKER_METRICS_PORT is set without METRICS_TOKEN: every scrape gets 401');
    }
    const server = createServer((request, response) => void this.answer(request, response));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.config.http.host, () => resolve());
    });
    this.server = server;
    this.logger.log(`Metrics on http://${this.config.http.host}:${port}/metrics`);
  }

  async onApplicationShutdown(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async answer(request: IncomingMessage, response: ServerResponse): Promise<void> {
    response.setHeader('Cache-Control', 'no-store');
    response.setHeader('X-Content-Type-Options', 'nosniff');
    const path = (request.url ?? '').split('?')[0];
    if (path !== '/metrics') return refuse(response, 404, 'NOT_FOUND', 'Only GET /metrics is served here');
    if (request.method !== 'GET' && request.method !== 'HEAD')
      return refuse(response, 405, 'METHOD_NOT_ALLOWED', 'Only GET /metrics is served here');
    if (!this.token.accepts(request.headers.authorization)) {
      return refuse(response, 401, 'UNAUTHENTICATED', 'Metrics need the bearer token set in METRICS_TOKEN');
    }
    try {
      const body = await this.metrics.registry.metrics();
      response.writeHead(200, { 'Content-Type': this.metrics.registry.contentType });
      response.end(request.method === 'HEAD' ? undefined : body);
    } catch (error) {
      this.logger.warn(`Metrics not collected: ${String(error)}`);
      refuse(response, 500, 'INTERNAL', 'Internal error');
    }
  }
}

/** The broker's error envelope, `{ error: { code, message } }`. */
function refuse(response: ServerResponse, status: number, code: string, message: string): void {
  response.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
  response.end(JSON.stringify({ error: { code, message } }));
}
