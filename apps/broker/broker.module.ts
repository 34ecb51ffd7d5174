import { Module, type DynamicModule } from '@nestjs/common';
import { APP_FILTER, APP_GUARD, APP_PIPE } from '@nestjs/core';
import type { AppConfig } from '../../libs/config/config.js';
import { ElevationModule } from '../../libs/elevation/elevation.module.js';
import { IdentityModule } from '../../libs/identity/identity.module.js';
import { MetricsModule } from '../../libs/metrics/metrics.module.js';
import { AdminController } from './admin/admin.controller.js';
import { ApprovalsController } from './approvals/approvals.controller.js';
import { AuditExportService } from './audit/audit-export.service.js';
import { AuditController } from './audit/audit.controller.js';
import { TransparencyLogController } from './audit/transparency-log.controller.js';
import { AuthController } from './auth/auth.controller.js';
import { AuthenticatorsController } from './auth/authenticators.controller.js';
import { IpRateLimitGuard } from './auth/ip-rate-limit.guard.js';
import { RateLimitStore } from './auth/rate-limit-store.js';
import { SessionGuard } from './auth/session.guard.js';
import { StepUpController } from './auth/step-up.controller.js';
import { EntitlementsController } from './entitlements/entitlements.controller.js';
import { EventsController } from './events/events.controller.js';
import { LiveUpdates } from './events/live-updates.js';
import { RequestWaits } from './requests/request-waits.js';
import { ErrorEnvelopeFilter } from './errors/error-envelope.filter.js';
import { createValidationPipe } from './errors/validation.js';
import { HealthController } from './health/health.controller.js';
import { MetricsController } from './metrics/metrics.controller.js';
import { MetricsService } from './metrics/metrics.service.js';
import { RequestsController } from './requests/requests.controller.js';
import { ClientAuthenticationService } from './tokens/client-authentication.service.js';
import { SshKrlController } from './tokens/ssh-krl.controller.js';
import { IntrospectionService } from './tokens/introspection.service.js';
import { TokensController } from './tokens/tokens.controller.js';
import { WorkloadsController } from './admin/workloads.controller.js';
import { NotificationSettingsService } from '../../libs/notify/notification-settings.service.js';
import { NotificationsController } from './notifications/notifications.controller.js';

/** The HTTP API (DESIGN §10). */
@Module({})
export class BrokerModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: BrokerModule,
      imports: [
        ElevationModule.forRoot(config, { applicationName: 'jit-broker' }),
        IdentityModule,
        MetricsModule.forRoot('broker'),
      ],
      controllers: [
        HealthController,
        AuthController,
        StepUpController,
        AuthenticatorsController,
        AdminController,
        WorkloadsController,
        RequestsController,
        ApprovalsController,
        EntitlementsController,
        TokensController,
        SshKrlController,
        MetricsController,
        AuditController,
        TransparencyLogController,
        EventsController,
        NotificationsController,
      ],
      providers: [
        AuditExportService,
        IntrospectionService,
        ClientAuthenticationService,
        RateLimitStore,
        IpRateLimitGuard,
        MetricsService,
        LiveUpdates,
        RequestWaits,
        NotificationSettingsService,
        { provide: APP_GUARD, useClass: SessionGuard },
        { provide: APP_FILTER, useClass: ErrorEnvelopeFilter },
        { provide: APP_PIPE, useFactory: createValidationPipe },
      ],
    };
  }
}
