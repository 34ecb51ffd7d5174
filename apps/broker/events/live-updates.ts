import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { Writable } from 'node:stream';
import type { Response } from 'express';
import { Redis } from 'ioredis';
import { APP_CONFIG, type AppConfig } from '../../../libs/config/config.js';
import type { Actor } from '../../../libs/domain/actor.js';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import { canSee } from '../../../libs/domain/request-rules.js';
import { redisOptionsFromUrl } from '../../../libs/jobs/jobs.module.js';
import { requestEventsChannel, type RequestEvent } from '../../../libs/jobs/request-events.js';
import { SessionsService } from '../../../libs/identity/sessions.service.js';
import { PolicyService } from '../../../libs/policy/policy.service.js';
import { RequestWaits } from '../requests/request-waits.js';

/** A stream ends after this long; the browser reconnects through the session guard again. */
const STREAM_LIFETIME_MS = 10 * 60_000;
/** How long the browser waits before reconnecting a dropped stream. */
const RETRY_MS = 3000;
/** What a refused browser is told to wait (Retry-After) before opening another stream. */
const REFUSED_RETRY_SECONDS = 10;
/**
 * Unsent bytes a stream may hold: a client that reads slower than its events arrive (its socket buffer is
 * full) is dropped past this, rather than buffered in the broker without bound. Events are ~150 bytes.
 */
export const STREAM_BUFFER_LIMIT_BYTES = 64 * 1024;

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
    private readonly sessions: SessionsService,
    private readonly policies: PolicyService,
    private readonly waits: RequestWaits,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.subscriber = new Redis(redisOptionsFromUrl(config.redisUrl, config.redisSentinel));
    this.subscriber.on('error', (error: Error) => this.logger.warn(`Live updates: ${error.message}`));
    this.subscriber.on('message', (_channel: string, message: string) => void this.deliver(message));
    this.heartbeat = setInterval(() => void this.beat(), config.liveUpdates.heartbeatSeconds * 1000);
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
    this.checkCapacity(actor);
    response.status(200);
    response.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    response.setHeader('Cache-Control', 'no-store, no-transform');
    response.setHeader('X-Accel-Buffering', 'no');
    response.flushHeaders();
    const stream: Stream = { actor, sessionId, response };
    this.streams.add(stream);
    const lifetime = setTimeout(() => response.end(), STREAM_LIFETIME_MS);
    const forget = () => {
      clearTimeout(lifetime);
      this.streams.delete(stream);
    };
    response.on('close', forget);
    // A browser that gave up while the session was being checked has closed already: 'close' will not come.
    if (response.destroyed) return forget();
    write(response, `retry: ${RETRY_MS}\n`);
    send(response, 'hello', { serverTime: new Date().toISOString() });
  }

  /** 429 past the per-person or the per-broker cap on open streams (SSE_MAX_STREAMS_PER_USER, SSE_MAX_STREAMS). */
  private checkCapacity(actor: Actor): void {
    const { maxStreams, maxStreamsPerUser } = this.config.liveUpdates;
    const details = { retryAfterSeconds: REFUSED_RETRY_SECONDS };
    if (this.streams.size >= maxStreams) {
      throw new DomainError(
        ErrorCode.LIVE_STREAMS_FULL,
        'This broker holds as many live-update streams as it may; try again shortly',
        { ...details, limit: maxStreams },
      );
    }
    let held = 0;
    for (const stream of this.streams) if (stream.actor.id === actor.id) held += 1;
    if (held >= maxStreamsPerUser) {
      throw new DomainError(
        ErrorCode.LIVE_STREAMS_PER_USER,
        `You have ${held} live-update streams open already (tabs or windows); close one`,
        { ...details, limit: maxStreamsPerUser },
      );
    }
  }

  /** Writes one published event to every stream whose person may see the request, and wakes its waits. */
  private async deliver(message: string): Promise<void> {
    const event = parseEvent(message);
    if (event) this.waits.notify(event.requestId);
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

  /**
   * Keeps idle streams open through proxies, and ends those whose session ended, idled out or whose person
   * was suspended. The check reads the sessions without moving their idle clocks: an open tab alone never
   * keeps a session alive.
   */
  private async beat(): Promise<void> {
    // A stream whose socket is gone no longer counts towards the caps, whatever happened to its 'close'.
    for (const stream of this.streams) if (stream.response.destroyed) this.streams.delete(stream);
    if (this.streams.size === 0) return;
    const sessionIds = [...new Set([...this.streams].map((stream) => stream.sessionId))];
    try {
      const usable = await this.sessions.usableSessionIds(sessionIds);
      for (const stream of this.streams) {
        if (usable.has(stream.sessionId)) write(stream.response, ': heartbeat\n\n');
        else stream.response.end();
      }
    } catch (error) {
      this.logger.warn(`Live-update heartbeat: ${String(error)}`);
    }
  }
}

/**
 * Writes to a stream, or drops a slow client: past STREAM_BUFFER_LIMIT_BYTES unsent, the socket is
 * destroyed (the browser reconnects and refetches) so the broker never buffers without bound.
 */
export function write(response: Writable, chunk: string): void {
  if (response.destroyed || response.writableEnded) return;
  if (response.writableLength > STREAM_BUFFER_LIMIT_BYTES) {
    response.destroy();
    return;
  }
  response.write(chunk);
}

function send(response: Response, event: string, data: unknown): void {
  write(response, `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
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
