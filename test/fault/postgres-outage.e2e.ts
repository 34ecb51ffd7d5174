// Issue 20 point 1: PostgreSQL stopped and restarted (same port, same data dir) under light traffic. The
// suite owns its embedded PostgreSQL, so it can stop it without touching other suites' databases.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startEmbeddedPostgres, type EmbeddedPostgresServer } from '../../libs/devstack/embedded-postgres.js';
import { clientAs, enrollAll, startStack, waitFor, type TestStack } from '../support/stack.js';
import { activeGrants } from '../support/active-grants.js';

const SWEEP_INTERVAL_SECONDS = 1;
// The sweep runs once per interval; its job and the revocation take well under a second once PostgreSQL answers.
const LAG_BOUND_MS = SWEEP_INTERVAL_SECONDS * 1000 + 1_000;
const CLIENTS = 4;
const GRANTS = 3;

interface Seen {
  statuses: Map<number, number>;
  accepted: string[];
  unavailableBodies: unknown[];
  fiveHundreds: unknown[];
}

async function readyStatus(stack: TestStack): Promise<number> {
  return (await fetch(`${stack.baseUrl}/health/ready`)).status;
}

/** One client: alternately lists requests and files one, until `stop` is set; records every answer. */
async function trafficLoop(stack: TestStack, seen: Seen, stop: { done: boolean }, index: number) {
  const alice = clientAs(stack, 'alice');
  for (let turn = 0; !stop.done; turn++) {
    const answer =
      turn % 2 === 0
        ? await alice.get('/api/requests')
        : await alice.post('/api/requests', {
            entitlementId: 'api-admin-token',
            durationSeconds: 600,
            justification: `outage traffic ${index}.${turn}`,
          });
    seen.statuses.set(answer.status, (seen.statuses.get(answer.status) ?? 0) + 1);
    if (answer.status === 201) seen.accepted.push(answer.body.id as string);
    if (answer.status === 503) seen.unavailableBodies.push(answer.body);
    else if (answer.status >= 500) seen.fiveHundreds.push(answer.body);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function allRevoked(stack: TestStack, requestIds: string[]) {
  return waitFor(
    async () => {
      const { rows } = await stack.db.query(
        'SELECT id, state, not_after, revoked_at FROM grants WHERE request_id = ANY($1::uuid[])',
        [requestIds],
      );
      return rows.every((row) => row.state === 'REVOKED') ? rows : undefined;
    },
    10_000,
    'every due grant to be revoked',
  );
}

describe('PostgreSQL stopped and restarted under traffic', () => {
  let dataRoot: string;
  let postgres: EmbeddedPostgresServer;
  let stack: TestStack;
  const previousAdminUrl = process.env.E2E_PG_ADMIN_URL;

  beforeAll(async () => {
    dataRoot = await mkdtemp(path.join(tmpdir(), 'jit-pg-outage-'));
    // Persistent: its stop keeps the data dir (and password file), so it restarts with every row.
    postgres = await startEmbeddedPostgres({ dataDir: path.join(dataRoot, 'pg'), persistent: true });
    process.env.E2E_PG_ADMIN_URL = postgres.adminUrl;
    stack = await startStack({
      env: { SWEEP_INTERVAL_SECONDS: String(SWEEP_INTERVAL_SECONDS), REVOKE_BACKOFF_MS: '200' },
    });
    await enrollAll(stack, ['alice', 'bob']);
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await postgres?.stop();
    process.env.E2E_PG_ADMIN_URL = previousAdminUrl;
    if (dataRoot) await rm(dataRoot, { recursive: true, force: true });
  }, 30_000);

  it('answers 503 (never 500) while it is down, loses no accepted request, and revokes due grants within one sweep after', async () => {
    const { ids: requestIds } = await activeGrants(
      stack,
      Array.from({ length: GRANTS }, () => 3),
      'postgres outage test',
    );
    const seen: Seen = { statuses: new Map(), accepted: [], unavailableBodies: [], fiveHundreds: [] };
    const stop = { done: false };
    const traffic = Promise.all(
      Array.from({ length: CLIENTS }, (_, index) => trafficLoop(stack, seen, stop, index)),
    );
    await waitFor(async () => (seen.accepted.length >= CLIENTS ? true : undefined), 10_000, 'traffic');

    const { rows: grants } = await stack.db.query(
      'SELECT max(not_after) AS last FROM grants WHERE request_id = ANY($1::uuid[])',
      [requestIds],
    );
    const lastDue = (grants[0].last as Date).getTime();
    await postgres.stop();
    await waitFor(async () => ((await readyStatus(stack)) === 503 ? true : undefined), 10_000, 'ready 503');
    const ready = await fetch(`${stack.baseUrl}/health/ready`);
    expect(await ready.json()).toEqual({ status: 'unavailable', checks: { postgres: 'down', redis: 'up' } });
    await waitFor(async () => (seen.unavailableBodies.length >= CLIENTS ? true : undefined), 10_000, '503s');
    // Down until every grant is due, so each revocation falls due while PostgreSQL is away.
    await waitFor(async () => (Date.now() >= lastDue + 500 ? true : undefined), 15_000, 'every notAfter');

    postgres = await startEmbeddedPostgres({
      dataDir: path.join(dataRoot, 'pg'),
      port: postgres.port,
      persistent: true,
    });
    const backAt = Date.now();
    await waitFor(async () => ((await readyStatus(stack)) === 200 ? true : undefined), 10_000, 'ready 200');
    const acceptedAfter = seen.accepted.length;
    await waitFor(async () => (seen.accepted.length > acceptedAfter ? true : undefined), 10_000, 'a 201');
    stop.done = true;
    await traffic;

    const { rows: stored } = await stack.db.query(
      'SELECT id FROM elevation_requests WHERE id = ANY($1::uuid[])',
      [seen.accepted],
    );
    const revoked = await allRevoked(stack, requestIds);
    const lags = revoked.map(
      (row) => (row.revoked_at as Date).getTime() - Math.max((row.not_after as Date).getTime(), backAt),
    );
    console.log(
      `PostgreSQL outage: answers ${JSON.stringify(Object.fromEntries(seen.statuses))}, ` +
        `${seen.accepted.length} accepted and ${stored.length} stored, ${revoked.length} grants revoked ` +
        `at most ${Math.max(...lags)} ms after PostgreSQL returned (bound ${LAG_BOUND_MS} ms)`,
    );
    expect(seen.fiveHundreds).toEqual([]);
    for (const body of seen.unavailableBodies)
      expect(body).toEqual({ error: { code: 'SERVICE_UNAVAILABLE', message: expect.any(String) } });
    expect(stored.length).toBe(seen.accepted.length);
    expect(revoked.length).toBe(GRANTS);
    for (const lag of lags) expect(lag).toBeLessThanOrEqual(LAG_BOUND_MS);
  }, 30_000);
});
