// DESIGN §4.7: no secret is stored in plaintext or put into Redis. With a jwt, a postgres and an ssh
// credential issued, people signed in and invites outstanding, every value in the stack's Redis keys (job
// hashes included) and every row of every table is searched for each secret the run handed out.
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import pg from 'pg';
import sshpk from 'sshpk';
import { createDatabase, dropDatabase } from '../../libs/devstack/databases.js';
import { policyDirFromFixture } from '../support/policy-fixture.js';
import {
  clientAs,
  enroll,
  enrollAll,
  inviteToken,
  startStack,
  type Person,
  type TestStack,
} from '../support/stack.js';

const suffix = randomBytes(4).toString('hex');
const TARGET_DATABASE = `nosecrets_${suffix}`;
// Roles are cluster-wide: a per-run name, dropped in afterAll.
const READ_ROLE = `nosecrets_read_${suffix}`;

interface Secret {
  name: string;
  /** Every form in which it could have been written down: as text, and hex (how bytea rows read back). */
  forms: string[];
}

function textSecret(name: string, value: string): Secret {
  return { name, forms: [value, Buffer.from(value, 'utf8').toString('hex')] };
}

function sessionValue(person: Person): string {
  return person.cookie.slice(person.cookie.indexOf('=') + 1);
}

/** An OpenSSH public key line for a fresh Ed25519 key pair. */
function sshPublicKey(): string {
  const { publicKey } = generateKeyPairSync('ed25519');
  const key = sshpk.parseKey(publicKey.export({ type: 'spki', format: 'pem' }), 'pem');
  key.comment = 'alice@e2e';
  return key.toString('ssh');
}

/** Every value under the stack's queue prefix, whatever the key's type, as text. */
async function redisDump(url: string, prefix: string): Promise<{ keys: string[]; text: string[] }> {
  const redis = new Redis(url);
  try {
    const keys = (await redis.keys(`${prefix}:*`)).sort();
    const text: string[] = [];
    for (const key of keys) {
      const type = await redis.type(key);
      if (type === 'string') text.push((await redis.get(key)) ?? '');
      else if (type === 'hash') text.push(JSON.stringify(await redis.hgetall(key)));
      else if (type === 'list') text.push(JSON.stringify(await redis.lrange(key, 0, -1)));
      else if (type === 'set') text.push(JSON.stringify(await redis.smembers(key)));
      else if (type === 'zset') text.push(JSON.stringify(await redis.zrange(key, 0, -1, 'WITHSCORES')));
      else if (type === 'stream') text.push(JSON.stringify(await redis.xrange(key, '-', '+')));
      else throw new Error(`Redis key ${key} has type ${type}, which this dump does not read`);
      text[text.length - 1] = `${key} ${text[text.length - 1]}`;
    }
    return { keys, text };
  } finally {
    redis.disconnect();
  }
}

/** Every row of every table of the broker's database, as JSON text, by table. */
async function databaseDump(db: pg.Pool): Promise<Map<string, string[]>> {
  const { rows: tables } = await db.query<{ tablename: string }>(
    `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`,
  );
  const dump = new Map<string, string[]>();
  for (const { tablename } of tables) {
    const { rows } = await db.query<{ row: string }>(
      `SELECT row_to_json(t)::text AS row FROM ${pg.escapeIdentifier(tablename)} t`,
    );
    dump.set(
      tablename,
      rows.map(({ row }) => row),
    );
  }
  return dump;
}

function leaks(secrets: Secret[], where: string, texts: string[]): string[] {
  const found: string[] = [];
  for (const secret of secrets) {
    for (const form of secret.forms) {
      if (texts.some((text) => text.includes(form))) found.push(`${secret.name} in ${where}`);
    }
  }
  return found;
}

