// Issue 12, finding 7: least privilege in PostgreSQL. The broker and worker connect as a runtime role that can
// append to audit_events but neither rewrite it nor switch its trigger off; the postgres connector has its own
// role; a minted login reaches its target database and no other.
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { NestFactory } from '@nestjs/core';
import pg from 'pg';
import { createBroker } from '../../apps/broker/bootstrap.js';
import { PostgresConnector } from '../../libs/connectors/postgres.connector.js';
import { MIGRATIONS } from '../../libs/db/data-source.js';
import { DatabaseModule, type DatabaseOptions } from '../../libs/db/database.module.js';
import {
  createBrokerDatabase,
  createConnectorRole,
  dropLoginRoles,
} from '../../libs/devstack/database-roles.js';
import { createDatabase, databaseUrl, dropDatabase } from '../../libs/devstack/databases.js';
import { startStack, type TestStack } from '../support/stack.js';

const INSUFFICIENT_PRIVILEGE = '42501';

/** Runs `work` on one connection as `url`'s role; the client always ends. */
async function as<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** The error a statement fails with, inside a transaction that is rolled back whatever happened. */
async function refusal(client: pg.Client, statement: string): Promise<{ code?: string; message: string }> {
  await client.query('BEGIN');
  try {
    await client.query(statement);
    return { message: 'succeeded' };
  } catch (error) {
    const { code, message } = error as { code?: string; message: string };
    return { code, message };
  } finally {
    await client.query('ROLLBACK');
  }
}

/** Boots the broker's DatabaseModule alone (no Redis, no HTTP) and shuts it down again. */
async function bootDatabase(
  url: string,
  options: Omit<DatabaseOptions, 'applicationName'> = {},
): Promise<void> {
  const app = await NestFactory.createApplicationContext(
    DatabaseModule.forRoot(url, { applicationName: 'e2e-db-privileges', poolSize: 2, ...options }),
    { abortOnError: false, logger: false },
  );
  await app.close();
}

async function connectError(url: string): Promise<{ code?: string; message: string } | null> {
  try {
    await as(url, (client) => client.query('SELECT 1'));
    return null;
  } catch (error) {
    const { code, message } = error as { code?: string; message: string };
    return { code, message };
  }
}

