import { createHash, createHmac, pbkdf2, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { DatabaseError, Pool, escapeIdentifier, escapeLiteral, type PoolClient } from 'pg';
import type { Connector, GrantSpec, Minted } from './connector.js';

// jit_ + 24 hex of the grant id (UUIDv7: its millisecond timestamp and the start of its random bits, so
// a DBA can find the grant from the role) + 8 random hex (two mints of one grant never collide): 37 chars.
const JIT_ROLE_NAME = /^jit_[0-9a-f]{24}_[0-9a-f]{8}$/;
const GRANTABLE_ROLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const CONNECTION_LIMIT = 10;
// One admin connection per revocation the worker runs at once (its revocation concurrency), so a batch of
// due grants is never queued behind two connections.
const ADMIN_POOL_SIZE = 8;
// 4096 is PostgreSQL's own default (scram_iterations) for SCRAM-SHA-256 verifiers.
const SCRAM_ITERATIONS = 4096;
const TERMINATE_DEADLINE_MS = 5_000;
// A terminated backend exits within a few milliseconds; only a session still there after the drop's commit
// is waited for, in short steps.
const TERMINATE_POLL_MS = 5;
const UNDEFINED_OBJECT = '42704';
const INSUFFICIENT_PRIVILEGE = '42501';
// Fixed first key of the two-key advisory lock, so our revocation locks never meet anyone else's.
const REVOKE_LOCK_CLASS = 0x6a697472; // "jitr"
// Key of the transaction-scoped lock around changes to the target database's ACL (GRANT CONNECT on mint,
// DROP OWNED on revoke): two at once update its one pg_database row and one fails with "tuple concurrently
// updated". Advisory locks are per database, so this is one lock per target database.
const DATABASE_ACL_LOCK = [0x6a697461, 0]; // "jita"

const pbkdf2Async = promisify(pbkdf2);

/** True for role names this connector generates: the only roles revoke() will ever alter or drop. */
export function isJitRoleName(name: string): boolean {
  return JIT_ROLE_NAME.test(name);
}

/**
 * How to reach the target database: a login with CREATEROLE, ADMIN OPTION on the roles the policy grants
 * (PostgreSQL 16+), CONNECT WITH GRANT OPTION on the database, and pg_signal_backend (README: "Database roles").
 */
export interface PostgresConnectorOptions {
  adminUrl: string;
  connectorName: string;
  /** The host requesters connect to, when it differs from the one the broker uses. */
  publicHost?: string;
}

/** Mints a fresh LOGIN role per grant (`VALID UNTIL notAfter`); revoke ends its sessions and drops it. */
export class PostgresConnector implements Connector {
  readonly type = 'postgres';
  private readonly pool: Pool;
  private readonly target: { host: string; port: number; database: string; sslmode: string | null };
  private closed = false;

  constructor(private readonly options: PostgresConnectorOptions) {
    this.target = parseTarget(options.adminUrl, options.connectorName, options.publicHost);
    this.pool = new Pool({
      connectionString: options.adminUrl,
      max: ADMIN_POOL_SIZE,
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 10_000,
      // Bounds the wait for another broker's revocation of the same role (advisory lock) and any stuck DDL.
      lock_timeout: 15_000,
      statement_timeout: 30_000,
      application_name: `jit-broker/${options.connectorName}`,
    });
    // An idle admin connection dropped by the server (restart, failover) must not crash the process: the
    // pool discards it and the next mint/revoke connects afresh.
    this.pool.on('error', () => {});
  }

  async mint(grant: GrantSpec): Promise<Minted> {
    const grantRoles = parseGrantRoles(grant);
    if (Number.isNaN(grant.notAfter.getTime()))
      throw new Error(`Grant ${grant.grantId}: notAfter is not a date`);
    const grantHex = grant.grantId.replaceAll('-', '').toLowerCase();
    if (!/^[0-9a-f]{32}$/.test(grantHex)) throw new Error(`Grant id "${grant.grantId}" is not a UUID`);

    const username = `jit_${grantHex.slice(0, 24)}_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(32).toString('base64url');
    const notAfter = grant.notAfter.toISOString();
    const role = escapeIdentifier(username);
    // The password goes in as a SCRAM verifier, never in clear: CREATE ROLE text can land in the server
    // log (log_statement = ddl) and in pg_stat_statements, and invariant 7 forbids that.
    const verifier = await scramSha256Verifier(password);

    await this.withClient(async (client) => {
      await inTransaction(client, async () => {
        await client.query(
          `CREATE ROLE ${role} WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS ` +
            `CONNECTION LIMIT ${CONNECTION_LIMIT} PASSWORD ${escapeLiteral(verifier)} ` +
            `VALID UNTIL ${escapeLiteral(notAfter)}`,
        );
        await client.query(
          `COMMENT ON ROLE ${role} IS ${escapeLiteral(
            `JIT grant ${grant.grantId} (request ${grant.requestId}) for ${grant.subject}, expires ${notAfter}`,
          )}`,
        );
        try {
          await client.query(`GRANT ${grantRoles.map(escapeIdentifier).join(', ')} TO ${role}`);
        } catch (error) {
          if (error instanceof DatabaseError && error.code === UNDEFINED_OBJECT) {
            throw new Error(
              `Connector "${this.options.connectorName}": ${error.message} (scope.grantRoles)`,
              {
                cause: error,
              },
            );
          }
          if (error instanceof DatabaseError && error.code === INSUFFICIENT_PRIVILEGE) {
            throw new Error(
              `Connector "${this.options.connectorName}": ${error.message}: give the connector's role ` +
                'ADMIN OPTION on each role in scope.grantRoles (README: "Database roles")',
              { cause: error },
            );
          }
          throw error;
        }
        await grantConnect(client, username, this.options.connectorName);
      });
    });

    const { host, port, database, sslmode } = this.target;
    const urlHost = host.includes(':') ? `[${host}]` : host;
    const connectionString =
      `postgresql://${encodeURIComponent(username)}:${encodeURIComponent(password)}@${urlHost}:${port}/` +
      `${encodeURIComponent(database)}${sslmode ? `?sslmode=${encodeURIComponent(sslmode)}` : ''}`;
    return {
      credential: { type: 'postgres', notAfter, host, port, database, username, password, connectionString },
      externalRef: username,
      fingerprint: createHash('sha256').update(password).digest('base64url'),
      notAfter: grant.notAfter,
    };
  }

  /** NOLOGIN, end every session, drop what the role owns, drop the role (DESIGN §7); a missing role is success. */
  async revoke(externalRef: string): Promise<void> {
    // A tampered or corrupted externalRef must never reach ALTER/DROP ROLE on a real role.
    if (!isJitRoleName(externalRef)) {
      throw new Error(`Refusing to revoke "${externalRef}": not a role this connector creates`);
    }
    await this.withClient(async (client) => {
      // Two brokers revoking the same grant would otherwise race on the role's catalog row ("tuple
      // concurrently updated"); serialised, the second simply finds the role gone.
      const lockKey = [REVOKE_LOCK_CLASS, advisoryKey(externalRef)];
      // On any error withClient discards the connection, which releases the lock with it.
      await client.query('SELECT pg_advisory_lock($1, $2)', lockKey);
      try {
        await this.dropRole(client, externalRef);
      } catch (error) {
        // Whatever failed, if the role is gone now (dropped by someone else meanwhile) the goal is reached.
        if ((await roleOid(client, externalRef)) !== undefined) throw error;
      }
      await client.query('SELECT pg_advisory_unlock($1, $2)', lockKey);
    });
  }

  /** Ends the admin pool; call once on shutdown. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  private async dropRole(client: PoolClient, name: string): Promise<void> {
    const found = await roleToDrop(client, name);
    if (!found) return;
    const role = escapeIdentifier(name);
    try {
      // NOLOGIN is committed before any session is ended: otherwise a client could reconnect between the
      // terminate and the drop and keep a session that outlives the role.
      await client.query(`ALTER ROLE ${role} NOLOGIN`);
      // Signalled, not waited for: DROP OWNED waits for any lock a terminating session still holds.
      await signalSessions(client, name, found.oid);
      // One round trip, one implicit transaction (simple query protocol; the name is escaped, no parameters).
      // DROP OWNED needs the privileges of the role: a superuser has them, a CREATEROLE login takes them
      // for this transaction only (it holds ADMIN OPTION on the roles it created), and they go with the role.
      // DROP OWNED, not REASSIGN OWNED TO the admin: handing objects the temporary user made (a SECURITY
      // DEFINER function, a view) to a superuser would turn a bounded grant into a lasting escalation.
      // It also revokes privileges granted to the role. It acts on this database only: objects the role
      // owns in another database make DROP ROLE fail (2BP01), and the revocation is retried and alerted.
      await client.query(
        `SELECT pg_advisory_xact_lock(${DATABASE_ACL_LOCK.join(', ')}); ` +
          `${found.holds ? '' : `GRANT ${role} TO CURRENT_USER; `}DROP OWNED BY ${role}; DROP ROLE IF EXISTS ${role}`,
      );
    } catch (error) {
      if (error instanceof DatabaseError && error.code === UNDEFINED_OBJECT) return;
      if (error instanceof DatabaseError && error.detail) {
        throw new Error(`Revoking role ${name}: ${error.message}: ${error.detail}`, { cause: error });
      }
      throw error;
    }
    // Every session is gone before revoke returns: the signalled ones, and a backend that passed the login
    // check just before NOLOGIN committed (visible only once it finishes starting up; its role is gone so it
    // holds no granted privileges, but it ends too).
    await terminateSessions(client, name, found.oid);
  }

  private async withClient<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      const result = await work(client);
      client.release();
      return result;
    } catch (error) {
      // Discard the connection rather than reuse one that may still hold a lock or an open transaction.
      client.release(true);
      throw error;
    }
  }
}

function parseTarget(
  adminUrl: string,
  connectorName: string,
  publicHost: string | undefined,
): { host: string; port: number; database: string; sslmode: string | null } {
  let url: URL;
  try {
    url = new URL(adminUrl);
  } catch {
    // Never echo the URL: it carries the admin password.
    throw new Error(`Connector "${connectorName}": the admin URL is not a valid postgres:// URL`);
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new Error(
      `Connector "${connectorName}": the admin URL must start with postgres:// or postgresql://`,
    );
  }
  const brokerHost = url.hostname.replace(/^\[(.*)\]$/, '$1') || url.searchParams.get('host') || 'localhost';
  return {
    host: publicHost || brokerHost,
    port: url.port ? Number(url.port) : 5432,
    // Like libpq: no database in the URL means the one named after the login.
    database: decodeURIComponent(url.pathname.slice(1)) || decodeURIComponent(url.username) || 'postgres',
    sslmode: url.searchParams.get('sslmode'),
  };
}

function parseGrantRoles(grant: GrantSpec): string[] {
  const roles = grant.scope.grantRoles;
  if (!Array.isArray(roles) || roles.length === 0) {
    throw new Error(
      `Entitlement ${grant.entitlementId}: scope.grantRoles must be a non-empty list of role names`,
    );
  }
  for (const role of roles) {
    if (typeof role !== 'string' || !GRANTABLE_ROLE_NAME.test(role)) {
      throw new Error(
        `Entitlement ${grant.entitlementId}: scope.grantRoles entry ${JSON.stringify(role)} is not a role name ` +
          `(lower-case letters, digits and _, at most 63, not starting with a digit)`,
      );
    }
    // Built-in roles such as pg_execute_server_program reach the server's operating system: never granted.
    if (role.startsWith('pg_')) {
      throw new Error(
        `Entitlement ${grant.entitlementId}: scope.grantRoles may not name built-in role ${role}`,
      );
    }
  }
  return [...new Set(roles as string[])];
}

/**
 * The login's CONNECT on this database, granted explicitly: the database should be closed to PUBLIC (the only
 * default way in), and a grant the connector may not make is only a warning in PostgreSQL, so it is checked.
 */
