import {
  Inject,
  Injectable,
  Logger,
  type CanActivate,
  type ExecutionContext,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { Request } from 'express';
import { Redis } from 'ioredis';
import { APP_CONFIG, type AppConfig } from '../../../libs/config/config.js';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import { redisOptionsFromUrl } from '../../../libs/jobs/jobs.module.js';

const WARN_EVERY_MS = 60_000;

/**
 * Ceremonies and step-ups per client IP and window, counted in Redis so every broker instance shares the
 * count (DESIGN §2). The limit sits above what an office behind one address reaches (DESIGN §5). When Redis
 * is unreachable the limit is skipped, loudly: per-user step-up lockout lives in PostgreSQL and still holds.
 */
@Injectable()
export class IpRateLimitGuard implements CanActivate, OnApplicationShutdown {
  private readonly logger = new Logger(IpRateLimitGuard.name);
  private readonly redis: Redis;
  private lastWarning = 0;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    this.redis = new Redis({
      ...redisOptionsFromUrl(config.redisUrl),
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      lazyConnect: false,
    });
    this.redis.on('error', (error: Error) => this.warn(`Rate-limit store unavailable: ${error.message}`));
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<Request>();
    const { limit, windowSeconds } = this.config.ipRateLimit;
    // A fixed window that starts with the first attempt, timed by Redis itself (EXPIRE NX), not our clock.
    const key = `${this.config.queuePrefix}:ratelimit:ceremony:${request.ip ?? 'unknown'}`;
    let count: number;
    let ttl: number;
    try {
      const results = await this.redis.multi().incr(key).expire(key, windowSeconds, 'NX').ttl(key).exec();
      count = Number(results?.[0]?.[1] ?? 0);
      ttl = Number(results?.[2]?.[1] ?? windowSeconds);
    } catch (error) {
      this.warn(`Rate limit not applied: ${error instanceof Error ? error.message : String(error)}`);
      return true;
    }
    if (count > limit) {
      throw new DomainError(
        ErrorCode.RATE_LIMITED,
        'Too many sign-in or confirmation attempts from your address',
        {
          retryAfterSeconds: ttl,
        },
      );
    }
    return true;
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
