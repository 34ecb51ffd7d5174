import { Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { Request } from 'express';
import { APP_CONFIG, type AppConfig } from '../../../libs/config/config.js';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import { RateLimitStore } from './rate-limit-store.js';

/**
 * Ceremonies and step-ups per client IP and window, counted in Redis so every broker instance shares the
 * count (DESIGN §2). The limit sits above what an office behind one address reaches (DESIGN §5). While Redis
 * is unreachable each broker counts in its own memory (RateLimitStore), so the limit still applies.
 */
@Injectable()
export class IpRateLimitGuard implements CanActivate {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly store: RateLimitStore,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<Request>();
    const { limit, windowSeconds } = this.config.ipRateLimit;
    const counted = await this.store.hit(`ceremony:${request.ip ?? 'unknown'}`, windowSeconds);
    if (counted.count > limit) {
      throw new DomainError(
        ErrorCode.RATE_LIMITED,
        'Too many sign-in or confirmation attempts from your address',
        { retryAfterSeconds: counted.retryAfterSeconds },
      );
    }
    return true;
  }
}
