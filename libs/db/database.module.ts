import {
  Global,
  Inject,
  Logger,
  Module,
  type DynamicModule,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { DataSource } from 'typeorm';
import { createDataSource, prepareSchema } from './data-source.js';
import { DatabaseSetupError, privilegedRoleReasons } from './runtime-privileges.js';

/** How the broker and worker reach PostgreSQL (libs/config: DATABASE_URL, MIGRATION_DATABASE_URL). */
export interface DatabaseOptions {
  applicationName: string;
  poolSize?: number;
  /** The owner role's URL: migrations run with it at boot; without it the schema must already be current. */
  migrationUrl?: string | null;
  /** ALLOW_PRIVILEGED_DATABASE_ROLE: boot even as a role that can rewrite audit_events, with a warning. */
  allowPrivilegedRole?: boolean;
}

/** Provides the initialised DataSource, once the schema is current and the role is checked, before anything else touches it. */
@Global()
@Module({})
export class DatabaseModule implements OnApplicationShutdown {
  constructor(@Inject(DataSource) private readonly dataSource: DataSource) {}

  static forRoot(url: string, options: DatabaseOptions): DynamicModule {
    return {
      module: DatabaseModule,
      providers: [
        {
          provide: DataSource,
          useFactory: async () => {
            const dataSource = createDataSource(url, options);
            await dataSource.initialize();
            try {
              await prepareSchema(dataSource, options.migrationUrl ?? null);
              await checkRuntimeRole(dataSource, options.allowPrivilegedRole ?? false);
            } catch (error) {
              await dataSource.destroy();
              throw error;
            }
            return dataSource;
          },
        },
      ],
      exports: [DataSource],
    };
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.dataSource.isInitialized) await this.dataSource.destroy();
  }
}

/** A role that can erase the audit trail is refused, unless explicitly allowed, and then named at every boot. */
async function checkRuntimeRole(dataSource: DataSource, allowPrivilegedRole: boolean): Promise<void> {
  const reasons = await privilegedRoleReasons(dataSource);
  if (reasons.length === 0) return;
  const what = `DATABASE_URL connects as a privileged role (${reasons.join('; ')}): it could rewrite or erase the audit trail`;
  if (!allowPrivilegedRole) {
    throw new DatabaseSetupError(
      `Refusing to start: ${what}. Connect as the runtime role (README: "Database roles"), or set ` +
        'ALLOW_PRIVILEGED_DATABASE_ROLE=true knowingly.',
    );
  }
  new Logger('Database').warn(`UNSAFE: ALLOW_PRIVILEGED_DATABASE_ROLE=true: ${what}`);
}
