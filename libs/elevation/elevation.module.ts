import { Module, type DynamicModule } from '@nestjs/common';
import { auditPrivilegedRole } from '../audit/privileged-role-event.js';
import type { AppConfig } from '../config/config.js';
import { ConfigModule } from '../config/config.module.js';
import { DatabaseModule } from '../db/database.module.js';
import { JobsModule } from '../jobs/jobs.module.js';
import { KeysModule } from '../keys/keys.module.js';
import { loggerModule } from '../logging/logger.module.js';
import { ConnectorRegistry } from './connector-registry.js';
import { GrantsService } from './grants.service.js';
import { PolicyService } from '../policy/policy.service.js';
import { RequestAnnouncer } from './request-announcer.js';
import { RequestQueries } from './request-queries.js';
import { RequestSweeper } from './request-sweeper.js';
import { RequestsService } from './requests.service.js';
import { WorkloadAuthenticator } from './workload-auth.js';

const SERVICES = [
  PolicyService,
  ConnectorRegistry,
  RequestsService,
  RequestQueries,
  RequestSweeper,
  GrantsService,
  RequestAnnouncer,
  WorkloadAuthenticator,
];

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
          onPrivilegedRole: auditPrivilegedRole,
        }),
        JobsModule.forRoot({
          redisUrl: config.redisUrl,
          redisSentinel: config.redisSentinel,
          prefix: config.queuePrefix,
        }),
        KeysModule,
      ],
      providers: SERVICES,
      // KeysModule too: the apps sign and publish keys with the same SigningKeyStore the connectors use.
      exports: [...SERVICES, KeysModule],
    };
  }
}
