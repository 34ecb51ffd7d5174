import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import type { GrantSpec, Minted } from '../../libs/connectors/connector.js';
import { PostgresConnector, isJitRoleName } from '../../libs/connectors/postgres.connector.js';
import { createConnectorRole } from '../../libs/devstack/database-roles.js';

// Real PostgreSQL, no mocks: the connector's whole point is what the server does with its statements.
const serverUrl = process.env.E2E_PG_ADMIN_URL ?? process.env.TEST_DATABASE_URL;
const suffix = randomBytes(4).toString('hex');
const databaseName = `pgconn_${suffix}`;
// Roles are cluster-wide: unique names per run, dropped in afterAll.
const readRole = `app_read_${suffix}`;
const writeRole = `app_write_${suffix}`;
// The connector logs in as its own least-privilege role (README: "Database roles"), as `npm start` sets it up.
const connectorRole = `pgconn_connector_${suffix}`;
// A role that exists but was not handed to the connector: the policy cannot make it grant that.
const otherRole = `pgconn_other_${suffix}`;

let serverAdmin: pg.Client;
let targetAdmin: pg.Client;
let connector: PostgresConnector;
let targetUrl: string;
let connectorUrl: string;
const openClients: pg.Client[] = [];
const mintedRoles: string[] = [];

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

function grantSpec(grantRoles: unknown, notAfter = new Date(Math.floor(Date.now() / 1000) * 1000 + 600_000)) {
  return {
    grantId: randomUUID(),
    requestId: randomUUID(),
    subject: 'carol',
    entitlementId: 'test-db-read',
    scope: { grantRoles },
    notAfter,
  } satisfies GrantSpec;
}

async function mint(grantRoles: unknown): Promise<{ grant: GrantSpec; minted: Minted }> {
  const grant = grantSpec(grantRoles);
  const minted = await connector.mint(grant);
  mintedRoles.push(minted.externalRef);
  return { grant, minted };
}

/** A client logged in with the minted credential; tracked so afterAll ends it whatever happened. */
async function login(minted: Minted): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: String(minted.credential.connectionString) });
  // A server-terminated idle session emits 'error'; unhandled, that would crash the test process.
  client.on('error', () => {});
  openClients.push(client);
  await client.connect();
  return client;
}

async function roleRow(name: string) {
  const { rows } = await serverAdmin.query(
    `SELECT oid::int8 AS oid, rolcanlogin, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolreplication,
            rolbypassrls, rolconnlimit, rolvaliduntil FROM pg_roles WHERE rolname = $1`,
    [name],
  );
  return rows[0] as
    | {
        oid: string;
        rolcanlogin: boolean;
        rolsuper: boolean;
        rolinherit: boolean;
        rolcreaterole: boolean;
        rolcreatedb: boolean;
        rolreplication: boolean;
        rolbypassrls: boolean;
        rolconnlimit: number;
        rolvaliduntil: Date | null;
      }
    | undefined;
}

async function sessionsOf(oid: string): Promise<number> {
  const { rows } = await serverAdmin.query(
    'SELECT count(*)::int AS n FROM pg_stat_activity WHERE usesysid = $1',
    [oid],
  );
  return rows[0].n as number;
}

