import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { migrateAsOwner } from '../../libs/db/data-source.js';
import {
  createBrokerDatabase,
  createConnectorRole,
  revokePublicConnect,
} from '../../libs/devstack/database-roles.js';
import { createDatabase, databaseUrl, withClient } from '../../libs/devstack/databases.js';
import { startEmbeddedPostgres } from '../../libs/devstack/embedded-postgres.js';
import { freePort } from '../../libs/devstack/free-port.js';
import { startRedisServer } from '../../libs/devstack/redis-server.js';
export { withClient };
import { answers200, startApp, waitUntil, type AppProcess } from './apps.js';
import { BENCH_POLICY_DIR } from './paths.js';

/** The role the bench policy's postgres entitlement grants (scope.grantRoles). */
export const TARGET_GRANT_ROLE = 'bench_read';

/** PostgreSQL (fsync on) and redis-server of one benchmark; floors measure on these same servers. */
export interface BenchServices {
  /** Superuser URL of the `postgres` database. */
  adminUrl: string;
  redisUrl: string;
  /** A scratch directory for logs and files, deleted on stop. */
  workDir: string;
  stop(): Promise<void>;
}

/** The real broker and worker (built JS, NODE_ENV=production, info logs to files) on their own services. */
export interface BenchStack extends BenchServices {
  baseUrl: string;
  /** The browser origin the broker expects (`http://localhost:PORT`). */
  origin: string;
  /** The environment the broker and worker run with (DATABASE_URL is the runtime role). */
  env: NodeJS.ProcessEnv;
  /** Owner of the broker database (migrations; the bench's seeding as an operator would). */
  ownerUrl: string;
  /** Superuser on the broker database, for reading results behind the broker's back. */
  brokerAdminUrl: string;
  /** Superuser on the postgres connector's target database. */
  targetAdminUrl: string;
  broker: AppProcess;
  /** Null until startWorker() when started with `worker: false`. */
  worker: AppProcess | null;
  /** Starts the worker and resolves once its boot sweep has scheduled every unrevoked grant. */
  startWorker(): Promise<AppProcess>;
}

export interface BenchStackOptions {
  /** Defaults to bench/policies. */
  policyDir?: string;
  /** Extra or overriding environment for broker and worker. */
  env?: Record<string, string>;
  /** Start the worker with the broker (default true). */
  worker?: boolean;
  /** PostgreSQL's max_connections, when the default 100 is too few (sessions held open by a benchmark). */
  maxConnections?: number;
}

/**
 * Starts PostgreSQL with production durability (fsync, synchronous_commit on) and a redis-server, in a temp
 * dir. With `maxConnections`, PostgreSQL is restarted once with that max_connections (default 100).
 */
export async function startServices(options: { maxConnections?: number } = {}): Promise<BenchServices> {
  const workDir = await mkdtemp(path.join(tmpdir(), 'jit-bench-'));
  const stops: Array<() => Promise<void>> = [() => rm(workDir, { recursive: true, force: true })];
  const stop = async () => {
    for (let next = stops.pop(); next; next = stops.pop()) await next().catch(console.error);
  };
  try {
    // persistent: true keeps initdb's and the server's default durability; the temp dir goes on stop.
    const dataDir = path.join(workDir, 'pg');
    let postgres = await startEmbeddedPostgres({ dataDir, persistent: true });
    // BENCH_PG_STAT_STATEMENTS=1 loads pg_stat_statements (bench/lib/statements.ts counts per operation).
    const statements = process.env.BENCH_PG_STAT_STATEMENTS === '1';
    if (options.maxConnections !== undefined || statements) {
      await withClient(postgres.adminUrl, async (client) => {
        if (options.maxConnections !== undefined)
          await client.query(`ALTER SYSTEM SET max_connections = ${Math.trunc(options.maxConnections)}`);
        if (statements)
          await client.query(`ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'`);
      });
      await postgres.stop();
      postgres = await startEmbeddedPostgres({ dataDir, persistent: true, port: postgres.port });
    }
    stops.push(postgres.stop);
    const redis = await startRedisServer({ dir: workDir });
    stops.push(redis.stop);
    return { adminUrl: postgres.adminUrl, redisUrl: redis.url, workDir, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Services, the broker database migrated as its owner (as `npm start` does), the target database, the apps. */
export async function startBenchStack(options: BenchStackOptions = {}): Promise<BenchStack> {
  const services = await startServices({ maxConnections: options.maxConnections });
  const apps: AppProcess[] = [];
  const stop = async () => {
    for (let app = apps.pop(); app; app = apps.pop()) await app.stop().catch(console.error);
    await services.stop();
  };
  try {
    const roles = { owner: 'bench_owner', runtime: 'bench_runtime' };
    const broker = await createBrokerDatabase(services.adminUrl, 'broker', roles);
    await migrateAsOwner(broker.ownerUrl, roles.runtime);
    const targetAdminUrl = await createDatabase(services.adminUrl, 'bench_target');
    await withClient(targetAdminUrl, (client) => client.query(`CREATE ROLE ${TARGET_GRANT_ROLE} NOLOGIN`));
    const connectorUrl = await createConnectorRole(targetAdminUrl, 'bench_connector', [TARGET_GRANT_ROLE]);
    for (const database of ['postgres', 'template1']) await revokePublicConnect(services.adminUrl, database);

    const port = await freePort();
    const env = appEnv(port, broker.runtimeUrl, services.redisUrl, connectorUrl, options);
    const brokerApp = await startApp('broker', env, services.workDir);
    apps.push(brokerApp);
    const baseUrl = `http://127.0.0.1:${port}`;
    await waitUntil(() => answers200(`${baseUrl}/health/ready`), 'the broker to be ready', brokerApp);
    const stack: BenchStack = {
      ...services,
      stop,
      baseUrl,
      origin: `http://localhost:${port}`,
      env,
      ownerUrl: broker.ownerUrl,
      brokerAdminUrl: databaseUrl(services.adminUrl, 'broker'),
      targetAdminUrl,
      broker: brokerApp,
      worker: null,
      async startWorker() {
        const worker = await startApp('worker', env, services.workDir);
        apps.push(worker);
        stack.worker = worker;
        await waitUntil(
          async () => (await readFile(worker.logFile, 'utf8')).includes('Boot sweep scheduled'),
          'the worker to finish its boot sweep',
          worker,
          300_000,
        );
        return worker;
      },
    };
    if (options.worker !== false) await stack.startWorker();
    return stack;
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Production settings; only the limits that one client address filing many requests would trip are relaxed. */
function appEnv(
  port: number,
  databaseUrl: string,
  redisUrl: string,
  connectorUrl: string,
  options: BenchStackOptions,
): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    NODE_ENV: 'production',
    LOG_LEVEL: 'info',
    PORT: String(port),
    HOST: '127.0.0.1',
    PUBLIC_URL: `http://localhost:${port}`,
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    POLICY_DIR: options.policyDir ?? BENCH_POLICY_DIR,
    BROKER_MASTER_KEY: randomBytes(32).toString('base64'),
    BENCH_TARGET_DB_URL: connectorUrl,
    MAX_OPEN_REQUESTS_PER_ENTITLEMENT: '1000000',
    MAX_OPEN_REQUESTS: '1000000',
    REQUEST_RATE_LIMIT: '1000000',
    IP_RATE_LIMIT: '1000000',
    ...options.env,
  };
}