async function grantConnect(client: PoolClient, username: string, connectorName: string): Promise<void> {
  const { rows } = await client.query<{ database: string }>('SELECT current_database() AS database');
  const database = escapeIdentifier(rows[0].database);
  await client.query('SELECT pg_advisory_xact_lock($1, $2)', DATABASE_ACL_LOCK);
  await client.query(`GRANT CONNECT ON DATABASE ${database} TO ${escapeIdentifier(username)}`);
  const granted = await client.query<{ connect: boolean }>(
    `SELECT has_database_privilege($1, current_database(), 'CONNECT') AS connect`,
    [username],
  );
  if (!granted.rows[0].connect) {
    throw new Error(
      `Connector "${connectorName}": could not grant CONNECT on database ${database}: give the connector's role ` +
        'CONNECT WITH GRANT OPTION on it (README: "Database roles")',
    );
  }
}

/** A SCRAM-SHA-256 verifier as PostgreSQL stores it (RFC 5802/7677); the password is ASCII, so SASLprep is a no-op. */
export async function scramSha256Verifier(password: string): Promise<string> {
  const salt = randomBytes(16);
  const saltedPassword = await pbkdf2Async(password, salt, SCRAM_ITERATIONS, 32, 'sha256');
  const clientKey = createHmac('sha256', saltedPassword).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', saltedPassword).update('Server Key').digest();
  return `SCRAM-SHA-256$${SCRAM_ITERATIONS}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

function advisoryKey(roleName: string): number {
  return createHash('sha256').update(roleName).digest().readInt32BE(0);
}

async function roleOid(client: PoolClient, name: string): Promise<number | undefined> {
  return (await roleToDrop(client, name))?.oid;
}

/** The role's oid and whether the connector's login already has its privileges; null when there is none. */
async function roleToDrop(client: PoolClient, name: string): Promise<{ oid: number; holds: boolean } | null> {
  const { rows } = await client.query<{ oid: string; holds: boolean }>(
    `SELECT oid::int8 AS oid, pg_has_role(current_user, oid, 'USAGE') AS holds FROM pg_roles WHERE rolname = $1`,
    [name],
  );
  return rows[0] ? { oid: Number(rows[0].oid), holds: rows[0].holds } : null;
}

/** Signals every backend of the role to terminate; how many were signalled (each poll is its own snapshot). */
async function signalSessions(client: PoolClient, name: string, oid: number): Promise<number> {
  // By oid as well as name: once the role is dropped, pg_stat_activity shows its sessions with no usename.
  const { rowCount } = await client.query(
    `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE usesysid = $1 AND (usename = $2 OR usename IS NULL) AND pid <> pg_backend_pid()`,
    [oid, name],
  );
  return rowCount ?? 0;
}

/** Terminates the role's backends until none is left, within a deadline. */
async function terminateSessions(client: PoolClient, name: string, oid: number): Promise<void> {
  const deadline = Date.now() + TERMINATE_DEADLINE_MS;
  for (;;) {
    const left = await signalSessions(client, name, oid);
    if (left === 0) return;
    if (Date.now() > deadline) {
      throw new Error(
        `Role ${name} still has ${left} session(s) after ${TERMINATE_DEADLINE_MS} ms of terminating`,
      );
    }
    await sleep(TERMINATE_POLL_MS);
  }
}

async function inTransaction(client: PoolClient, work: () => Promise<void>): Promise<void> {
  await client.query('BEGIN');
  try {
    await work();
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}