describe('PostgresConnector against real PostgreSQL', () => {
  beforeAll(async () => {
    if (!serverUrl) throw new Error('Set E2E_PG_ADMIN_URL (from the e2e global setup) or TEST_DATABASE_URL');
    serverAdmin = new pg.Client({ connectionString: serverUrl });
    await serverAdmin.connect();
    await serverAdmin.query(`CREATE DATABASE ${pg.escapeIdentifier(databaseName)}`);
    await serverAdmin.query(`CREATE ROLE ${pg.escapeIdentifier(readRole)} NOLOGIN`);
    await serverAdmin.query(`CREATE ROLE ${pg.escapeIdentifier(writeRole)} NOLOGIN`);
    await serverAdmin.query(`CREATE ROLE ${pg.escapeIdentifier(otherRole)} NOLOGIN`);

    targetUrl = withDatabase(serverUrl, databaseName);
    targetAdmin = new pg.Client({ connectionString: targetUrl });
    await targetAdmin.connect();
    await targetAdmin.query('CREATE TABLE widgets (id int PRIMARY KEY, name text NOT NULL)');
    await targetAdmin.query("INSERT INTO widgets VALUES (1, 'sprocket'), (2, 'flange')");
    await targetAdmin.query(`GRANT SELECT ON widgets TO ${pg.escapeIdentifier(readRole)}`);
    // The write role may create objects, so a test can check what revoke does with what the user built.
    await targetAdmin.query(`GRANT CREATE ON SCHEMA public TO ${pg.escapeIdentifier(writeRole)}`);

    connectorUrl = await createConnectorRole(targetUrl, connectorRole, [readRole, writeRole]);
    connector = new PostgresConnector({ adminUrl: connectorUrl, connectorName: 'e2e-postgres' });
  }, 60_000);

  afterAll(async () => {
    for (const client of openClients) await client.end().catch(() => {});
    await connector?.close();
    await targetAdmin?.end();
    if (!serverAdmin) return;
    await serverAdmin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(databaseName)} WITH (FORCE)`);
    // Whatever a failed test left behind; the database (and every privilege in it) is gone already.
    // The minted roles before the connector's: it granted them their roles.
    for (const role of [...mintedRoles, connectorRole, readRole, writeRole, otherRole]) {
      await serverAdmin.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(role)}`);
    }
    await serverAdmin.end();
  }, 60_000);

  it('mints a login that can SELECT what the scoped role grants and nothing more', async () => {
    const { grant, minted } = await mint([readRole]);
    const credential = minted.credential;
    const target = new URL(withDatabase(serverUrl!, databaseName));

    expect(credential).toMatchObject({
      type: 'postgres',
      notAfter: grant.notAfter.toISOString(),
      host: target.hostname,
      port: Number(target.port || 5432),
      database: databaseName,
      username: minted.externalRef,
    });
    expect(minted.notAfter).toEqual(grant.notAfter);
    expect(isJitRoleName(minted.externalRef)).toBe(true);
    expect(minted.externalRef.startsWith(`jit_${grant.grantId.replaceAll('-', '').slice(0, 24)}_`)).toBe(
      true,
    );
    expect(minted.externalRef.length).toBeLessThanOrEqual(63);
    expect(minted.fingerprint).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(minted.fingerprint).not.toContain(String(credential.password));

    const client = await login(minted);
    const { rows } = await client.query('SELECT name FROM widgets ORDER BY id');
    expect(rows.map((row) => row.name)).toEqual(['sprocket', 'flange']);
    await expect(client.query("INSERT INTO widgets VALUES (3, 'gear')")).rejects.toMatchObject({
      code: '42501',
    });
    await client.end();
  });

  it('creates the role with VALID UNTIL = notAfter and no powers of its own', async () => {
    const { grant, minted } = await mint([readRole]);
    const role = await roleRow(minted.externalRef);
    expect(role).toMatchObject({
      rolcanlogin: true,
      rolsuper: false,
      rolinherit: true,
      rolcreaterole: false,
      rolcreatedb: false,
      rolreplication: false,
      rolbypassrls: false,
      rolconnlimit: 10,
    });
    expect(role?.rolvaliduntil?.getTime()).toBe(grant.notAfter.getTime());
  });

  it('stores only a SCRAM verifier, never the password itself', async () => {
    const { minted } = await mint([readRole]);
    const { rows } = await serverAdmin.query('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [
      minted.externalRef,
    ]);
    expect(rows[0].rolpassword).toMatch(/^SCRAM-SHA-256\$4096:/);
    expect(rows[0].rolpassword).not.toContain(String(minted.credential.password));
  });

  it('refuses a malformed scope and leaves no role behind for an unknown one', async () => {
    for (const grantRoles of [
      undefined,
      [],
      'app_read',
      [''],
      ['Admin'],
      ['x"; DROP ROLE postgres; --'],
      [42],
    ]) {
      await expect(connector.mint(grantSpec(grantRoles))).rejects.toThrow(/scope\.grantRoles/);
    }
    const grant = grantSpec([readRole, `missing_${suffix}`]);
    await expect(connector.mint(grant)).rejects.toThrow(`role "missing_${suffix}" does not exist`);
    const { rows } = await serverAdmin.query(
      'SELECT count(*)::int AS n FROM pg_roles WHERE rolname LIKE $1',
      [`jit_${grant.grantId.replaceAll('-', '').slice(0, 24)}_%`],
    );
    expect(rows[0].n).toBe(0);
  });

  it('refuses to grant a role the connector was not given, and leaves no role behind', async () => {
    const grant = grantSpec([readRole, otherRole]);
    await expect(connector.mint(grant)).rejects.toThrow(
      `Connector "e2e-postgres": permission denied to grant role "${otherRole}": give the connector's role ADMIN OPTION`,
    );
    const { rows } = await serverAdmin.query(
      'SELECT count(*)::int AS n FROM pg_roles WHERE rolname LIKE $1',
      [`jit_${grant.grantId.replaceAll('-', '').slice(0, 24)}_%`],
    );
    expect(rows[0].n).toBe(0);
  });

  it('revoke ends an open session, refuses new logins and drops the role; again is a no-op', async () => {
    const { minted } = await mint([readRole]);
    const role = await roleRow(minted.externalRef);
    const session = await login(minted);
    await session.query('SELECT 1');

    await connector.revoke(minted.externalRef);

    await expect(session.query('SELECT count(*) FROM widgets')).rejects.toThrow();
    await expect(login(minted)).rejects.toThrow();
    expect(await roleRow(minted.externalRef)).toBeUndefined();
    expect(await sessionsOf(role!.oid)).toBe(0);

    await expect(connector.revoke(minted.externalRef)).resolves.toBeUndefined();
  });

  it('drops what the temporary user created instead of handing it to the admin', async () => {
    const { minted } = await mint([readRole, writeRole]);
    const session = await login(minted);
    await session.query('CREATE TABLE scratch (id int)');
    await session.query(
      'CREATE FUNCTION scratch_fn() RETURNS int LANGUAGE sql SECURITY DEFINER AS $$ SELECT 1 $$',
    );
    await session.end();

    await connector.revoke(minted.externalRef);

    const { rows } = await targetAdmin.query(
      "SELECT to_regclass('public.scratch') AS tbl, to_regprocedure('public.scratch_fn()') AS fn",
    );
    expect(rows[0]).toEqual({ tbl: null, fn: null });
    expect(await roleRow(minted.externalRef)).toBeUndefined();
  });

  it('refuses to touch a role whose name it did not generate', async () => {
    for (const name of [readRole, 'postgres', 'jit_', 'jit_0123456789abcdef01234567_0123456', 'JIT_x"; --']) {
      await expect(connector.revoke(name)).rejects.toThrow(/Refusing to revoke/);
    }
    expect(await roleRow(readRole)).toBeDefined();
  });

  it('concurrent revokes of the same role, as from several brokers, all succeed', async () => {
    // Each connector has its own pool, like separate broker processes; unserialised, they would collide
    // on the role's catalog row ("tuple concurrently updated").
    const brokers = [
      connector,
      ...[1, 2].map(() => new PostgresConnector({ adminUrl: connectorUrl, connectorName: 'e2e-b' })),
    ];
    try {
      for (let round = 0; round < 8; round += 1) {
        const { minted } = await mint([readRole]);
        await login(minted);
        const revokes = brokers.flatMap((broker) => [
          broker.revoke(minted.externalRef),
          broker.revoke(minted.externalRef),
        ]);
        await expect(Promise.all(revokes)).resolves.toHaveLength(revokes.length);
        expect(await roleRow(minted.externalRef)).toBeUndefined();
      }
    } finally {
      for (const broker of brokers.slice(1)) await broker.close();
    }
  });

  it('concurrent revokes of different roles, each with a session, all succeed', async () => {
    // As the worker runs them (8 at once): every DROP OWNED rewrites the database's ACL row, so unserialised,
    // some failed with "tuple concurrently updated" and waited for a retry.
    const minted = await Promise.all(Array.from({ length: 16 }, () => mint([readRole])));
    for (const { minted: one } of minted) await (await login(one)).query('SELECT 1');
    const roles = await Promise.all(minted.map(({ minted: one }) => roleRow(one.externalRef)));

    const outcomes = await Promise.allSettled(
      minted.map(({ minted: one }) => connector.revoke(one.externalRef)),
    );

    expect(outcomes.filter((outcome) => outcome.status === 'rejected')).toEqual([]);
    for (const { minted: one } of minted) expect(await roleRow(one.externalRef)).toBeUndefined();
    for (const role of roles) expect(await sessionsOf(role!.oid)).toBe(0);
  });

  it('a client reconnecting in a tight loop during revoke ends with no live session and the role gone', async () => {
    const { minted } = await mint([readRole]);
    const role = await roleRow(minted.externalRef);
    const hammered: pg.Client[] = [];
    let revoked = false;
    let logins = 0;
    // Keeps every session it gets open, racing the revocation to hold one past it.
    const hammer = (async () => {
      while (!revoked) {
        try {
          hammered.push(await login(minted));
          logins += 1;
        } catch {
          // Refused logins are the point; keep trying until revoke has returned.
        }
      }
    })();
    // Let the hammer land sessions before the revocation starts: poll, do not sleep.
    while (logins < 3) await new Promise((resolve) => setImmediate(resolve));

    await connector.revoke(minted.externalRef);
    revoked = true;
    await hammer;

    expect(await roleRow(minted.externalRef)).toBeUndefined();
    expect(await sessionsOf(role!.oid)).toBe(0);
    for (const client of hammered) await expect(client.query('SELECT 1')).rejects.toThrow();
  });
});
