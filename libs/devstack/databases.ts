import pg from 'pg';

// Plain lowercase identifiers only: no quoting surprises, and the same name in SQL, URLs and logs.
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;
const DUPLICATE_DATABASE = '42P04';
// Two concurrent CREATE DATABASE of one name can also collide on pg_database's unique index.
const UNIQUE_VIOLATION = '23505';

/** The URL of database `name` on the server of `adminUrl`, with the same credentials and options. */
export function databaseUrl(adminUrl: string, name: string): string {
  assertIdentifier('database', name);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Creates database `name` unless it already exists, and returns its URL. */
export async function createDatabase(adminUrl: string, name: string): Promise<string> {
  assertIdentifier('database', name);
  await withClient(adminUrl, async (client) => {
    const existing = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (existing.rowCount !== 0) return;
    try {
      await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code !== DUPLICATE_DATABASE && code !== UNIQUE_VIOLATION) throw error;
    }
  });
  return databaseUrl(adminUrl, name);
}

/** Drops database `name` if it exists, even while a forgotten pool is still connected to it. */
export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  assertIdentifier('database', name);
  await withClient(adminUrl, async (client) => {
    await client.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      [name],
    );
    await client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(name)} WITH (FORCE)`);
  });
}

/** Throws unless `name` is a plain lowercase identifier (1 to 63 of a-z, 0-9, _; not starting with a digit). */
export function assertIdentifier(kind: 'database' | 'role', name: string): void {
  if (!IDENTIFIER.test(name)) {
    throw new Error(
      `invalid ${kind} name ${JSON.stringify(name)}: use 1 to 63 lowercase letters, digits or _, not starting with a digit`,
    );
  }
}

/** Runs `work` on one connection to `url`; the connection always ends. */
export async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}
