import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { Redis } from 'ioredis';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { withDeadline } from '../deadline/deadline.js';
import { redisOptionsFromUrl } from './jobs.module.js';

const PUBLISH_TIMEOUT_MS = 2000;

/**
 * A committed change to a request or its grant, as every broker's live-update stream (GET /api/events)
 * receives it: ids and states only, never a credential. The visibility facts let a broker decide who may
 * hear of it without a query; the page refetches what it shows.
 */
export interface RequestEvent {
  requestId: string;
  requesterId: string;
  entitlementId: string;
  breakGlass: boolean;
  state: string;
  /** The state of the request's latest grant, null before activation. */
  grantState: string | null;
}

/** The Redis pub/sub channel of request events, under the deployment's queue prefix. */
export function requestEventsChannel(prefix: string): string {
  return `${prefix}:request-events`;
}

/**
 * Publishes committed request changes to Redis (one message per change), so that whichever broker holds a
 * person's stream delivers it. A lost message only delays a page until its next refetch (pages refetch on
 * reconnect and fall back to polling), so a failure is the caller's to log, never to retry; commands never
 * wait on an unreachable Redis (no offline queue, no retries, a deadline).
 */
@Injectable()
export class RequestEventPublisher implements OnApplicationShutdown {
  private readonly redis: Redis;
  private readonly channel: string;

  constructor(@Inject(APP_CONFIG) config: Pick<AppConfig, 'queuePrefix' | 'redisUrl' | 'redisSentinel'>) {
    this.channel = requestEventsChannel(config.queuePrefix);
    this.redis = new Redis({
      ...redisOptionsFromUrl(config.redisUrl, config.redisSentinel),
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
    });
    // Errors surface where publish() is called; the connection itself retries in the background.
    this.redis.on('error', () => undefined);
  }

  /** Publishes each event on the request-events channel. */
  async publish(events: readonly RequestEvent[]): Promise<void> {
    if (events.length === 0) return;
    const publishing = Promise.all(
      events.map((event) => this.redis.publish(this.channel, JSON.stringify(event))),
    );
    await withDeadline(publishing, PUBLISH_TIMEOUT_MS, 'Redis did not accept the request events in time');
  }

  async onApplicationShutdown(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
