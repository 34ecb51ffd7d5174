import { Module, type DynamicModule } from '@nestjs/common';
import { APP_FILTER, APP_GUARD, APP_PIPE } from '@nestjs/core';
import type { AppConfig } from '../../libs/config/config.js';
import { ElevationModule } from '../../libs/elevation/elevation.module.js';
import { IdentityGuard } from './auth/identity.guard.js';
import { EntitlementsController } from './entitlements/entitlements.controller.js';
import { ErrorEnvelopeFilter } from './errors/error-envelope.filter.js';
import { createValidationPipe } from './errors/validation.js';
import { HealthController } from './health/health.controller.js';
import { RequestsController } from './requests/requests.controller.js';
import { IntrospectionService } from './tokens/introspection.service.js';
import { TokensController } from './tokens/tokens.controller.js';

/** The HTTP API (DESIGN §10). */
@Module({})
export class BrokerModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: BrokerModule,
      imports: [ElevationModule.forRoot(config, { applicationName: 'jit-broker' })],
      controllers: [HealthController, RequestsController, EntitlementsController, TokensController],
      providers: [
        IntrospectionService,
        { provide: APP_GUARD, useClass: IdentityGuard },
        { provide: APP_FILTER, useClass: ErrorEnvelopeFilter },
        { provide: APP_PIPE, useFactory: createValidationPipe },
      ],
    };
  }
}
