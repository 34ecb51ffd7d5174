// The README's promise for `npm start`: with nothing configured, apps/dev/start.ts brings up embedded PostgreSQL,
// a redis-server, the broker and the worker, prints the URL once the broker is ready, and Ctrl-C stops every one
// of them and exits 0. Built into a temp outDir (never the shared dist/) and run against a temp JIT_DATA_DIR.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import pg from 'pg';
import { freePort } from '../../libs/devstack/free-port.js';
import { SoftAuthenticator } from '../support/soft-authenticator.js';
import { PROJECT_ROOT, sessionCookieFrom, waitFor } from '../support/stack.js';
import { sharedBuild } from '../support/temp-build.js';

jest.setTimeout(180_000);

const execFileAsync = promisify(execFile);

const BUILD_TIMEOUT_MS = 120_000;
const BANNER_DEADLINE_MS = 90_000;
const EXIT_DEADLINE_MS = 30_000;
const OUTPUT_TAIL_LINES = 200;
const BANNER_RULE = '-'.repeat(72);
/** How long the banner must stay the last output (start.js itself waits for 1 s of silence before it). */
const QUIET_CHECK_MS = 1_000;

/** One process as seen in /proc (or `ps`); `identity` tells a recycled pid from the original process. */
interface ProcessInfo {
  pid: number;
  ppid: number;
  state: string;
  name: string;
  command: string;
  identity: string;
}

const hasProc = existsSync('/proc/self/stat');

async function readProc(pid: number): Promise<ProcessInfo | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so split after the last ')'.
    const close = stat.lastIndexOf(')');
    const fields = stat.slice(close + 2).split(' ');
    const command = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    return {
      pid,
      ppid: Number(fields[1]),
      state: fields[0] ?? '?',
      name: stat.slice(stat.indexOf('(') + 1, close),
      command: command.split('\0').join(' ').trim(),
      // Field 22, the start time in clock ticks since boot.
      identity: fields[19] ?? '',
    };
  } catch {
    return undefined; // Gone while we looked.
  }
}

