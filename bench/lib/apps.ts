import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { stopperOf } from '../../libs/devstack/child-stop.js';
import { cpuTimeMs } from './process-stats.js';
import { DIST_DIR, ROOT_DIR } from './paths.js';

const STOP_GRACE_MS = 10_000;
const READY_DEADLINE_MS = 60_000;

/** A child process the bench started (a broker, a worker, or a floor's stand-in), its log in a file. */
export interface AppProcess {
  name: string;
  pid: number;
  child: ChildProcess;
  logFile: string;
  /** CPU time (user + system, ms) it has used so far. */
  cpuMs(): Promise<number>;
  /** SIGTERM, then SIGKILL after a grace period; idempotent. */
  stop(): Promise<void>;
}

/**
 * Runs `node ...nodeArgs <script> ...args` from the checkout with `env`, stdout and stderr appended to
 * `logFile`.
 */
export async function spawnNode(
  name: string,
  script: string,
  env: NodeJS.ProcessEnv,
  logFile: string,
  args: string[] = [],
  nodeArgs: string[] = [],
): Promise<AppProcess> {
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], {
    cwd: ROOT_DIR,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = stopperOf(child, exited, STOP_GRACE_MS);
  return {
    name,
    pid: child.pid!,
    child,
    logFile,
    cpuMs: () => cpuTimeMs(child.pid!),
    stop,
  };
}

/**
 * Starts dist/apps/<name>/main.js (the built broker or worker) as `npm run start:<name>` does. With
 * BENCH_<NAME>_CPU_PROFILE=<file.cpuprofile> (BENCH_WORKER_CPU_PROFILE, BENCH_BROKER_CPU_PROFILE), the app
 * writes a V8 CPU profile of its whole run there when stopped (cpu-profile.ts).
 */
export function startApp(
  name: 'broker' | 'worker',
  env: NodeJS.ProcessEnv,
  logDir: string,
): Promise<AppProcess> {
  const profile = process.env[`BENCH_${name.toUpperCase()}_CPU_PROFILE`];
  const preload = path.join(DIST_DIR, 'bench', 'lib', 'cpu-profile.js');
  const script = path.join(DIST_DIR, 'apps', name, 'main.js');
  const logFile = path.join(logDir, `${name}.log`);
  if (!profile) return spawnNode(name, script, env, logFile);
  const withProfile = { ...env, CPU_PROFILE_OUT: path.resolve(profile) };
  return spawnNode(name, script, withProfile, logFile, [], ['--import', pathToFileURL(preload).href]);
}

/** Polls `probe` every 100 ms until it is true; throws naming `what` after the deadline or if `app` exits. */
export async function waitUntil(
  probe: () => Promise<boolean>,
  what: string,
  app?: AppProcess,
  deadlineMs = READY_DEADLINE_MS,
): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    if (await probe().catch(() => false)) return;
    if (app && app.child.exitCode !== null) {
      throw new Error(
        `${app.name} exited with code ${app.child.exitCode} before ${what} (log: ${app.logFile})`,
      );
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${app ? ` (log: ${app.logFile})` : ''}`);
    await delay(100);
  }
}

/** True once `url` answers 200. */
export async function answers200(url: string): Promise<boolean> {
  const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  await response.arrayBuffer();
  return response.status === 200;
}