describe('no secret reaches Redis or the database', () => {
  let adminUrl: string;
  let policyDir: string;
  let stack: TestStack;
  const secrets: Secret[] = [];

  async function issue(
    entitlementId: string,
    extra: Record<string, unknown> = {},
  ): Promise<Record<string, string>> {
    const created = await clientAs(stack, 'alice').post('/api/requests', {
      entitlementId,
      durationSeconds: 600,
      justification: 'no-secrets e2e',
      ...extra,
    });
    expect(created.status).toBe(201);
    expect((await clientAs(stack, 'bob').decide(created.body.id, 'approve')).body.state).toBe('APPROVED');
    const activated = await clientAs(stack, 'alice').decide(created.body.id, 'activate');
    expect(activated.status).toBe(200);
    return activated.body.credential as Record<string, string>;
  }

  beforeAll(async () => {
    adminUrl = process.env.E2E_PG_ADMIN_URL!;
    const targetUrl = await createDatabase(adminUrl, TARGET_DATABASE);
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    try {
      await admin.query(`CREATE ROLE ${pg.escapeIdentifier(READ_ROLE)} NOLOGIN`);
    } finally {
      await admin.end();
    }
    policyDir = await policyDirFromFixture('credentials', { READ_ROLE });
    stack = await startStack({ policyDir, env: { DEMO_TARGET_DB_URL: targetUrl } });
    await enrollAll(stack, ['alice', 'bob']);
    await enroll(stack, 'root', { roles: ['admin'] });
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    if (policyDir) await rm(policyDir, { recursive: true, force: true });
    if (!adminUrl) return;
    await dropDatabase(adminUrl, TARGET_DATABASE);
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ rolname: string }>(
        `SELECT rolname FROM pg_roles r JOIN pg_auth_members m ON m.member = r.oid
          WHERE m.roleid = (SELECT oid FROM pg_roles WHERE rolname = $1)`,
        [READ_ROLE],
      );
      for (const role of [...rows.map((row) => row.rolname), READ_ROLE]) {
        await admin.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(role)}`);
      }
    } finally {
      await admin.end();
    }
  }, 60_000);

  it('finds none of the tokens, passwords, cookies, invites or the master key anywhere', async () => {
    const jwt = await issue('api-admin-token');
    expect(jwt.type).toBe('jwt');
    secrets.push(textSecret('the access token', jwt.token));

    const database = await issue('target-db-read');
    expect(database.type).toBe('postgres');
    // The password is real: it logs in.
    const login = new pg.Client({ connectionString: database.connectionString });
    await login.connect();
    await login.end();
    secrets.push(textSecret('the database password', database.password));
    secrets.push(textSecret('the database connection string', database.connectionString));

    const ssh = await issue('hosts-deploy', { sshPublicKey: sshPublicKey() });
    expect(ssh.type).toBe('ssh');
    expect(ssh.certificate).toMatch(/^ssh-ed25519-cert-v01@openssh\.com /);

    // Invites outstanding: one made the way the CLI makes it, one by an admin over the API.
    secrets.push(textSecret('an invite token (cli)', await inviteToken(stack, 'dave')));
    const root = clientAs(stack, 'root');
    const params = { username: 'carol', roles: [] };
    const invited = await root.post('/api/admin/invites', {
      ...params,
      stepUp: await root.stepUp('invite.create', 'carol', params),
    });
    expect(invited.status).toBe(201);
    secrets.push(textSecret('an invite token (api)', invited.body.token));

    for (const person of [...stack.people.values()]) {
      secrets.push(textSecret(`${person.username}'s session cookie`, sessionValue(person)));
    }
    const masterKey = stack.config.masterKey;
    secrets.push({
      name: 'the master key',
      forms: [masterKey.toString('base64'), masterKey.toString('base64url'), masterKey.toString('hex')],
    });
    const adminPassword = decodeURIComponent(new URL(adminUrl).password);
    // A short default password would match ordinary words; a real one is long and random.
    if (adminPassword.length >= 16) secrets.push(textSecret('the target admin password', adminPassword));

    const redis = await redisDump(stack.config.redisUrl, stack.config.queuePrefix);
    // The dump is not vacuous: the revocation jobs of the three grants are there, with ids only.
    const { rows: grants } = await stack.db.query<{ id: string }>('SELECT id FROM grants');
    expect(grants).toHaveLength(3);
    for (const { id } of grants) {
      const job = redis.text.find((text) =>
        text.startsWith(`${stack.config.queuePrefix}:revocation:revoke-${id} `),
      );
      expect(job).toContain(JSON.stringify(JSON.stringify({ grantId: id })).slice(1, -1));
    }

    const tables = await databaseDump(stack.db);
    for (const table of ['grants', 'sessions', 'enrollment_invites', 'signing_keys', 'audit_events']) {
      expect({ table, rows: (tables.get(table) ?? []).length > 0 }).toEqual({ table, rows: true });
    }

    const found = [
      ...leaks(secrets, 'Redis', redis.text),
      ...[...tables].flatMap(([table, rows]) => leaks(secrets, `table ${table}`, rows)),
    ];
    console.log(
      `Searched ${redis.keys.length} Redis keys and ${[...tables.values()].flat().length} rows of ` +
        `${tables.size} tables for ${secrets.length} secrets`,
    );
    expect(found).toEqual([]);
    // The search itself works: what is meant to be stored (the token's fingerprint) is found.
    const fingerprint = createHash('sha256').update(jwt.token).digest('base64url');
    expect(
      leaks([textSecret('the token fingerprint', fingerprint)], 'grants', tables.get('grants')!),
    ).toEqual(['the token fingerprint in grants']);

    // The target database keeps a SCRAM verifier for the minted login, never the password.
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ rolpassword: string }>(
        'SELECT rolpassword FROM pg_authid WHERE rolname = $1',
        [database.username],
      );
      expect(rows[0].rolpassword).toMatch(/^SCRAM-SHA-256\$/);
      expect(rows[0].rolpassword).not.toContain(database.password);
    } finally {
      await admin.end();
    }
  });
});
