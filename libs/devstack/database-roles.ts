import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { scramSha256Verifier } from '../connectors/postgres.connector.js';
import { assertIdentifier, createDatabase, databaseUrl, withClient } from './databases.js';

// The least-privilege setup `npm start` and the e2e stack make, and README's "Database roles" tells an operator
// to make by hand: an owner role that migrates, a runtime role that the broker and worker use, and a role for
// the postgres connector on its target database. Each run gives the roles fresh passwords.

const DUPLICATE_OBJECT = '42710';
const UNIQUE_VIOLATION = '23505';

/** The broker database's two URLs: the owner's for migrations, the runtime role's for broker and worker. */
export interface BrokerDatabase {
  ownerUrl: string;
  runtimeUrl: string;
}

/**
 * Creates (or re-keys) the roles `owner` and `runtime` and database `name`, owned by `owner` and closed to
 * PUBLIC: only those two may connect. Tables a superuser created there before (an older `.data`) pass to `owner`.
 * The runtime role gets its table privileges from `npm run migrate` / the boot migration (runtime-privileges.ts).
 */
export async function createBrokerDatabase(
  adminUrl: string,
  name: string,
  roles: { owner: string; runtime: string },
): Promise<BrokerDatabase> {
  const { owner, runtime } = roles;
  const passwords = await withClient(adminUrl, async (client) => ({
    owner: await ensureLoginRole(client, owner),
    runtime: await ensureLoginRole(client, runtime),
  }));
  const adminDatabaseUrl = await createDatabase(adminUrl, name);
  await withClient(adminDatabaseUrl, async (client) => {
    const database = pg.escapeIdentifier(name);
    await client.query(`ALTER DATABASE ${database} OWNER TO ${pg.escapeIdentifier(owner)}`);
    await closeToPublic(client, name);
    await client.query(`GRANT CONNECT ON DATABASE ${database} TO ${pg.escapeIdentifier(runtime)}`);
    // PostgreSQL 15+ already keeps CREATE on public from PUBLIC and gives it to the database owner; older ones do not.
    await client.query('REVOKE CREATE ON SCHEMA public FROM PUBLIC');
    await client.query(`GRANT USAGE, CREATE ON SCHEMA public TO ${pg.escapeIdentifier(owner)}`);
    await adoptObjects(client, owner);
  });
  return {
    ownerUrl: loginUrl(adminUrl, owner, passwords.owner, name),
    runtimeUrl: loginUrl(adminUrl, runtime, passwords.runtime, name),
  };
}

/**
 * Creates (or re-keys) the postgres connector's login `name` on the database of `targetAdminUrl` and returns its
 * URL: CREATEROLE, ADMIN OPTION (without using them itself) on `grantableRoles`, CONNECT WITH GRANT OPTION on the
 * database, which is closed to PUBLIC, and pg_signal_backend to end a revoked login's sessions.
 */
export async function createConnectorRole(
  targetAdminUrl: string,
  name: string,
  grantableRoles: readonly string[],
): Promise<string> {
  for (const role of grantableRoles) assertIdentifier('role', role);
  const password = await withClient(targetAdminUrl, async (client) => {
    const secret = await ensureLoginRole(client, name, { createRole: true });
    const login = pg.escapeIdentifier(name);
    const { rows } = await client.query<{ database: string; version: number }>(
      `SELECT current_database() AS database, current_setting('server_version_num')::int AS version`,
    );
    const { database, version } = rows[0];
    await closeToPublic(client, database);
    await client.query(
      `GRANT CONNECT ON DATABASE ${pg.escapeIdentifier(database)} TO ${login} WITH GRANT OPTION`,
    );
    // PostgreSQL 16+ lets CREATEROLE grant only roles held WITH ADMIN OPTION; INHERIT/SET FALSE keep their
    // privileges from the connector itself. On 15, CREATEROLE alone grants any non-superuser role.
    const hazard = connectorRoleHazard(version, name);
    if (hazard !== null) console.error(`[devstack] ${hazard}`);
    if (version >= 160000 && grantableRoles.length > 0) {
      await client.query(
        `GRANT ${grantableRoles.map((role) => pg.escapeIdentifier(role)).join(', ')} TO ${login} ` +
          'WITH ADMIN OPTION, INHERIT FALSE, SET FALSE',
      );
    }
    await client.query(`GRANT pg_signal_backend TO ${login}`);
    return secret;
  });
  return loginUrl(targetAdminUrl, name, password, new URL(targetAdminUrl).pathname.slice(1));
}

