// `npm start`: the whole stack on one machine. Embedded PostgreSQL and a redis-server child unless
// DATABASE_URL / REDIS_URL point elsewhere, then the broker and the worker; Ctrl-C stops all of it.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { loadConfig } from '../../libs/config/config.js';
import { connectedRole, createDataSource, migrateAsOwner } from '../../libs/db/data-source.js';
import {
  createBrokerDatabase,
  createConnectorRole,
  revokePublicConnect,
} from '../../libs/devstack/database-roles.js';
import { createDatabase } from '../../libs/devstack/databases.js';
import { startEmbeddedPostgres } from '../../libs/devstack/embedded-postgres.js';
import { startRedisServer } from '../../libs/devstack/redis-server.js';
import { readSecretFile, writeSecretFile } from '../../libs/devstack/secret-file.js';
import { ensureFirstAdminInvite } from '../../libs/identity/invites.js';
import { humanReadableLogs, type LineFormatter } from './log-format.js';

// This file runs as <outDir>/apps/dev/start.js and starts the broker and worker compiled beside it. `npm start`
// builds into <checkout>/dist, so the checkout (policies/, .data/) is the outDir's parent; a build elsewhere
// (`tsc --outDir`) still runs, given POLICY_DIR and JIT_DATA_DIR.
const distDir = fileURLToPath(new URL('../../', import.meta.url));
const root = path.resolve(distDir, '..');
const dataDir = path.resolve(process.env.JIT_DATA_DIR || path.join(root, '.data'));

const READY_DEADLINE_MS = 60_000;
/** The roles prepareDemoTarget() creates and policies/example.yaml's demo-db entitlements grant. */
const DEMO_GRANTABLE_ROLES = ['app_read', 'app_write'];
const READY_POLL_MS = 250;
const APP_STOP_GRACE_MS = 10_000;
/** The banner waits until the apps have been silent this long (their boot lines done), at most QUIET_DEADLINE_MS. */
const QUIET_MS = 1_000;
const QUIET_DEADLINE_MS = 15_000;

interface RunningApp {
  name: string;
  child: ChildProcess;
  exited: Promise<void>;
}

/** Thrown inside boot() once a stop was asked for, so that nothing new starts. */
class StopRequested extends Error {}

const services: Array<() => Promise<void>> = [];
const apps: RunningApp[] = [];
let stopRequested = false;
let shuttingDown: Promise<never> | undefined;
let formatLine: LineFormatter = (line) => line;
/** When a child last wrote a line. */
let lastAppOutputAt = Date.now();

function say(message: string): void {
  console.log(`[dev] ${message}`);
}

/** `.data/pg` under the working directory (as with `npm start`), the absolute path elsewhere. */
function shown(file: string): string {
  const relative = path.relative(process.cwd(), file);
  const outside = relative === '..' || relative.startsWith(`..${path.sep}`) || path.isAbsolute(relative);
  return relative === '' || outside ? file : relative;
}

function checkpoint(): void {
  if (stopRequested) throw new StopRequested();
}

