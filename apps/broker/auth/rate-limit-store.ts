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
 * Fixed windows counted in this process: the fallback while Redis is unreachable, so that a limit never
 * silently vanishes. Each broker then counts alone (N brokers let N times the limit through) and a window
 * starts again when Redis returns; at most MAX_LOCAL_WINDOWS names are kept, the oldest dropped first (which
 * only resets that window, as a Redis flush would).
 */
export class LocalWindows {
  private readonly windows = new Map<string, { count: number; endsAt: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  hit(name: string, windowSeconds: number): WindowCount {
    const now = this.now();
    let window = this.windows.get(name);
    if (!window || window.endsAt <= now) {
      this.windows.delete(name);
      if (this.windows.size >= MAX_LOCAL_WINDOWS) this.dropOldest(now);
      window = { count: 0, endsAt: now + windowSeconds * 1000 };
      this.windows.set(name, window);
    }
    window.count += 1;
    return { count: window.count, retryAfterSeconds: Math.ceil((window.endsAt - now) / 1000) };
  }

  peek(name: string): WindowCount {
    const now = this.now();
    const window = this.windows.get(name);
    if (!window || window.endsAt <= now) return { count: 0, retryAfterSeconds: 0 };
    return { count: window.count, retryAfterSeconds: Math.ceil((window.endsAt - now) / 1000) };
  }

  /** Expired windows first; if none expired, the oldest. */
  private dropOldest(now: number): void {
    for (const [name, window] of this.windows) if (window.endsAt <= now) this.windows.delete(name);
    if (this.windows.size >= MAX_LOCAL_WINDOWS) this.windows.delete(this.windows.keys().next().value!);
  }
}

const MAX_LOCAL_WINDOWS = 100_000;

/**
 * Fixed-window counters in Redis, so every broker instance shares them (DESIGN §2); the per-IP ceremony
 * limit and the introspection failure limits count here. A window starts with its first hit and is timed by
 * Redis itself (EXPIRE NX), not our clock. When Redis is unreachable the counts come from this process
 * (LocalWindows), loudly (at most one warning a minute): the limits still apply, per broker.
 */
@Injectable()
export class RateLimitStore implements OnApplicationShutdown {
  private readonly logger = new Logger(RateLimitStore.name);
  private readonly redis: Redis;
  private readonly local = new LocalWindows();
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
   * Counts one more in the window of `name` (in this process while Redis is unavailable). Compare the count it
   * returns with a limit (INCR, then compare), never a peek before it: concurrent callers each get their own
   * count, so exactly `limit` of them are within a limit of `limit`.
   */
  async hit(name: string, windowSeconds: number): Promise<WindowCount> {
    const key = this.key(name);
    try {
      const results = await this.redis.multi().incr(key).expire(key, windowSeconds, 'NX').ttl(key).exec();
      return {
        count: Number(results?.[0]?.[1] ?? 0),
        retryAfterSeconds: Number(results?.[2]?.[1] ?? windowSeconds),
      };
    } catch (error) {
      this.warn(
        `Rate limit counted in this process: ${error instanceof Error ? error.message : String(error)}`,
      );
      return this.local.hit(name, windowSeconds);
    }
  }

  /**
   * The current count of `name` without adding to it (0 outside a window). Only to
   * refuse early once a limit is reached: deciding whether an attempt is within a limit is hit's job.
   */
  async peek(name: string): Promise<WindowCount> {
    const key = this.key(name);
    try {
      const results = await this.redis.multi().get(key).ttl(key).exec();
      return {
        count: Number(results?.[0]?.[1] ?? 0),
        retryAfterSeconds: Number(results?.[1]?.[1] ?? 0),
      };
    } catch (error) {
      this.warn(
        `Rate limit counted in this process: ${error instanceof Error ? error.message : String(error)}`,
      );
      return this.local.peek(name);
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
