import { randomBytes } from 'node:crypto';
import { PostgresConnector } from '../libs/connectors/postgres.connector.js';
import { withClient } from '../libs/devstack/databases.js';
import { activateThroughApi, copyGrants } from './lib/grants.js';
import { enrollAll } from './lib/people.js';
import type { BenchContext, Benchmark } from './lib/registry.js';
import { compareRevocations, projectRevocations } from './lib/revocation.js';
import { openSessions, type OpenSessions } from './lib/sessions.js';
import { startBenchStack, TARGET_GRANT_ROLE, type BenchStack } from './lib/stack.js';

const ENTITLEMENT = 'bench-db';
let floorRuns = 0;

/** Copies of one activated request, each with its own role minted by the postgres connector and a session open. */
async function seedProject(stack: BenchStack, count: number) {
  const [user] = await enrollAll(stack, ['bench-user']);
  const template = await activateThroughApi(user, ENTITLEMENT);
  const connector = new PostgresConnector({
    adminUrl: stack.env.BENCH_TARGET_DB_URL!,
    connectorName: ENTITLEMENT,
  });
  const urls: string[] = [];
  try {
    const copies = await copyGrants(stack, template.requestId, count, async (grantId, requestId) => {
      const minted = await connector.mint({
        grantId,
        requestId,
        subject: user.username,
        entitlementId: ENTITLEMENT,
        scope: { grantRoles: [TARGET_GRANT_ROLE] },
        notAfter: new Date(Math.ceil(Date.now() / 1000) * 1000 + 3_600_000),
      });
      urls.push(String(minted.credential.connectionString));
      return minted.externalRef;
    });
    return { copies, urls, templateRequestId: template.requestId };
  } finally {
    await connector.close();
  }
}

/**
 * `count` plain LOGIN roles made by the connector's login, each with a session open: the floor's roles. They
 * may connect as members of one group role, so that DROP ROLE alone drops them (no DROP OWNED needed).
 */
async function floorRoles(
  stack: BenchStack,
  count: number,
): Promise<{ roles: string[]; close(): Promise<void> }> {
  floorRuns += 1;
  const password = randomBytes(18).toString('hex');
  const group = `floor${floorRuns}_login`;
  const roles = Array.from({ length: count }, (_, index) => `floor${floorRuns}_${index}`);
  await withClient(stack.env.BENCH_TARGET_DB_URL!, async (client) => {
    await client.query(`CREATE ROLE ${group} NOLOGIN; GRANT CONNECT ON DATABASE bench_target TO ${group}`);
    for (const role of roles)
      await client.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}' IN ROLE ${group}`);
  });
  const urls = roles.map((role) => {
    const url = new URL(stack.targetAdminUrl);
    url.username = role;
    url.password = password;
    return url.toString();
  });
  const sessions = await openSessions(urls);
  return { roles, close: () => sessions.close() };
}

async function run(context: BenchContext) {
  const window = context.quick ? { count: 20, spreadMs: 2_000 } : { count: 500, spreadMs: 60_000 };
  // Every grant holds a session, twice over (a floor's and the project's are never open together) + the apps.
  const stack = await startBenchStack({ worker: false, maxConnections: window.count + 200 });
  let sessions: OpenSessions | undefined;
  try {
    const seeded = await seedProject(stack, window.count);
    context.log(
      `${seeded.copies.length} ACTIVE postgres grants minted, copied from request ${seeded.templateRequestId}`,
    );
    const comparison = await compareRevocations(
      stack,
      `postgres revocation with an open session, ${window.count} grants over ${window.spreadMs / 1000} s`,
      'bare BullMQ + NOLOGIN, terminate, DROP ROLE',
      window,
      context,
      {
        project: async () => {
          sessions = await openSessions(seeded.urls);
          return projectRevocations(stack, seeded.copies, window, context);
        },
        floorRoles: () => floorRoles(stack, window.count),
      },
    );
    const terminated = sessions?.terminated() ?? 0;
    return {
      params: {
        grants: window.count,
        spreadSeconds: window.spreadMs / 1000,
        workerConcurrency: 8,
        floorPool: 8,
      },
      comparisons: [comparison],
      notes: [
        `sessions ended by the project's revocations: ${terminated} of ${window.count}`,
        'lateness: grants.revoked_at - not_after (project), Date.now() - notAfter after DROP ROLE (floor)',
        'cpuMsPerRevocation: worker process CPU (user + system) from the first due time to the last revocation',
        'grants: one request activated through the API, copies minted by the postgres connector (mint) with rows copied',
      ],
    };
  } finally {
    await sessions?.close();
    await stack.stop();
  }
}

export const revocationPostgresBench: Benchmark = {
  name: 'revocation-postgres',
  description:
    '500 postgres grants with an open session over 60 s; floor: bare BullMQ + NOLOGIN, terminate, DROP ROLE',
  run,
};
