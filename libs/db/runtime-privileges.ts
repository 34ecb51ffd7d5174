import { escapeIdentifier } from 'pg';
import type { DataSource, EntityManager } from 'typeorm';

type TablePrivilege = 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE';

/**
 * What the runtime role (DATABASE_URL: broker, worker, CLI) may do, table by table; it owns nothing, so it can
 * neither alter a table nor disable a trigger. A table missing here stops `grantRuntimePrivileges`: a new table
 * gets its privileges chosen, not inherited. UPDATE also covers SELECT … FOR UPDATE/SHARE and LOCK TABLE.
 */
export const RUNTIME_PRIVILEGES: Readonly<Record<string, readonly TablePrivilege[]>> = {
  // Append-only evidence: the trigger refuses UPDATE/DELETE/TRUNCATE, and the role lacks them anyway.
  audit_events: ['SELECT', 'INSERT'],
  audit_chain_head: ['SELECT', 'UPDATE'],
  // Events committed with their state change, waiting for the chain sequencer, which deletes them as it
  // chains them (no UPDATE: a queued event is never changed).
  audit_pending: ['SELECT', 'INSERT', 'DELETE'],
  // The Merkle tree beside the chain: subtree hashes and signed checkpoints are append-only (trigger too);
  // the integrated size moves forward under the sequencer's advisory lock.
  audit_merkle_nodes: ['SELECT', 'INSERT'],
  audit_merkle_size: ['SELECT', 'UPDATE'],
  audit_tlog_checkpoints: ['SELECT', 'INSERT'],
  // Witness cosignatures of those checkpoints, as each witness returned them: append-only (trigger too).
  audit_tlog_cosignatures: ['SELECT', 'INSERT'],
  approvals: ['SELECT', 'INSERT'],
  policy_versions: ['SELECT', 'INSERT'],
  // UPDATE only for LOCK TABLE … SHARE ROW EXCLUSIVE, which serialises activations.
  policy_activations: ['SELECT', 'INSERT', 'UPDATE'],
  users: ['SELECT', 'INSERT', 'UPDATE'],
  authenticators: ['SELECT', 'INSERT', 'UPDATE'],
  enrollment_invites: ['SELECT', 'INSERT', 'UPDATE'],
  recovery_acknowledgements: ['SELECT', 'INSERT'],
  sessions: ['SELECT', 'INSERT', 'UPDATE'],
  // Spent and expired challenges are purged.
  webauthn_ceremonies: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  step_up_challenges: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  elevation_requests: ['SELECT', 'INSERT', 'UPDATE'],
  request_views: ['SELECT', 'INSERT'],
  entitlement_lockouts: ['SELECT', 'INSERT', 'UPDATE'],
  grants: ['SELECT', 'INSERT', 'UPDATE'],
  // A mint attempt's reserved grant id, or its undo still to retry; deleted once concluded (UPDATE: FOR UPDATE).
  mint_attempts: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  // The audit seq turned into notifications so far (UPDATE: FOR UPDATE), and each message sent or pending.
  notification_cursor: ['SELECT', 'UPDATE'],
  notification_deliveries: ['SELECT', 'INSERT', 'UPDATE'],
  signing_keys: ['SELECT', 'INSERT', 'UPDATE'],
  ssh_revoked_serials: ['SELECT', 'INSERT'],
  // TypeORM's bookkeeping: read at boot to check that the schema is current.
  migrations: ['SELECT'],
};

/**
 * Makes `role`'s privileges on the schema's tables exactly RUNTIME_PRIVILEGES (revoking anything else) and
 * lets it draw from the schema's sequences. Run by the owner role, after the migrations, under their lock.
 */
