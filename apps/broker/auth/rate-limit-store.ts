import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { Redis } from 'ioredis';
import { APP_CONFIG, type AppConfig } from '../../../libs/config/config.js';
import { redisOptionsFromUrl } from '../../../libs/jobs/jobs.module.js';

const WARN_EVERY_MS = 60_000;

/** A fixed-window counter: how many so far, and the seconds until the window ends. */
export interface WindowCount {
  count: number;
  retryAfterSeconds: number;
}

/**
 * Fixed-window counters in Redis, so every broker instance shares them (DESIGN §2); the per-IP ceremony
 * limit and the introspection failure limits count here. A window starts with its first hit and is timed by
 * Redis itself (EXPIRE NX), not our clock. When Redis is unreachable the counters answer null and callers
 * skip their limit, loudly (at most one warning a minute): the limits slow attackers, they are not the only
 * defence (step-up lockout lives in PostgreSQL; introspection secrets are long and random).
 */
@Injectable()
export class RateLimitStore implements OnApplicationShutdown {
  private readonly logger = new Logger(RateLimitStore.name);
  private readonly redis: Redis;
  private lastWarning = 0;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    this.redis = new Redis({
      ...redisOptionsFromUrl(config.redisUrl, config.redisSentinel),
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      lazyConnect: false,
    });
    this.redis.on('error', (error: Error) => this.warn(`Rate-limit store unavailable: ${error.message}`));
  }

  /**
   * Counts one more in the window of `name`; null when the store is unavailable. Compare the count it
   * returns with a limit (INCR, then compare), never a peek before it: concurrent callers each get their own
   * count, so exactly `limit` of them are within a limit of `limit`.
   */
  async hit(name: string, windowSeconds: number): Promise<WindowCount | null> {
    const key = this.key(name);
    try {
      const results = await this.redis.multi().incr(key).expire(key, windowSeconds, 'NX').ttl(key).exec();
      return {
        count: Number(results?.[0]?.[1] ?? 0),
        retryAfterSeconds: Number(results?.[2]?.[1] ?? windowSeconds),
      };
    } catch (error) {
      this.warn(`Rate limit not applied: ${error instanceof Error ? error.message : String(error)}`);
      return null;
    }
  }

  /**
   * The current count of `name` without adding to it (0 outside a window); null when unavailable. Only to
   * refuse early once a limit is reached: deciding whether an attempt is within a limit is hit's job.
   */
  async peek(name: string): Promise<WindowCount | null> {
    const key = this.key(name);
    try {
      const results = await this.redis.multi().get(key).ttl(key).exec();
      return {
        count: Number(results?.[0]?.[1] ?? 0),
        retryAfterSeconds: Number(results?.[1]?.[1] ?? 0),
      };
    } catch (error) {
      this.warn(`Rate limit not applied: ${error instanceof Error ? error.message : String(error)}`);
      return null;
    }
  }

  private key(name: string): string {
    return `${this.config.queuePrefix}:ratelimit:${name}`;
  }

  private warn(message: string): void {
    if (Date.now() - this.lastWarning < WARN_EVERY_MS) return;
    this.lastWarning = Date.now();
    this.logger.warn(message);
  }

  async onApplicationShutdown(): Promise<void> {
    this.redis.disconnect();
  }
}
