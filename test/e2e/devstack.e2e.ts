import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { describe, expect, test } from '@jest/globals';
import pg from 'pg';
import { dropLoginRoles } from '../../libs/devstack/database-roles.js';
import { createDatabase, databaseUrl, dropDatabase } from '../../libs/devstack/databases.js';

const adminUrl = requiredEnv('E2E_PG_ADMIN_URL');
const redisUrl = requiredEnv('E2E_REDIS_URL');

function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the e2e tier through jest's globalSetup`);
  return value;
}

async function databaseExists(name: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const result = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    return result.rowCount === 1;
  } finally {
    await client.end();
  }
}

function redisReply(url: string, command: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) });
    let reply = '';
    socket.setTimeout(5_000, () => socket.destroy(new Error('no reply from Redis')));
    socket.once('error', reject);
    socket.once('connect', () => socket.write(`${command}\r\n`));
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('utf8');
      if (reply.endsWith('\r\n')) {
        socket.end();
        resolve(reply.trimEnd());
      }
    });
  });
}

describe('devstack', () => {
  const name = `devstack_${randomBytes(4).toString('hex')}`;

  test('createDatabase creates a reachable database, and is a no-op the second time', async () => {
    const url = await createDatabase(adminUrl, name);
    expect(url).toBe(databaseUrl(adminUrl, name));
    await expect(createDatabase(adminUrl, name)).resolves.toBe(url);

    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const result = await client.query<{ db: string }>('SELECT current_database() AS db');
      expect(result.rows[0]?.db).toBe(name);
    } finally {
      await client.end();
    }
  });

  test('dropDatabase drops it even with a session still open, and tolerates a missing database', async () => {
    const lingering = new pg.Client({ connectionString: databaseUrl(adminUrl, name) });
    lingering.on('error', () => undefined);
    await lingering.connect();

    await dropDatabase(adminUrl, name);
    expect(await databaseExists(name)).toBe(false);
    await expect(dropDatabase(adminUrl, name)).resolves.toBeUndefined();
    await lingering.end().catch(() => undefined);
  });

  test('database names are validated before any SQL is sent', async () => {
    await expect(createDatabase(adminUrl, 'Robert"; DROP DATABASE postgres; --')).rejects.toThrow(
      /invalid database name/,
    );
    expect(() => databaseUrl(adminUrl, '1abc')).toThrow(/invalid database name/);
  });

  test('role names are validated the same way, before any SQL is sent', async () => {
    await expect(dropLoginRoles(adminUrl, ['Robert"; DROP ROLE postgres; --'])).rejects.toThrow(
      /^invalid role name "Robert\\"; DROP ROLE postgres; --": use 1 to 63 lowercase letters/,
    );
  });

  test('Redis answers PING', async () => {
    await expect(redisReply(redisUrl, 'PING')).resolves.toBe('+PONG');
  });
});
