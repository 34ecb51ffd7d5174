import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';

const OPEN_IN_PARALLEL = 25;
const END_TIMEOUT_MS = 1_000;

/** Open database sessions, one per URL (a temporary role's login), held idle until revoked or closed. */
export interface OpenSessions {
  clients: pg.Client[];
  /** How many have been ended by the server (pg_terminate_backend) so far. */
  terminated(): number;
  close(): Promise<void>;
}

export async function openSessions(urls: readonly string[]): Promise<OpenSessions> {
  const clients: pg.Client[] = [];
  const ended = new Set<pg.Client>();
  for (let start = 0; start < urls.length; start += OPEN_IN_PARALLEL) {
    const batch = urls.slice(start, start + OPEN_IN_PARALLEL).map(async (url) => {
      const client = new pg.Client({ connectionString: url, application_name: 'jit-bench-session' });
      // A revocation terminates the session: expected, counted, never thrown.
      client.on('error', () => ended.add(client));
      client.on('end', () => ended.add(client));
      await client.connect();
      await client.query('SELECT 1');
      clients.push(client);
    });
    await Promise.all(batch);
  }
  return {
    clients,
    terminated: () => ended.size,
    async close() {
      // end() on a connection the server already closed may never settle: bounded.
      await Promise.all(
        clients.map((client) => Promise.race([client.end().catch(() => undefined), delay(END_TIMEOUT_MS)])),
      );
    },
  };
}
