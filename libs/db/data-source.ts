import { DataSource } from 'typeorm';
import { ApprovalEntity } from './entities/approval.entity.js';
import { AuthenticatorEntity } from './entities/authenticator.entity.js';
import { StepUpChallengeEntity, WebauthnCeremonyEntity } from './entities/challenge.entity.js';
import { EnrollmentInviteEntity } from './entities/enrollment-invite.entity.js';
import { SessionEntity } from './entities/session.entity.js';
import { AuditChainHeadEntity, AuditEventEntity } from './entities/audit-event.entity.js';
import { ElevationRequestEntity } from './entities/elevation-request.entity.js';
import { GrantEntity } from './entities/grant.entity.js';
import { PolicyVersionEntity } from './entities/policy-version.entity.js';
import { SigningKeyEntity } from './entities/signing-key.entity.js';
import { UserEntity } from './entities/user.entity.js';
import { InitialSchema1763900000000 } from './migrations/1763900000000-initial-schema.js';
import { Identity1764000000000 } from './migrations/1764000000000-identity.js';
import { Lifecycle1764200000000 } from './migrations/1764200000000-lifecycle.js';
import { SshConnector1764100000000 } from './migrations/1764100000000-ssh-connector.js';
import { OverlapKeys1764300000000 } from './migrations/1764300000000-overlap-keys.js';
import { assertSchemaCurrent, grantRuntimePrivileges } from './runtime-privileges.js';
import { RecoveryApproval1764450000000 } from './migrations/1764450000000-recovery-approval.js';
import { WindowOpened1764500000000 } from './migrations/1764500000000-window-opened.js';
import { GrantRevoking1764600000000 } from './migrations/1764600000000-grant-revoking.js';
import { MintAttempts1764700000000 } from './migrations/1764700000000-mint-attempts.js';
import { NoticeIndex1764800000000 } from './migrations/1764800000000-notice-index.js';
import { Notifications1764900000000 } from './migrations/1764900000000-notifications.js';
import { MintUndoResend1764960000000 } from './migrations/1764960000000-mint-undo-resend.js';
import { MerkleLog1765100000000 } from './migrations/1765100000000-merkle-log.js';
import { Workloads1765150000000 } from './migrations/1765150000000-workloads.js';
import { WitnessCosignatures1765200000000 } from './migrations/1765200000000-witness-cosignatures.js';
import { AuditPending1765260000000 } from './migrations/1765260000000-audit-pending.js';

/** Every entity, listed explicitly: TypeORM glob loading does not work under ESM. */
export const ENTITIES = [
  UserEntity,
  PolicyVersionEntity,
  ElevationRequestEntity,
  ApprovalEntity,
  GrantEntity,
  AuditEventEntity,
  AuditChainHeadEntity,
  SigningKeyEntity,
  AuthenticatorEntity,
  EnrollmentInviteEntity,
  SessionEntity,
  WebauthnCeremonyEntity,
  StepUpChallengeEntity,
];

/** Every migration, in order. */
export const MIGRATIONS = [
  InitialSchema1763900000000,
  Identity1764000000000,
  SshConnector1764100000000,
  Lifecycle1764200000000,
  OverlapKeys1764300000000,
  RecoveryApproval1764450000000,
  WindowOpened1764500000000,
  GrantRevoking1764600000000,
  MintAttempts1764700000000,
  NoticeIndex1764800000000,
  Notifications1764900000000,
  MintUndoResend1764960000000,
  MerkleLog1765100000000,
  Workloads1765150000000,
  WitnessCosignatures1765200000000,
  AuditPending1765260000000,
];

/** A TypeORM data source over `pg`; schema changes only through migrations, never `synchronize`. */
export function createDataSource(url: string, options: { poolSize?: number; applicationName?: string } = {}) {
  return new DataSource({
    type: 'postgres',
    url,
    entities: ENTITIES,
    migrations: MIGRATIONS,
    synchronize: false,
    migrationsRun: false,
    // TypeORM would log failed queries with their parameters (justifications, evidence) to the console;
    // errors propagate to callers, which log them without parameters.
    logging: false,
    poolSize: options.poolSize ?? 10,
    applicationName: options.applicationName ?? 'jit-broker',
    // A pool that stays exhausted fails the waiting call after 10 s instead of hanging it forever.
    extra: { options: '-c timezone=UTC', connectionTimeoutMillis: 10_000 },
  });
}

// An arbitrary constant: the advisory-lock key that serialises migration runs across processes.
const MIGRATION_LOCK_KEY = 7_214_003_117;

/**
 * Runs pending migrations under a cluster-wide advisory lock, so broker and worker may boot together; then,
 * under the same lock (concurrent GRANTs collide), gives `runtimeRole` exactly its RUNTIME_PRIVILEGES.
 */
export async function runMigrations(
  dataSource: DataSource,
  options: { runtimeRole?: string | null } = {},
): Promise<string[]> {
  const lockRunner = dataSource.createQueryRunner();
  await lockRunner.connect();
  try {
    await lockRunner.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    const applied = await dataSource.runMigrations({ transaction: 'each' });
    const runtimeRole = options.runtimeRole;
    if (runtimeRole) {
      await dataSource.transaction(async (manager) => {
        const [{ role }] = (await manager.query('SELECT current_user AS role')) as Array<{ role: string }>;
        // One role for both is the single-URL setup, refused or warned about at boot; nothing to grant.
        if (role !== runtimeRole) await grantRuntimePrivileges(manager, runtimeRole);
      });
    }
    return applied.map((migration) => migration.name);
  } finally {
    await lockRunner.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    await lockRunner.release();
  }
}

/**
 * Readies the schema for `runtime` (a data source connected as the runtime role): with an owner URL, migrates
 * as the owner and grants the runtime role its privileges; without one, only checks that no migration is pending.
 */
export async function prepareSchema(runtime: DataSource, migrationUrl: string | null): Promise<void> {
  if (migrationUrl) {
    const [{ role }] = (await runtime.query('SELECT current_user AS role')) as Array<{ role: string }>;
    await migrateAsOwner(migrationUrl, role);
  }
  await assertSchemaCurrent(runtime);
}

/**
 * Connects as the owner (`ownerUrl`), runs pending migrations and grants `runtimeRole` (when given) its
 * privileges; returns the names applied. For `npm run migrate` and launchers that migrate before starting the
 * broker and worker, so that those never hold the owner's URL.
 */
export async function migrateAsOwner(ownerUrl: string, runtimeRole: string | null): Promise<string[]> {
  // Two connections: runMigrations holds one for its advisory lock while migrating on the other.
  const owner = createDataSource(ownerUrl, { poolSize: 2, applicationName: 'jit-migrate' });
  await owner.initialize();
  try {
    return await runMigrations(owner, { runtimeRole });
  } finally {
    await owner.destroy();
  }
}

/** The role a URL logs in as, asked of the server: the URL's user name may be an alias (a pooler's, a cloud's). */
export async function connectedRole(url: string): Promise<string> {
  const client = createDataSource(url, { poolSize: 1, applicationName: 'jit-migrate' });
  await client.initialize();
  try {
    const [{ role }] = (await client.query('SELECT current_user AS role')) as Array<{ role: string }>;
    return role;
  } finally {
    await client.destroy();
  }
}
