import { Module, type DynamicModule } from '@nestjs/common';
import type { AppConfig } from '../config/config.js';
import { ConfigModule } from '../config/config.module.js';
import { DatabaseModule } from '../db/database.module.js';
import { JobsModule } from '../jobs/jobs.module.js';
import { loggerModule } from '../logging/logger.module.js';
import { ConnectorRegistry } from './connector-registry.js';
import { PolicyService } from './policy.service.js';
import { RequestsService } from './requests.service.js';
import { RevocationService } from './revocation.service.js';

const SERVICES = [PolicyService, ConnectorRegistry, RequestsService, RevocationService];

/** The elevation core shared by broker and worker, with what it runs on: config, logs, PostgreSQL, queues. */
@Module({})
export class ElevationModule {
  static forRoot(config: AppConfig, options: { applicationName: string }): DynamicModule {
    return {
      module: ElevationModule,
      // Global: the identity services (suspension) and the apps' controllers use the elevation core.
      global: true,
      imports: [
        ConfigModule.forRoot(config),
        loggerModule(config),
        DatabaseModule.forRoot(config.databaseUrl, {
          ...options,
          migrationUrl: config.migrationDatabaseUrl,
          allowPrivilegedRole: config.allowPrivilegedDatabaseRole,
        }),
        JobsModule.forRoot({ redisUrl: config.redisUrl, prefix: config.queuePrefix }),
      ],
      providers: SERVICES,
      exports: SERVICES,
    };
  }
}