async function boot(): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await chmod(dataDir, 0o700);

  const env: NodeJS.ProcessEnv = { ...process.env };
  env.NODE_ENV ||= 'development';
  env.PORT ||= '3000';
  env.PUBLIC_URL ||= `http://localhost:${env.PORT}`;
  env.POLICY_DIR ||= path.join(root, 'policies');
  env.BROKER_MASTER_KEY ||= await masterKey();
  // The children's output goes through pipes here; keep their colours when a person is watching.
  if (process.stdout.isTTY && env.FORCE_COLOR === undefined) env.FORCE_COLOR = '1';

  if (!env.DATABASE_URL) {
    const pgDir = path.join(dataDir, 'pg');
    say(`starting embedded PostgreSQL (data in ${shown(pgDir)})`);
    const postgres = await startEmbeddedPostgres({
      dataDir: pgDir,
      persistent: true,
      onLog: (line) => {
        if (/\b(WARNING|ERROR|FATAL|PANIC):/.test(line)) console.error(`[postgres] ${line}`);
      },
    });
    services.push(postgres.stop);
    checkpoint();
    // Least privilege (README: "Database roles"): broker_owner migrates, here, before the apps start; the broker
    // and worker connect as broker_runtime, which can append to audit_events but not rewrite it, and never see
    // the owner's URL. Each start gives fresh passwords.
    const roles = { owner: 'broker_owner', runtime: 'broker_runtime' };
    const broker = await createBrokerDatabase(postgres.adminUrl, 'broker', roles);
    await migrate(broker.ownerUrl, roles.runtime);
    env.DATABASE_URL = broker.runtimeUrl;
    const demoTarget = await createDatabase(postgres.adminUrl, 'demo_target');
    await prepareDemoTarget(demoTarget);
    // The postgres connector creates and drops temporary roles as demo_connector, which may grant only these.
    env.DEMO_TARGET_DB_URL = await createConnectorRole(demoTarget, 'demo_connector', DEMO_GRANTABLE_ROLES);
    // Every role may connect to every database by default: a minted login would reach these two too.
    for (const database of ['postgres', 'template1']) await revokePublicConnect(postgres.adminUrl, database);
  } else {
    // Your own server: with MIGRATION_DATABASE_URL, migrate as that owner here, as above.
    if (env.MIGRATION_DATABASE_URL)
      await migrate(env.MIGRATION_DATABASE_URL, await connectedRole(env.DATABASE_URL));
    if (!env.DEMO_TARGET_DB_URL)
      say('DATABASE_URL is set and DEMO_TARGET_DB_URL is not: no demo target database.');
  }
  // Code in the broker or worker that could log in as the owner could switch off audit_events' trigger.
  delete env.MIGRATION_DATABASE_URL;

  checkpoint();
  if (!env.REDIS_URL) {
    const dir = path.join(dataDir, 'redis');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const redis = await startRedisServer({ dir });
    services.push(redis.stop);
    env.REDIS_URL = redis.url;
  }

  checkpoint();
  formatLine = await humanReadableLogs(process.stdout.isTTY === true);
  startApp('broker', env);
  startApp('worker', env);

  await waitUntilReady(Number(env.PORT));
  checkpoint();
  const enrollment = await firstAdminEnrollment(env);
  // The link is the last thing on screen, not scrolled away by the apps' boot lines.
  await waitUntilQuiet();
  checkpoint();
  const url = `http://localhost:${env.PORT}`;
  const rule = '-'.repeat(72);
  console.log(`\n${rule}\n  Broker ready: ${url}`);
  if (env.PUBLIC_URL !== url) console.log(`  Public URL:   ${env.PUBLIC_URL}`);
  if (enrollment !== null) {
    console.log(`  First admin enrollment link (one use, until ${enrollment.expiresAt.toISOString()}):`);
    console.log(`    ${enrollment.url}`);
  }
  console.log(`  Stop with Ctrl-C.\n${rule}\n`);
}

/**
 * A one-time link to enroll the first admin, while no admin holds a passkey; each start replaces the
 * previous unused link. Once an admin exists, invites come from the admin UI or `npm run cli -- invite`.
 */
async function firstAdminEnrollment(
  env: NodeJS.ProcessEnv,
): Promise<{ url: string; expiresAt: Date } | null> {
  const config = loadConfig(env);
  const dataSource = createDataSource(config.databaseUrl, { poolSize: 1, applicationName: 'jit-dev-start' });
  await dataSource.initialize();
  try {
    const invite = await ensureFirstAdminInvite(dataSource, {
      publicUrl: config.http.publicUrl,
      ttlSeconds: config.inviteTtlSeconds,
    });
    return invite && { url: invite.url, expiresAt: invite.expiresAt };
  } finally {
    await dataSource.destroy();
  }
}

/** Applies pending migrations as the owner and grants `runtimeRole` its privileges, before the apps start. */
async function migrate(ownerUrl: string, runtimeRole: string): Promise<void> {
  const applied = await migrateAsOwner(ownerUrl, runtimeRole);
  if (applied.length > 0) say(`migrated: ${applied.join(', ')}`);
}

/** The key that encrypts signing keys at rest; generated once, then reused so restarts can decrypt. */
async function masterKey(): Promise<string> {
  const file = path.join(dataDir, 'master.key');
  const stored = await readSecretFile(file);
  if (stored !== null) return stored;
  const key = randomBytes(32).toString('base64');
  await writeSecretFile(file, key);
  say(`generated a master key in ${shown(file)}`);
  return key;
}

/** Roles and a table for the postgres connector's demo entitlements; safe to run on every start. */
async function prepareDemoTarget(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    // One simple-protocol query string runs as one implicit transaction.
    await client.query(`
      DO $$
      BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_read') THEN CREATE ROLE app_read NOLOGIN; END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_write') THEN CREATE ROLE app_write NOLOGIN; END IF;
      END
      $$;
      CREATE TABLE IF NOT EXISTS public.orders (id serial PRIMARY KEY, item text NOT NULL, qty int NOT NULL);
      INSERT INTO public.orders (item, qty)
        SELECT item, qty FROM (VALUES ('widget', 3), ('gadget', 1)) AS seed (item, qty)
        WHERE NOT EXISTS (SELECT 1 FROM public.orders);
      GRANT USAGE ON SCHEMA public TO app_read, app_write;
      GRANT SELECT ON public.orders TO app_read;
      GRANT SELECT, INSERT, UPDATE, DELETE ON public.orders TO app_write;
      GRANT USAGE, SELECT ON SEQUENCE public.orders_id_seq TO app_write;
    `);
  } finally {
    await client.end();
  }
}