export async function grantRuntimePrivileges(manager: EntityManager, role: string): Promise<void> {
  const tables = (await manager.query(
    `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename`,
  )) as Array<{ tablename: string }>;
  const unlisted = tables.map((row) => row.tablename).filter((name) => !(name in RUNTIME_PRIVILEGES));
  if (unlisted.length > 0) {
    throw new Error(
      `No runtime privileges are listed for table(s) ${unlisted.join(', ')}: add them to RUNTIME_PRIVILEGES ` +
        '(libs/db/runtime-privileges.ts)',
    );
  }
  const [{ schema }] = (await manager.query('SELECT current_schema() AS schema')) as Array<{
    schema: string;
  }>;
  const grantee = escapeIdentifier(role);
  const inSchema = `IN SCHEMA ${escapeIdentifier(schema)}`;
  await manager.query(`REVOKE ALL ON ALL TABLES ${inSchema} FROM ${grantee}`);
  await manager.query(`REVOKE ALL ON ALL SEQUENCES ${inSchema} FROM ${grantee}`);
  for (const { tablename } of tables) {
    await manager.query(
      `GRANT ${RUNTIME_PRIVILEGES[tablename].join(', ')} ON TABLE ${escapeIdentifier(tablename)} TO ${grantee}`,
    );
  }
  // USAGE is nextval() only: no setval(), so a bigserial cannot be rewound.
  await manager.query(`GRANT USAGE ON ALL SEQUENCES ${inSchema} TO ${grantee}`);
}

/** Raised at boot when the database is not in the state the broker needs; the message says what to run. */
export class DatabaseSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatabaseSetupError';
  }
}

/** Refuses to go on when migrations are pending: the runtime role cannot apply them. */
export async function assertSchemaCurrent(dataSource: DataSource): Promise<void> {
  const expected = dataSource.migrations.map((migration) => migration.name ?? migration.constructor.name);
  const [{ present }] = (await dataSource.query(
    `SELECT to_regclass('migrations') IS NOT NULL AS present`,
  )) as Array<{ present: boolean }>;
  const applied = present
    ? new Set(
        ((await dataSource.query('SELECT name FROM migrations')) as Array<{ name: string }>).map(
          (row) => row.name,
        ),
      )
    : new Set<string>();
  const pending = expected.filter((name) => !applied.has(name));
  if (pending.length > 0) {
    throw new DatabaseSetupError(
      `The database schema is not current (pending: ${pending.join(', ')}). Run \`npm run migrate\` with ` +
        'MIGRATION_DATABASE_URL (the owner role), or give MIGRATION_DATABASE_URL to the broker so it migrates at boot.',
    );
  }
}

/**
 * Why the connected role is more than the runtime role should be: a superuser, a member of audit_events'
 * owner, holding UPDATE, DELETE or TRUNCATE on it (each of these can erase the audit trail), or with CREATEROLE
 * (before PostgreSQL 16 it can grant itself the owner) or CREATE on schema public or audit_events' schema
 * (objects of its own there that the owner might run). Empty when safe.
 */
export async function privilegedRoleReasons(dataSource: DataSource): Promise<string[]> {
  // Role attributes are not inherited, but a member that can SET ROLE to a role holding one has it too.
  const [row] = (await dataSource.query(`
    SELECT current_user AS role,
           EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolsuper AND pg_has_role(current_user, r.oid, 'MEMBER')) AS superuser,
           pg_has_role(current_user, c.relowner, 'MEMBER') AS owner,
           has_table_privilege(c.oid, 'UPDATE, DELETE, TRUNCATE') AS rewrites,
           EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolcreaterole AND pg_has_role(current_user, r.oid, 'MEMBER')) AS createrole,
           ARRAY(SELECT n.nspname::text FROM pg_namespace n
                  WHERE (n.nspname = 'public' OR n.oid = c.relnamespace) AND has_schema_privilege(n.oid, 'CREATE')
                  ORDER BY n.nspname) AS creates_in
      FROM pg_class c
     WHERE c.oid = to_regclass('audit_events')`)) as Array<{
    role: string;
    superuser: boolean;
    owner: boolean;
    rewrites: boolean;
    createrole: boolean;
    creates_in: string[];
  }>;
  if (row === undefined) return [];
  const reasons: string[] = [];
  if (row.superuser) reasons.push(`role ${row.role} is (or can become) a superuser`);
  if (row.owner) reasons.push(`role ${row.role} owns (or can become the owner of) audit_events`);
  if (row.rewrites) reasons.push(`role ${row.role} holds UPDATE, DELETE or TRUNCATE on audit_events`);
  if (row.createrole) reasons.push(`role ${row.role} has (or can become a role with) CREATEROLE`);
  for (const schema of row.creates_in) reasons.push(`role ${row.role} may CREATE in schema ${schema}`);
  return reasons;
}
