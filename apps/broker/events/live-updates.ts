import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { Response } from 'express';
import { Redis } from 'ioredis';
import { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../../../libs/config/config.js';
import type { Actor } from '../../../libs/domain/actor.js';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import { canSee } from '../../../libs/domain/request-rules.js';
import { redisOptionsFromUrl } from '../../../libs/jobs/jobs.module.js';
import { requestEventsChannel, type RequestEvent } from '../../../libs/jobs/request-events.js';
import { PolicyService } from '../../../libs/policy/policy.service.js';

/** At most this many open streams per session (tabs of one sign-in); one more is refused with 429. */
export const MAX_STREAMS_PER_SESSION = 4;
const HEARTBEAT_MS = 15_000;
/** A stream ends after this long; the browser reconnects through the session guard again. */
const STREAM_LIFETIME_MS = 10 * 60_000;
/** How long the browser waits before reconnecting a dropped stream. */
const RETRY_MS = 3000;

interface Stream {
  actor: Actor;
  sessionId: string;
  response: Response;
}

/**
 * Live updates (GET /api/events, DESIGN §10): each broker subscribes once to the request-events channel
 * (Redis pub/sub) and writes every event to the Server-Sent Events streams of the people who may see that
 * request (canSee), so a change made through any broker or by the worker reaches every open page. Events
 * carry ids and states only; the page refetches what it shows.
 */
@Injectable()
export class LiveUpdates implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(LiveUpdates.name);
  private readonly streams = new Set<Stream>();
  private readonly subscriber: Redis;
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    private readonly dataSource: DataSource,
    private readonly policies: PolicyService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.subscriber = new Redis(redisOptionsFromUrl(config.redisUrl, config.redisSentinel));
    this.subscriber.on('error', (error: Error) => this.logger.warn(`Live updates: ${error.message}`));
    this.subscriber.on('message', (_channel: string, message: string) => void this.deliver(message));
    this.heartbeat = setInterval(() => void this.beat(), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  async onModuleInit(): Promise<void> {
    await this.subscriber.subscribe(requestEventsChannel(this.config.queuePrefix));
  }

  /** Ends every open stream (a draining broker); browsers reconnect, through the proxy, to another broker. */
  closeAllStreams(): void {
    for (const stream of this.streams) stream.response.end();
    this.streams.clear();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.heartbeat);
    this.closeAllStreams();
    await this.subscriber.quit().catch(() => this.subscriber.disconnect());
  }

  /** Opens a stream for a signed-in person: a hello with the server's clock, then their request events. */
  open(actor: Actor, sessionId: string, origin: string | undefined, response: Response): void {
    // Same-origin EventSource sends no Origin; one that names a foreign origin is refused like a POST's.
    if (origin !== undefined && !this.config.webauthn.origins.includes(origin)) {
      throw new DomainError(ErrorCode.ORIGIN_NOT_ALLOWED, `Origin ${origin} may not open live updates`);
    }
    const open = [...this.streams].filter((stream) => stream.sessionId === sessionId).length;
    if (open >= MAX_STREAMS_PER_SESSION) {
      throw new DomainError(ErrorCode.RATE_LIMITED, 'Too many live-update streams for this session');
    }
    response.status(200);
    response.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    response.setHeader('Cache-Control', 'no-store, no-transform');
    response.setHeader('X-Accel-Buffering', 'no');
    response.flushHeaders();
    const stream: Stream = { actor, sessionId, response };
    this.streams.add(stream);
    const lifetime = setTimeout(() => response.end(), STREAM_LIFETIME_MS);
    response.on('close', () => {
      clearTimeout(lifetime);
      this.streams.delete(stream);
    });
    response.write(`retry: ${RETRY_MS}\n`);
    send(response, 'hello', { serverTime: new Date().toISOString() });
  }

  /** Writes one published event to every stream whose person may see the request. */
  private async deliver(message: string): Promise<void> {
    const event = parseEvent(message);
    if (!event || this.streams.size === 0) return;
    try {
      const { policy } = await this.policies.inForce();
      const { requestId, state, grantState } = event;
      for (const stream of this.streams) {
        if (canSee(stream.actor, event, policy))
          send(stream.response, 'request', { requestId, state, grantState });
      }
    } catch (error) {
      this.logger.warn(`Could not deliver a request event: ${String(error)}`);
    }
  }

  /** Keeps idle streams open through proxies, and ends those whose session ended or timed out. */
  private async beat(): Promise<void> {
    if (this.streams.size === 0) return;
    const sessionIds = [...new Set([...this.streams].map((stream) => stream.sessionId))];
    try {
      const live = await this.liveSessions(sessionIds);
      for (const stream of this.streams) {
        if (live.has(stream.sessionId)) stream.response.write(': heartbeat\n\n');
        else stream.response.end();
      }
    } catch (error) {
      this.logger.warn(`Live-update heartbeat: ${String(error)}`);
    }
  }

  /** Which of these sessions are still usable; reading them does not move their idle clock. */
  private async liveSessions(sessionIds: string[]): Promise<Set<string>> {
    const rows = (await this.dataSource.query(
      `SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id
        WHERE s.id = ANY($1::uuid[]) AND s.ended_at IS NULL AND u.status = 'active'
          AND s.expires_at > now() AND s.last_seen_at > now() - make_interval(secs => $2)`,
      [sessionIds, this.config.sessions.idleSeconds],
    )) as Array<{ id: string }>;
    return new Set(rows.map((row) => row.id));
  }
}

function send(response: Response, event: string, data: unknown): void {
  response.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

/** A published event, or null for anything else on the channel. */
function parseEvent(message: string): RequestEvent | null {
  try {
    const value = JSON.parse(message) as Partial<RequestEvent>;
    const ok =
      typeof value.requestId === 'string' &&
      typeof value.requesterId === 'string' &&
      typeof value.entitlementId === 'string' &&
      typeof value.state === 'string';
    return ok ? (value as RequestEvent) : null;
  } catch {
    return null;
  }
}