/**
 * Why a connector role with CREATEROLE is unsafe on a server of `serverVersion` (server_version_num), or null:
 * before PostgreSQL 16 it can grant itself any non-superuser role, the broker's owner and runtime roles included.
 */
export function connectorRoleHazard(serverVersion: number, name: string): string | null {
  if (serverVersion >= 160000) return null;
  // server_version_num: major * 10000 + minor (150007 is 15.7; 90624, 9.6.24, gives 9).
  const major = Math.floor(serverVersion / 10000);
  return (
    `UNSAFE: PostgreSQL ${major} lets the CREATEROLE role ${name} grant itself any non-superuser role ` +
    '(the broker owner included); use PostgreSQL 16 or later'
  );
}

/** REVOKE CONNECT (and TEMPORARY) ON DATABASE `name` FROM PUBLIC: by default every role may connect to every database. */
export async function revokePublicConnect(adminUrl: string, name: string): Promise<void> {
  await withClient(adminUrl, (client) => closeToPublic(client, name));
}

/** Drops the login roles (after the databases that referred to them). */
export async function dropLoginRoles(adminUrl: string, names: readonly string[]): Promise<void> {
  await withClient(adminUrl, async (client) => {
    for (const name of names) {
      assertIdentifier('role', name);
      await client.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(name)}`);
    }
  });
}

/** Creates a plain LOGIN role if missing, then (re)sets its attributes and a new random password, which it returns. */
async function ensureLoginRole(
  client: pg.Client,
  name: string,
  options: { createRole?: boolean } = {},
): Promise<string> {
  assertIdentifier('role', name);
  const role = pg.escapeIdentifier(name);
  // Looked up first: a refused CREATE would print an ERROR line to `npm start`'s console on every start.
  const existing = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [name]);
  if (existing.rowCount === 0) {
    try {
      await client.query(`CREATE ROLE ${role}`);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code !== DUPLICATE_OBJECT && code !== UNIQUE_VIOLATION) throw error;
    }
  }
  const password = randomBytes(24).toString('hex');
  // A SCRAM verifier, never the password: ALTER ROLE text can reach the server log.
  await client.query(
    `ALTER ROLE ${role} WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB ${options.createRole ? 'CREATEROLE' : 'NOCREATEROLE'} ` +
      `NOREPLICATION NOBYPASSRLS PASSWORD ${pg.escapeLiteral(await scramSha256Verifier(password))}`,
  );
  return password;
}

async function closeToPublic(client: pg.Client, database: string): Promise<void> {
  await client.query(`REVOKE CONNECT, TEMPORARY ON DATABASE ${pg.escapeIdentifier(database)} FROM PUBLIC`);
}

/** Hands tables, sequences, views and functions of schema public that another role owns to `owner`. */
async function adoptObjects(client: pg.Client, owner: string): Promise<void> {
  const { rows } = await client.query<{ statement: string }>(
    `SELECT format('ALTER %s %s OWNER TO %I',
                   CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                  ELSE 'TABLE' END,
                   c.oid::regclass, $1::text) AS statement
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S') AND c.relowner <> $1::regrole
        -- A sequence owned by a column follows its table.
        AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.objid = c.oid AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
     UNION ALL
     SELECT format('ALTER FUNCTION %s OWNER TO %I', p.oid::regprocedure, $1::text)
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'public' AND p.proowner <> $1::regrole
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')`,
    [owner],
  );
  for (const { statement } of rows) await client.query(statement);
}

function loginUrl(serverUrl: string, role: string, password: string, database: string): string {
  const url = new URL(databaseUrl(serverUrl, database));
  url.username = role;
  url.password = password;
  return url.toString();
}
