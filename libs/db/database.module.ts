import { Global, Inject, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
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
  /**
   * Called at boot, after the warning, when an allowed privileged role is in use: the apps record it in the audit
   * trail (libs/audit cannot be imported here, it builds on libs/db).
   */
  onPrivilegedRole?: (dataSource: DataSource, privileged: PrivilegedRole) => Promise<void>;
}

/** The role DATABASE_URL connects as, and why it is more than the runtime role should be. */
export interface PrivilegedRole {
  role: string;
  reasons: string[];
  /** The process's applicationName (jit-broker, jit-worker). */
  application: string;
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
              const privileged = await checkRuntimeRole(
                dataSource,
                options.allowPrivilegedRole ?? false,
                options.applicationName,
              );
              if (privileged !== null) await options.onPrivilegedRole?.(dataSource, privileged);
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

/**
 * A role that can erase the audit trail is refused, unless explicitly allowed, and then named on stderr at every
 * boot; returns it when allowed, null when the role is the runtime role it should be.
 */
async function checkRuntimeRole(
  dataSource: DataSource,
  allowPrivilegedRole: boolean,
  applicationName: string,
): Promise<PrivilegedRole | null> {
  const reasons = await privilegedRoleReasons(dataSource);
  if (reasons.length === 0) return null;
  const what = `DATABASE_URL connects as a privileged role (${reasons.join('; ')}): it could rewrite or erase the audit trail`;
  if (!allowPrivilegedRole) {
    throw new DatabaseSetupError(
      `Refusing to start: ${what}. Connect as the runtime role (README: "Database roles"), or set ` +
        'ALLOW_PRIVILEGED_DATABASE_ROLE=true knowingly.',
    );
  }
  // Not the logger: LOG_LEVEL=error or silent would hide it.
  console.error(`UNSAFE: ALLOW_PRIVILEGED_DATABASE_ROLE=true: ${what}`);
  const [{ role }] = (await dataSource.query('SELECT current_user AS role')) as Array<{ role: string }>;
  return { role, reasons, application: applicationName };
}