async function processTable(): Promise<Map<number, ProcessInfo>> {
  const table = new Map<number, ProcessInfo>();
  if (hasProc) {
    for (const entry of await readdir('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const info = await readProc(Number(entry));
      if (info !== undefined) table.set(info.pid, info);
    }
    return table;
  }
  // No /proc (macOS): BSD and procps `ps` both take these columns; the last one may hold spaces.
  const ps = async (last: 'comm' | 'args'): Promise<Map<number, string[]>> => {
    const columns = ['pid', 'ppid', 'stat', last].flatMap((column) => ['-o', `${column}=`]);
    const { stdout } = await execFileAsync('ps', ['-A', ...columns]);
    const rows = new Map<number, string[]>();
    for (const line of stdout.split('\n')) {
      const match = /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(line);
      if (match !== null) rows.set(Number(match[1]), match.slice(2));
    }
    return rows;
  };
  const [names, commands] = await Promise.all([ps('comm'), ps('args')]);
  for (const [pid, [ppid = '', state = '', comm = '']] of names) {
    const command = commands.get(pid)?.[2] ?? '';
    // Without a start time, the executable tells a recycled pid apart (PostgreSQL rewrites its args).
    table.set(pid, { pid, ppid: Number(ppid), state, name: path.basename(comm), command, identity: comm });
  }
  return table;
}

function descendantsOf(pid: number, table: Map<number, ProcessInfo>): ProcessInfo[] {
  const found: ProcessInfo[] = [];
  const parents = [pid];
  for (let parent = parents.pop(); parent !== undefined; parent = parents.pop()) {
    for (const info of table.values()) {
      if (info.ppid === parent) {
        found.push(info);
        parents.push(info.pid);
      }
    }
  }
  return found;
}

/** Still there, and still the same process; a zombie has exited and counts as gone. */
function stillRunning(recorded: ProcessInfo, table: Map<number, ProcessInfo>): boolean {
  try {
    process.kill(recorded.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  const now = table.get(recorded.pid);
  return now !== undefined && now.identity === recorded.identity && !now.state.startsWith('Z');
}

function describeProcess(info: ProcessInfo): string {
  return `${info.pid} ${info.name} (${info.command || '?'})`;
}

/** The user's environment without anything that would make start.js skip a service or change its mode. */
function startEnv(overrides: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of [
    'DATABASE_URL',
    'REDIS_URL',
    'BROKER_MASTER_KEY',
    'DEMO_TARGET_DB_URL',
    'NODE_ENV',
    'PUBLIC_URL',
    'HOST',
    'POLICY_DIR',
    'QUEUE_PREFIX',
    'INTROSPECTION_CLIENTS',
    'FORCE_COLOR',
    // jest's --experimental-vm-modules: `npm start` runs without it.
    'NODE_OPTIONS',
    // The e2e tier's own servers (globalSetup), the PostgreSQL superuser's URL among them.
    'E2E_PG_ADMIN_URL',
    'E2E_REDIS_URL',
    'MIGRATION_DATABASE_URL',
  ]) {
    delete env[name];
  }
  return { ...env, ...overrides };
}

describe('npm start (apps/dev/start.ts)', () => {
  let buildDir: string | undefined;
  let dataDir: string | undefined;
  let port = 0;
  let start: ChildProcess | undefined;
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let bannerSeen = false;
  const descendants: ProcessInfo[] = [];
  const output: string[] = [];
  /** Everything the current start.js printed on stdout, in order (output keeps only a tail of all runs). */
  let launchLines: string[] = [];

  const tail = (): string => output.join('\n');
  const baseUrl = (): string => `http://127.0.0.1:${port}`;

  const record = (stream: string, line: string): void => {
    output.push(`${stream}: ${line}`);
    if (output.length > OUTPUT_TAIL_LINES) output.shift();
    if (stream === 'out') launchLines.push(line);
    if (stream === 'out' && line.trim() === `Broker ready: http://localhost:${port}`) bannerSeen = true;
  };

  /** Merges the current descendants of start.js into `descendants`; must run while start.js is alive. */
  const recordDescendants = async (): Promise<void> => {
    if (start?.pid === undefined) return;
    const known = new Set(descendants.map((info) => info.pid));
    for (const info of descendantsOf(start.pid, await processTable())) {
      if (!known.has(info.pid)) descendants.push(info);
    }
  };

  /** The same failure, with what start.js printed. */
  const withOutput = (error: unknown): Error =>
    new Error(`${(error as Error).message}\n--- start.js output ---\n${tail()}`, { cause: error });

  const waitForExit = (timeoutMs: number) =>
    waitFor(async () => exit, timeoutMs, 'start.js to exit').catch((error: unknown) => {
      throw withOutput(error);
    });

  /** Runs start.js (again: same JIT_DATA_DIR and port) until it prints its banner. */
  const launch = async (): Promise<void> => {
    exit = undefined;
    bannerSeen = false;
    launchLines = [];
    const child = spawn(process.execPath, [path.join(buildDir!, 'dist', 'apps', 'dev', 'start.js')], {
      cwd: buildDir!,
      env: startEnv({
        PORT: String(port),
        JIT_DATA_DIR: dataDir!,
        // The outDir's parent is not the checkout: point at its policies, as README's POLICY_DIR allows.
        POLICY_DIR: path.join(PROJECT_ROOT, 'policies'),
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    start = child;
    child.once('exit', (code, signal) => {
      exit = { code, signal };
    });
    child.once('error', (error) => {
      record('err', `spawn failed: ${error.message}`);
      exit ??= { code: null, signal: null };
    });
    createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (line) => record('out', line));
    createInterface({ input: child.stderr, crlfDelay: Infinity }).on('line', (line) => record('err', line));

    try {
      await waitFor(
        async () => {
          if (bannerSeen) return true;
          if (exit !== undefined)
            throw new Error(`start.js exited (${JSON.stringify(exit)}) before the banner`);
          return undefined;
        },
        BANNER_DEADLINE_MS,
        `"Broker ready: http://localhost:${port}"`,
      );
      // Closed by its rule: the banner, with the link if there is one, is complete.
      await waitFor(
        async () => (launchLines.filter((line) => line === BANNER_RULE).length >= 2 ? true : undefined),
        5_000,
        'the end of the banner',
      );
    } catch (error) {
      throw withOutput(error);
    }
    await recordDescendants();
  };

  /** The first-admin link in the current run's banner, or null when it printed none. */
  const printedInvite = (): string | null => {
    const linkPattern = new RegExp(`^\\s*http://localhost:${port}/enroll\\?invite=([A-Za-z0-9_-]{43})$`);
    return launchLines.map((line) => linkPattern.exec(line)?.[1]).find(Boolean) ?? null;
  };

  /**
   * Nothing but the banner (and the link in it) follows the apps' last log line, one second on: it is what
   * the person sees while start.js waits.
   */
  const expectBannerLast = async (): Promise<void> => {
    await delay(QUIET_CHECK_MS);
    const start = launchLines.findLastIndex((line) => line.trim().startsWith('Broker ready:'));
    expect(start).toBeGreaterThan(0);
    const after = launchLines.slice(start + 1);
    const bannerLine =
      /^(\s*Public URL:.*|\s*First admin enrollment link.*|\s*http:\/\/\S+\/enroll\?invite=\S+|\s*Stop with Ctrl-C\.|-{72}|)$/;
    expect(after.filter((line) => !bannerLine.test(line))).toEqual([]);
  };

  const post = (route: string, body: unknown) =>
    fetch(`${baseUrl()}${route}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: `http://localhost:${port}` },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(5_000),
    });

  beforeAll(async () => {
    buildDir = await sharedBuild(BUILD_TIMEOUT_MS);
    // Directly under the temp root: as root, PostgreSQL runs as `postgres` and must traverse its parent.
    dataDir = await mkdtemp(path.join(tmpdir(), 'jit-npm-start-data-'));
    port = await freePort();
    await launch();
  });

  afterAll(async () => {
    if (start !== undefined && exit === undefined) {
      await recordDescendants().catch(() => undefined);
      start.kill('SIGKILL');
      await waitForExit(10_000).catch(() => undefined);
    }
    // Whatever a failed run left behind: only processes recorded as start.js's, and only if still the same.
    const table = await processTable();
    for (const info of descendants) {
      if (!stillRunning(info, table)) continue;
      try {
        process.kill(info.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    if (dataDir !== undefined) {
      await rm(dataDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    }
  });

  let firstInvite: string | null = null;

  test('prints the apps logs readably, and the first-admin link as the last thing before it waits', async () => {
    firstInvite = printedInvite();
    expect(firstInvite).not.toBeNull();
    expect(tail()).toContain('First admin enrollment link');
    await expectBannerLast();
    // pino-pretty, not JSON: `[broker] [12:00:00.000] INFO: (Broker) Listening on ...`.
    const appLines = launchLines.filter((line) => /^\[(broker|worker)\] /.test(line));
    expect(appLines.length).toBeGreaterThan(3);
    expect(appLines.filter((line) => /^\[(broker|worker)\] \{/.test(line))).toEqual([]);
    expect(appLines).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^\[broker\] \[\d\d:\d\d:\d\d\.\d{3}\] INFO.*Listening on/),
      ]),
    );
    // The broker's request lines (JSON with req and res, never headers) become `GET /path status time`.
    expect(appLines).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^\[broker\] \[[\d:.]+\] INFO: GET \/health\/ready 200 \d+ms$/),
      ]),
    );
  });

  test('serves /health/ready, the error envelope on /api/me and the JWKS', async () => {
    const ready = await fetch(`${baseUrl()}/health/ready`, { signal: AbortSignal.timeout(5_000) });
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ok', checks: { postgres: 'up', redis: 'up' } });

    const me = await fetch(`${baseUrl()}/api/me`, { signal: AbortSignal.timeout(5_000) });
    expect(me.status).toBe(401);
    expect(await me.json()).toEqual({
      error: expect.objectContaining({ code: 'UNAUTHENTICATED', message: expect.any(String) }),
    });

    const jwks = await fetch(`${baseUrl()}/.well-known/jwks.json`, { signal: AbortSignal.timeout(5_000) });
    expect(jwks.status).toBe(200);
    const { keys } = (await jwks.json()) as { keys: Array<Record<string, unknown>> };
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatchObject({
      kty: 'EC',
      crv: 'P-256',
      alg: 'ES256',
      use: 'sig',
      kid: expect.any(String),
    });
    expect(keys[0]).not.toHaveProperty('d');
  });

  test('SIGHUP to the broker reloads the policy and keeps it serving', async () => {
    await recordDescendants();
    const broker = descendants.find((info) => /apps[/\\]broker[/\\]main\.js$/.test(info.command));
    expect(broker).toBeDefined();
    const before = output.length;
    process.kill(broker!.pid, 'SIGHUP');
    await waitFor(
      async () =>
        output.slice(before).some((line) => line.includes('in force (unchanged)')) ? true : undefined,
      10_000,
      'the broker to log the reloaded policy',
    ).catch((error: unknown) => {
      throw withOutput(error);
    });
    const ready = await fetch(`${baseUrl()}/health/ready`, { signal: AbortSignal.timeout(5_000) });
    expect(ready.status).toBe(200);
  });

  test('keeps its state in JIT_DATA_DIR: a 0600 master key and the PostgreSQL cluster', async () => {
    const keyFile = path.join(dataDir!, 'master.key');
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    expect(Buffer.from((await readFile(keyFile, 'utf8')).trim(), 'base64')).toHaveLength(32);
    expect(existsSync(path.join(dataDir!, 'pg', 'PG_VERSION'))).toBe(true);
  });

  test('the broker and worker connect as broker_runtime, which can neither rewrite audit_events nor reach other databases', async () => {
    // The superuser's password sits beside the cluster; its port is the fourth line of postmaster.pid.
    const password = (await readFile(path.join(dataDir!, 'pg-password'), 'utf8')).trim();
    const pgPort = (await readFile(path.join(dataDir!, 'pg', 'postmaster.pid'), 'utf8')).split('\n')[3];
    const admin = new pg.Client({
      connectionString: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${pgPort}/broker`,
    });
    await admin.connect();
    try {
      const { rows: sessions } = await admin.query(
        `SELECT DISTINCT application_name AS app, usename AS role FROM pg_stat_activity
          WHERE application_name IN ('jit-broker', 'jit-worker') ORDER BY 1`,
      );
      expect(sessions).toEqual([
        { app: 'jit-broker', role: 'broker_runtime' },
        { app: 'jit-worker', role: 'broker_runtime' },
      ]);
      const { rows } = await admin.query(
        `SELECT has_table_privilege('broker_runtime', 'audit_events', 'UPDATE, DELETE, TRUNCATE') AS rewrites,
                has_table_privilege('broker_runtime', 'audit_events', 'SELECT, INSERT') AS appends,
                (SELECT tableowner FROM pg_tables WHERE tablename = 'audit_events') AS owner,
                has_database_privilege('broker_runtime', 'postgres', 'CONNECT') AS reaches_postgres,
                has_database_privilege('demo_connector', 'broker', 'CONNECT') AS connector_reaches_broker`,
      );
      expect(rows[0]).toEqual({
        rewrites: false,
        appends: true,
        owner: 'broker_owner',
        reaches_postgres: false,
        connector_reaches_broker: false,
      });
    } finally {
      await admin.end();
    }
  });

  // The launcher migrates as broker_owner itself: code in the broker or worker must find no way to log in as the
  // owner (who can switch off audit_events' trigger) or as the superuser.
  (hasProc ? test : test.skip)(
    'the broker and worker environments hold no owner URL and no owner or superuser password',
    async () => {
      await recordDescendants();
      const superuserPassword = (await readFile(path.join(dataDir!, 'pg-password'), 'utf8')).trim();
      for (const app of ['broker', 'worker']) {
        const child = descendants.find((info) =>
          new RegExp(`apps[/\\\\]${app}[/\\\\]main\\.js$`).test(info.command),
        );
        expect({ app, found: child !== undefined }).toEqual({ app, found: true });
        const environ = await readFile(`/proc/${child!.pid}/environ`, 'utf8');
        const variables = environ.split('\0').filter(Boolean);
        const names = variables.map((variable) => variable.slice(0, variable.indexOf('=')));
        expect(names).toContain('DATABASE_URL');
        expect(names).not.toContain('MIGRATION_DATABASE_URL');
        expect(variables.filter((variable) => variable.includes(superuserPassword))).toEqual([]);
        // Any PostgreSQL URL handed over logs in as the runtime or the connector role, never as these.
        const logins = variables
          .map((variable) => variable.slice(variable.indexOf('=') + 1))
          .filter((value) => /^postgres(ql)?:\/\//.test(value))
          .map((value) => decodeURIComponent(new URL(value).username));
        expect({ app, logins: logins.sort() }).toEqual({
          app,
          logins: ['broker_runtime', 'demo_connector'],
        });
      }
    },
  );

  test('Ctrl-C (SIGINT to start.js alone) stops every child process and exits 0', async () => {
    await recordDescendants();
    const names = descendants.map((info) => info.name);
    expect(names).toEqual(expect.arrayContaining(['redis-server', 'postgres']));
    const commands = descendants.map((info) => info.command);
    expect(commands).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/apps[/\\]broker[/\\]main\.js$/),
        expect.stringMatching(/apps[/\\]worker[/\\]main\.js$/),
      ]),
    );

    start!.kill('SIGINT');
    expect(await waitForExit(EXIT_DEADLINE_MS)).toEqual({ code: 0, signal: null });

    const table = await processTable();
    expect(descendants.filter((info) => stillRunning(info, table)).map(describeProcess)).toEqual([]);
    await expect(fetch(`${baseUrl()}/health/live`, { signal: AbortSignal.timeout(2_000) })).rejects.toThrow();
  });

  test('restarted while no admin exists, it again ends with a link (a new one) that enrolls the first admin', async () => {
    await launch();
    const invite = printedInvite();
    expect(invite).not.toBeNull();
    expect(invite).not.toBe(firstInvite);
    await expectBannerLast();
    // The previous run's link was replaced.
    const stale = await post('/api/auth/enroll/options', { invite: firstInvite });
    expect(stale.status).toBeGreaterThanOrEqual(400);
    expect(stale.status).toBeLessThan(500);

    const origin = `http://localhost:${port}`;
    const authenticator = new SoftAuthenticator({ origin });
    const options = await post('/api/auth/enroll/options', { invite });
    expect(options.status).toBe(200);
    const verified = await post('/api/auth/enroll/verify', {
      invite,
      response: authenticator.register((await options.json()) as never),
    });
    expect(verified.status).toBe(200);
    const cookie = sessionCookieFrom(verified.headers);
    const me = await fetch(`${baseUrl()}/api/me`, {
      headers: { cookie },
      signal: AbortSignal.timeout(5_000),
    });
    expect(await me.json()).toMatchObject({ username: 'admin', roles: ['admin'] });
    // One use only.
    const again = await post('/api/auth/enroll/options', { invite });
    expect(again.status).toBe(410);
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe('INVITE_USED');
  });

  test('restarted once an admin exists, it prints no link; Ctrl-C still exits 0', async () => {
    start!.kill('SIGINT');
    expect(await waitForExit(EXIT_DEADLINE_MS)).toEqual({ code: 0, signal: null });
    await launch();
    expect(printedInvite()).toBeNull();
    expect(launchLines.join('\n')).not.toContain('First admin enrollment link');
    await expectBannerLast();
    start!.kill('SIGINT');
    expect(await waitForExit(EXIT_DEADLINE_MS)).toEqual({ code: 0, signal: null });
  });
});
