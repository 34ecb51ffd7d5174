import { Controller, Get, Header, Inject, Req } from '@nestjs/common';
import { ApiBearerAuth } from '@nestjs/swagger';
import type { Request } from 'express';
import { APP_CONFIG, type AppConfig } from '../../../libs/config/config.js';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import { MetricsToken } from '../../../libs/metrics/metrics-token.js';
import { Public } from '../auth/public.decorator.js';
import { MetricsService } from './metrics.service.js';

/** Prometheus scrape endpoint, behind a bearer token (METRICS_TOKEN); without one configured it stays shut. */
@Controller()
export class MetricsController {
  private readonly token: MetricsToken;

  constructor(
    private readonly metrics: MetricsService,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.token = new MetricsToken(config.metricsToken);
  }

  @Public()
  @ApiBearerAuth('metrics')
  @Get('metrics')
  @Header('Cache-Control', 'no-store')
  async scrape(@Req() request: Request): Promise<string> {
    if (!this.token.accepts(request.header('authorization'))) {
      throw new DomainError(ErrorCode.UNAUTHENTICATED, 'Metrics need the bearer token set in METRICS_TOKEN');
    }
    const body = await this.metrics.render();
    request.res?.setHeader('Content-Type', this.metrics.contentType);
    return body;
  }
}