/** Runs an app with its output forwarded line by line under its name. */
function startApp(name: string, env: NodeJS.ProcessEnv): void {
  const child = spawn(process.execPath, [path.join(distDir, 'apps', name, 'main.js')], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      resolve();
      if (!stopRequested) {
        const how = signal === null ? `with code ${code}` : `on ${signal}`;
        void shutdown(1, `${name} exited unexpectedly ${how}; stopping everything`);
      }
    });
    child.once('error', (error) => {
      resolve();
      if (!stopRequested) void shutdown(1, `${name} could not be started: ${error.message}`);
    });
  });
  const forward = (stream: NodeJS.WriteStream) => (line: string) => {
    const shown = formatLine(line);
    if (shown !== null) stream.write(`[${name}] ${shown}\n`);
  };
  forwardLines(child.stdout, forward(process.stdout));
  forwardLines(child.stderr, forward(process.stderr));
  apps.push({ name, child, exited });
}

function forwardLines(stream: Readable, onLine: (line: string) => void): void {
  createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
    lastAppOutputAt = Date.now();
    onLine(line);
  });
}

/** Until the apps have written nothing for QUIET_MS (or QUIET_DEADLINE_MS has passed). */
async function waitUntilQuiet(): Promise<void> {
  const deadline = Date.now() + QUIET_DEADLINE_MS;
  for (let silent = Date.now() - lastAppOutputAt; silent < QUIET_MS; silent = Date.now() - lastAppOutputAt) {
    checkpoint();
    if (Date.now() > deadline) return;
    await delay(QUIET_MS - silent);
  }
}

async function waitUntilReady(port: number): Promise<void> {
  const deadline = Date.now() + READY_DEADLINE_MS;
  for (;;) {
    checkpoint();
    try {
      const response = await fetch(`http://127.0.0.1:${port}/health/ready`, {
        signal: AbortSignal.timeout(2_000),
      });
      await response.arrayBuffer();
      if (response.status === 200) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      throw new Error(`the broker did not answer 200 on /health/ready within ${READY_DEADLINE_MS / 1000} s`);
    }
    await delay(READY_POLL_MS);
  }
}

async function stopApp(app: RunningApp): Promise<void> {
  const { child } = app;
  if (child.exitCode === null && child.signalCode === null) {
    const kill = setTimeout(() => {
      say(`${app.name} did not stop within ${APP_STOP_GRACE_MS / 1000} s; killing it`);
      child.kill('SIGKILL');
    }, APP_STOP_GRACE_MS);
    child.kill('SIGTERM');
    await app.exited;
    clearTimeout(kill);
  }
}

let booted: Promise<void> = Promise.resolve();

/** Stops the apps first (they hold connections), then Redis, then PostgreSQL, and exits with `code`. */
function shutdown(code: number, reason?: string): Promise<never> {
  stopRequested = true;
  shuttingDown ??= (async () => {
    if (reason !== undefined) (code === 0 ? console.log : console.error)(`[dev] ${reason}`);
    // Whatever boot() is in the middle of starting must be registered before it can be stopped.
    await booted;
    await Promise.all(apps.map(stopApp));
    for (let stop = services.pop(); stop !== undefined; stop = services.pop()) {
      await stop().catch((error: unknown) => console.error('[dev] stopping a service failed:', error));
    }
    process.exit(code);
  })();
  return shuttingDown;
}

function takeOverSignals(): void {
  // embedded-postgres registers handlers that stop PostgreSQL and exit at once on these signals, racing the
  // ordered shutdown (apps first) and dropping our exit code. Its 'exit' hook stays as a last resort.
  for (const event of ['SIGINT', 'SIGTERM', 'SIGHUP', 'beforeExit'] as const)
    process.removeAllListeners(event);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      if (shuttingDown === undefined) void shutdown(0, `${signal}: stopping`);
      else say('still stopping...');
    });
  }
  // Last resort for paths that never reach shutdown(): children must not outlive this process.
  process.on('exit', () => {
    for (const { child } of apps)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  });
}

takeOverSignals();
booted = boot().then(
  () => undefined,
  (error: unknown) => {
    if (error instanceof StopRequested) return;
    void shutdown(1, error instanceof Error ? error.message : String(error));
  },
);
