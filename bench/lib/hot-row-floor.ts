// The approval floor on the database side: the least an approval must do while it holds the chain head, on
// the same PostgreSQL (same fsync settings) as the broker. Each transaction appends two events, as an approval
// that reaches quorum does (approval.recorded, request.approved); each append moves the one-row head and
// inserts the event row.
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { createDatabase, dropDatabase } from '../../libs/devstack/databases.js';

export interface HotRowResult {
  transactions: number;
  seconds: number;
  transactionsPerSecond: number;
  /** Each transaction's latency, ms. */
  latencies: number[];
}

const SCHEMA = `
  CREATE TABLE floor_head (id smallint PRIMARY KEY CHECK (id = 1), seq bigint NOT NULL, hash bytea NOT NULL);
  INSERT INTO floor_head VALUES (1, 0, decode(repeat('00', 32), 'hex'));
  CREATE TABLE floor_events (seq bigint PRIMARY KEY, at timestamptz NOT NULL, data jsonb NOT NULL,
                             prev_hash bytea NOT NULL, hash bytea NOT NULL)`;

// About the size of an approval.recorded event's data (decision, comment and the step-up evidence).
const EVENT_DATA = JSON.stringify({
  approver: 'bench-approver-01',
  decision: 'approve',
  comment: null,
  evidence: {
    signature: randomBytes(72).toString('base64url'),
    clientDataJSON: randomBytes(180).toString('base64url'),
  },
  authenticatorData: randomBytes(37).toString('base64url'),
  publicKey: randomBytes(77).toString('base64url'),
});

async function append(client: pg.Client): Promise<void> {
  const hash = createHash('sha256').update(randomBytes(32)).digest();
  const { rows } = await client.query<{ seq: string; prev: Buffer }>(
    `UPDATE floor_head h SET seq = h.seq + 1, hash = $1
       FROM (SELECT hash AS prev FROM floor_head WHERE id = 1) p
      WHERE h.id = 1 RETURNING h.seq, p.prev`,
    [hash],
  );
  await client.query(
    'INSERT INTO floor_events (seq, at, data, prev_hash, hash) VALUES ($1, clock_timestamp(), $2, $3, $4)',
    [rows[0].seq, EVENT_DATA, rows[0].prev, hash],
  );
}

/** One connection appending until `until`; each transaction's latency (ms) goes into `latencies`. */
async function runClient(
  client: pg.Client,
  until: number,
  appendsPerTransaction: number,
  latencies: number[],
): Promise<void> {
  while (Date.now() < until) {
    const began = performance.now();
    await client.query('BEGIN');
    for (let index = 0; index < appendsPerTransaction; index++) await append(client);
    await client.query('COMMIT');
    latencies.push(performance.now() - began);
  }
}

/**
 * `clients` connections append to one hot head row for `seconds`, in a scratch database of the server
 * `adminUrl` points at (created and dropped here): transactions per second.
 */
export async function hotRowFloor(
  adminUrl: string,
  options: { clients?: number; seconds: number; appendsPerTransaction?: number },
): Promise<HotRowResult> {
  const appendsPerTransaction = options.appendsPerTransaction ?? 2;
  const name = `bench_hot_row_${randomBytes(4).toString('hex')}`;
  const url = await createDatabase(adminUrl, name);
  const clients = Array.from(
    { length: options.clients ?? 16 },
    () => new pg.Client({ connectionString: url }),
  );
  try {
    await Promise.all(clients.map((client) => client.connect()));
    await clients[0].query(SCHEMA);
    await runClient(clients[0], Date.now() + 500, appendsPerTransaction, []); // warm up
    const latencies: number[] = [];
    const startedAt = performance.now();
    const until = Date.now() + options.seconds * 1000;
    await Promise.all(clients.map((client) => runClient(client, until, appendsPerTransaction, latencies)));
    const seconds = (performance.now() - startedAt) / 1000;
    return {
      transactions: latencies.length,
      seconds,
      transactionsPerSecond: latencies.length / seconds,
      latencies,
    };
  } finally {
    await Promise.all(clients.map((client) => client.end().catch(() => undefined)));
    await dropDatabase(adminUrl, name);
  }
}
