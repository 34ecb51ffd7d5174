import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { v7 as uuidv7 } from 'uuid';
import { expectOk, type Person } from './people.js';
import type { BenchStack } from './stack.js';

// Many ACTIVE grants, fast: one request is filed and activated through the real API (a self-service
// entitlement, a genuine passkey step-up), then its request and grant rows are copied as the database owner
// would, each copy with its own ids and external reference. The revocation itself is the real worker's.

/** A request the broker activated through the API: the model of the copies. */
export interface ActivatedRequest {
  requestId: string;
  credential: Record<string, unknown>;
}

/** A copy: its ids and what the connector knows it by. */
export interface GrantCopy {
  requestId: string;
  grantId: string;
  externalRef: string;
}

const COPY_BATCH = 2_000;

/** Files a self-service request for `entitlementId` and activates it with a step-up. */
export async function activateThroughApi(
  person: Person,
  entitlementId: string,
  durationSeconds = 3600,
): Promise<ActivatedRequest> {
  const filed = await expectOk(
    person.post('/api/requests', { entitlementId, durationSeconds }),
    'file a request',
  );
  const requestId = (filed.request?.id ?? filed.id) as string;
  const activated = await expectOk(person.decide(requestId, 'activate'), 'activate');
  return { requestId, credential: activated.credential as Record<string, unknown> };
}

async function columnsOf(client: pg.Client, table: string, replaced: readonly string[]): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT column_name AS name FROM information_schema.columns
      WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position`,
    [table],
  );
  return rows.map((row) => row.name).filter((name) => !replaced.includes(name));
}

/**
 * Copies the template request and its grant once per external reference `refs[i]` (the ids are new uuidv7s).
 * `refOf(grantId)` may mint the external state first (a postgres role) and return its name.
 */
export async function copyGrants(
  stack: BenchStack,
  templateRequestId: string,
  count: number,
  refOf: (grantId: string, requestId: string) => Promise<string> = async (grantId) => grantId,
): Promise<GrantCopy[]> {
  const copies: GrantCopy[] = [];
  for (let index = 0; index < count; index += 1) {
    const requestId = uuidv7();
    const grantId = uuidv7();
    copies.push({ requestId, grantId, externalRef: await refOf(grantId, requestId) });
  }
  const client = new pg.Client({ connectionString: stack.ownerUrl });
  await client.connect();
  try {
    const requestColumns = await columnsOf(client, 'elevation_requests', ['id']);
    const grantColumns = await columnsOf(client, 'grants', ['id', 'request_id', 'external_ref']);
    for (let start = 0; start < copies.length; start += COPY_BATCH) {
      const batch = copies.slice(start, start + COPY_BATCH);
      await client.query('BEGIN');
      await client.query(
        `INSERT INTO elevation_requests (id, ${requestColumns.join(', ')})
         SELECT u.id, ${requestColumns.map((name) => `t.${name}`).join(', ')}
           FROM unnest($2::uuid[]) AS u(id), elevation_requests t WHERE t.id = $1`,
        [templateRequestId, batch.map((copy) => copy.requestId)],
      );
      await client.query(
        `INSERT INTO grants (id, request_id, external_ref, ${grantColumns.join(', ')})
         SELECT u.id, u.request_id, u.ref, ${grantColumns.map((name) => `t.${name}`).join(', ')}
           FROM unnest($2::uuid[], $3::uuid[], $4::text[]) AS u(id, request_id, ref), grants t
          WHERE t.request_id = $1`,
        [
          templateRequestId,
          batch.map((copy) => copy.grantId),
          batch.map((copy) => copy.requestId),
          batch.map((copy) => copy.externalRef),
        ],
      );
      await client.query('COMMIT');
    }
  } finally {
    await client.end();
  }
  return copies;
}

/** Sets the copies' notAfter (and their requests' end) to `start` + i * spacingMs: due one after another. */
export async function dueFrom(
  stack: BenchStack,
  copies: GrantCopy[],
  start: Date,
  spacingMs: number,
): Promise<void> {
  const client = new pg.Client({ connectionString: stack.ownerUrl });
  await client.connect();
  try {
    await client.query(
      `WITH due AS (
         SELECT u.id, $2::timestamptz + (u.n - 1) * ($3::float8 * interval '1 millisecond') AS not_after
           FROM unnest($1::uuid[]) WITH ORDINALITY AS u(id, n)),
       moved AS (UPDATE grants g SET not_after = due.not_after FROM due WHERE g.id = due.id
                 RETURNING g.request_id, g.not_after)
       UPDATE elevation_requests r SET ends_at = moved.not_after FROM moved WHERE r.id = moved.request_id`,
      [copies.map((copy) => copy.grantId), start, spacingMs],
    );
  } finally {
    await client.end();
  }
}

/** Waits until every copy is REVOKED (or `deadline`), then returns each revoked one's revokedAt - notAfter (ms). */
export async function revocationLateness(
  stack: BenchStack,
  copies: GrantCopy[],
  deadline: number,
): Promise<{ lateness: number[]; missing: number; doneAt: number }> {
  const ids = copies.map((copy) => copy.grantId);
  const client = new pg.Client({ connectionString: stack.brokerAdminUrl });
  await client.connect();
  try {
    // The ids go to the server once: binding 10,000 of them every poll loads the machine being measured.
    await client.query(`CREATE TEMP TABLE bench_copies AS SELECT unnest($1::uuid[]) AS id`, [ids]);
    await client.query('ANALYZE bench_copies');
    const revokedCopies = `FROM grants g JOIN bench_copies c ON c.id = g.id WHERE g.state = 'REVOKED'`;
    for (;;) {
      const { rows } = await client.query<{ revoked: string }>(`SELECT count(*) AS revoked ${revokedCopies}`);
      if (Number(rows[0].revoked) === ids.length || Date.now() > deadline) break;
      await delay(200);
    }
    const doneAt = Date.now();
    const { rows } = await client.query<{ ms: number }>(
      `SELECT (extract(epoch FROM g.revoked_at - g.not_after) * 1000)::float8 AS ms ${revokedCopies}`,
    );
    return { lateness: rows.map((row) => row.ms), missing: ids.length - rows.length, doneAt };
  } finally {
    await client.end();
  }
}