describe('database roles (least privilege)', () => {
  const adminUrl = process.env.E2E_PG_ADMIN_URL!;
  const suffix = randomBytes(4).toString('hex');
  const targetName = `dbpriv_target_${suffix}`;
  const grantRole = `dbpriv_read_${suffix}`;
  const connectorRole = `dbpriv_connector_${suffix}`;
  const freshName = `dbpriv_fresh_${suffix}`;
  const freshRoles = { owner: `${freshName}_owner`, runtime: `${freshName}_runtime` };
  let stack: TestStack;
  let connectorUrl: string;
  let connector: PostgresConnector;
  const minted: string[] = [];

  beforeAll(async () => {
    stack = await startStack();
    const targetUrl = await createDatabase(adminUrl, targetName);
    await as(adminUrl, (client) => client.query(`CREATE ROLE ${pg.escapeIdentifier(grantRole)} NOLOGIN`));
    connectorUrl = await createConnectorRole(targetUrl, connectorRole, [grantRole]);
    connector = new PostgresConnector({ adminUrl: connectorUrl, connectorName: 'db-privileges' });
  }, 60_000);

  afterAll(async () => {
    await connector?.close();
    await stack?.close();
    await dropDatabase(adminUrl, targetName);
    await dropDatabase(adminUrl, freshName);
    // The minted roles first: the connector granted them their roles.
    await dropLoginRoles(adminUrl, [
      ...minted,
      connectorRole,
      grantRole,
      freshRoles.runtime,
      freshRoles.owner,
    ]);
  }, 60_000);

  it('the runtime role cannot rewrite, empty or unprotect audit_events', async () => {
    await as(stack.config.databaseUrl, async (client) => {
      // The append-only trigger answers 42501 too: the privilege check must refuse first, by name.
      for (const statement of [
        `UPDATE audit_events SET action = 'forged'`,
        'DELETE FROM audit_events',
        'TRUNCATE audit_events',
      ]) {
        expect({ statement, ...(await refusal(client, statement)) }).toEqual({
          statement,
          code: INSUFFICIENT_PRIVILEGE,
          message: 'permission denied for table audit_events',
        });
      }
      for (const statement of [
        'ALTER TABLE audit_events DISABLE TRIGGER ALL',
        'ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete',
        'DROP TRIGGER audit_events_no_truncate ON audit_events',
        'CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$',
      ]) {
        expect({ statement, ...(await refusal(client, statement)) }).toEqual({
          statement,
          code: INSUFFICIENT_PRIVILEGE,
          // Owner-only (or, for a function, CREATE on the schema, which it lacks too).
          message: expect.stringMatching(
            /^(must be owner of (table|relation) audit_events|permission denied for schema public)$/,
          ),
        });
      }
      expect(await refusal(client, 'SET session_replication_role = replica')).toEqual({
        code: INSUFFICIENT_PRIVILEGE,
        message: 'permission denied to set parameter "session_replication_role"',
      });
      // Events waiting for the chain sequencer are never changed in place: it deletes them as it chains them.
      for (const statement of [`UPDATE audit_pending SET action = 'forged'`, 'TRUNCATE audit_pending']) {
        expect({ statement, ...(await refusal(client, statement)) }).toEqual({
          statement,
          code: INSUFFICIENT_PRIVILEGE,
          message: 'permission denied for table audit_pending',
        });
      }
      // It can still do its job: read and append (rolled back).
      expect(await refusal(client, 'SELECT count(*) FROM audit_events')).toEqual({ message: 'succeeded' });
    });
  });

  it('the runtime role is no superuser, owns no table and cannot become one that does', async () => {
    const facts = await as(stack.config.databaseUrl, async (client) => {
      const { rows } = await client.query(`
        SELECT r.rolsuper AS superuser, r.rolcreaterole AS createrole, r.rolcreatedb AS createdb,
               r.rolbypassrls AS bypassrls,
               (SELECT count(*)::int FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'public' AND pg_has_role(current_user, c.relowner, 'MEMBER')) AS owned,
               has_schema_privilege('public', 'CREATE') AS creates_in_public
          FROM pg_roles r WHERE r.rolname = current_user`);
      return rows[0];
    });
    expect(facts).toEqual({
      superuser: false,
      createrole: false,
      createdb: false,
      bypassrls: false,
      owned: 0,
      creates_in_public: false,
    });
  });

  it('the connector role is no superuser and cannot reach audit_events', async () => {
    const brokerDatabase = new URL(stack.config.databaseUrl).pathname.slice(1);
    expect(await connectError(databaseUrl(connectorUrl, brokerDatabase))).toEqual({
      code: INSUFFICIENT_PRIVILEGE,
      message: `permission denied for database "${brokerDatabase}"`,
    });
    const { rows } = await stack.db.query(
      `SELECT r.rolsuper AS superuser,
              has_table_privilege(r.oid, 'audit_events', 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE') AS audit,
              pg_has_role(r.oid, c.relowner, 'MEMBER') AS owner
         FROM pg_roles r, pg_class c WHERE r.rolname = $1 AND c.oid = 'audit_events'::regclass`,
      [connectorRole],
    );
    expect(rows[0]).toEqual({ superuser: false, audit: false, owner: false });
  });

  it('a minted login connects to its target database and to no other', async () => {
    const grant = await connector.mint({
      grantId: randomUUID(),
      requestId: randomUUID(),
      subject: 'carol',
      entitlementId: 'db-privileges',
      scope: { grantRoles: [grantRole] },
      notAfter: new Date(Date.now() + 600_000),
    });
    minted.push(grant.externalRef);
    const loginUrl = String(grant.credential.connectionString);
    expect(await connectError(loginUrl)).toBeNull();
    const brokerDatabase = new URL(stack.config.databaseUrl).pathname.slice(1);
    for (const database of [brokerDatabase, 'postgres', 'template1']) {
      expect({ database, error: await connectError(databaseUrl(loginUrl, database)) }).toEqual({
        database,
        error: {
          code: INSUFFICIENT_PRIVILEGE,
          message: `permission denied for database "${database}"`,
        },
      });
    }
    await connector.revoke(grant.externalRef);
  });

  it('the stack migrates before boot: the broker gets no owner URL, and its role cannot SET ROLE to the owner', async () => {
    expect(stack.config.migrationDatabaseUrl).toBeNull();
    const ownerRole = decodeURIComponent(new URL(stack.ownerUrl).username);
    const runtimeRole = decodeURIComponent(new URL(stack.config.databaseUrl).username);
    await as(stack.config.databaseUrl, async (client) => {
      expect(await refusal(client, `SET ROLE ${pg.escapeIdentifier(ownerRole)}`)).toEqual({
        code: INSUFFICIENT_PRIVILEGE,
        message: `permission denied to set role "${ownerRole}"`,
      });
    });
    const { rows } = await stack.db.query(
      `SELECT pg_has_role($1, $2, 'MEMBER') AS member, pg_has_role($1, $2, 'SET') AS can_set`,
      [runtimeRole, ownerRole],
    );
    expect(rows[0]).toEqual({ member: false, can_set: false });
  });

  it('refuses to boot as a runtime role with CREATEROLE or CREATE on schema public', async () => {
    const runtimeRole = decodeURIComponent(new URL(stack.config.databaseUrl).username);
    const role = pg.escapeIdentifier(runtimeRole);
    try {
      await stack.db.query(`ALTER ROLE ${role} CREATEROLE`);
      await expect(bootDatabase(stack.config.databaseUrl)).rejects.toThrow(
        `Refusing to start: DATABASE_URL connects as a privileged role (role ${runtimeRole} has (or can become a role with) CREATEROLE)`,
      );
      await stack.db.query(`ALTER ROLE ${role} NOCREATEROLE`);
      await stack.db.query(`GRANT CREATE ON SCHEMA public TO ${role}`);
      await expect(bootDatabase(stack.config.databaseUrl)).rejects.toThrow(
        `Refusing to start: DATABASE_URL connects as a privileged role (role ${runtimeRole} may CREATE in schema public)`,
      );
    } finally {
      await stack.db.query(`ALTER ROLE ${role} NOCREATEROLE`);
      await stack.db.query(`REVOKE CREATE ON SCHEMA public FROM ${role}`);
    }
    await expect(bootDatabase(stack.config.databaseUrl)).resolves.toBeUndefined();
  });

  it('ALLOW_PRIVILEGED_DATABASE_ROLE=true: boots, prints UNSAFE on stderr whatever LOG_LEVEL, and audits it', async () => {
    const ownerRole = decodeURIComponent(new URL(stack.ownerUrl).username);
    const stderr = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      const broker = await createBroker({
        ...stack.config,
        databaseUrl: stack.ownerUrl,
        allowPrivilegedDatabaseRole: true,
        logLevel: 'error',
      });
      await broker.close();
      expect(stderr.mock.calls.map((call) => String(call[0]))).toContainEqual(
        expect.stringMatching(
          `^UNSAFE: ALLOW_PRIVILEGED_DATABASE_ROLE=true: DATABASE_URL connects as a privileged role \\(role ${ownerRole} owns`,
        ),
      );
    } finally {
      stderr.mockRestore();
    }
    const { rows } = await stack.db.query(
      `SELECT actor_id AS "actorId", subject_type AS "subjectType", subject_id AS "subjectId", data
         FROM audit_events WHERE action = 'database.privileged-role'`,
    );
    expect(rows).toEqual([
      {
        actorId: 'system',
        subjectType: 'database-role',
        subjectId: ownerRole,
        data: {
          alert: true,
          application: 'jit-broker',
          reasons: [
            `role ${ownerRole} owns (or can become the owner of) audit_events`,
            `role ${ownerRole} holds UPDATE, DELETE or TRUNCATE on audit_events`,
            `role ${ownerRole} may CREATE in schema public`,
          ],
        },
      },
    ]);
  });

  it('refuses to boot as a superuser or the owner unless ALLOW_PRIVILEGED_DATABASE_ROLE=true', async () => {
    const brokerDatabase = new URL(stack.config.databaseUrl).pathname.slice(1);
    const superuserUrl = databaseUrl(adminUrl, brokerDatabase);
    const ownerUrl = stack.ownerUrl;
    const ownerRole = decodeURIComponent(new URL(ownerUrl).username);
    const superuser = decodeURIComponent(new URL(adminUrl).username);
    await expect(bootDatabase(superuserUrl)).rejects.toThrow(
      `Refusing to start: DATABASE_URL connects as a privileged role (role ${superuser} is (or can become) a superuser;`,
    );
    await expect(bootDatabase(ownerUrl)).rejects.toThrow(
      `Refusing to start: DATABASE_URL connects as a privileged role (role ${ownerRole} owns (or can become the owner of) audit_events; ` +
        `role ${ownerRole} holds UPDATE, DELETE or TRUNCATE on audit_events; role ${ownerRole} may CREATE in schema public)`,
    );
    // Explicitly allowed, it boots (with the warning the test above checks).
    const stderr = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      await expect(bootDatabase(ownerUrl, { allowPrivilegedRole: true })).resolves.toBeUndefined();
      expect(stderr).toHaveBeenCalledTimes(1);
    } finally {
      stderr.mockRestore();
    }
    await expect(bootDatabase(stack.config.databaseUrl)).resolves.toBeUndefined();
  });

  it('a stack that opts in (migrateAtBoot) hands the broker the owner URL, and the broker migrates at boot', async () => {
    const migrating = await startStack({ migrateAtBoot: true, worker: false });
    try {
      expect(migrating.config.migrationDatabaseUrl).toBe(migrating.ownerUrl);
      const { rows } = await migrating.db.query('SELECT name FROM migrations ORDER BY id');
      expect(rows.map((row) => row.name)).toEqual(MIGRATIONS.map((migration) => migration.name));
    } finally {
      await migrating.close();
    }
  }, 60_000);

  it('without an owner URL, refuses to boot on a schema that is not current; with one, migrates and grants', async () => {
    const fresh = await createBrokerDatabase(adminUrl, freshName, freshRoles);
    await expect(bootDatabase(fresh.runtimeUrl)).rejects.toThrow(
      /^The database schema is not current \(pending: InitialSchema1763900000000, .*\)\. Run `npm run migrate` with MIGRATION_DATABASE_URL/,
    );
    await expect(bootDatabase(fresh.runtimeUrl, { migrationUrl: fresh.ownerUrl })).resolves.toBeUndefined();
    await expect(bootDatabase(fresh.runtimeUrl)).resolves.toBeUndefined();
    const privileges = await as(fresh.runtimeUrl, async (client) => {
      const { rows } = await client.query(
        `SELECT has_table_privilege('audit_events', 'SELECT') AS reads,
                has_table_privilege('audit_events', 'INSERT') AS appends,
                has_table_privilege('audit_events', 'UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER') AS more`,
      );
      return rows[0];
    });
    expect(privileges).toEqual({ reads: true, appends: true, more: false });
  });
});
