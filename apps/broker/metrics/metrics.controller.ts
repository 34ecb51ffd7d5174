import { createHash, timingSafeEqual } from 'node:crypto';
import { Controller, Get, Header, Inject, Req } from '@nestjs/common';
import type { Request } from 'express';
import { APP_CONFIG, type AppConfig } from '../../../libs/config/config.js';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import { Public } from '../auth/public.decorator.js';
import { MetricsService } from './metrics.service.js';
import { ApiBearerAuth } from '@nestjs/swagger';

/** Prometheus scrape endpoint, behind a bearer token (METRICS_TOKEN); without one configured it stays shut. */
@Controller()
export class MetricsController {
  private readonly expected: Buffer | null;

  constructor(
    private readonly metrics: MetricsService,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.expected = config.metricsToken ? digest(config.metricsToken) : null;
  }

  @Public()
  @ApiBearerAuth('metrics')
  @Get('metrics')
  @Header('Cache-Control', 'no-store')
  async scrape(@Req() request: Request): Promise<string> {
    const header = request.header('authorization') ?? '';
    const presented = header.startsWith('Bearer ') ? digest(header.slice('Bearer '.length)) : null;
    // Compare digests, so the comparison takes the same time whatever the presented length.
    if (!this.expected || !presented || !timingSafeEqual(this.expected, presented)) {
      throw new DomainError(ErrorCode.UNAUTHENTICATED, 'Metrics need the bearer token set in METRICS_TOKEN');
    }
    request.res?.setHeader('Content-Type', this.metrics.registry.contentType);
    return this.metrics.registry.metrics();
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
