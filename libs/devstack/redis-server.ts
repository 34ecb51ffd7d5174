import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { stopperOf } from './child-stop.js';
import { freePort } from './free-port.js';

/** Where to run redis-server; `dir` is its working directory (nothing is persisted there). */
export interface RedisServerOptions {
  port?: number;
  dir?: string;
}

/** A running redis-server child and an idempotent stop. */
export interface RedisServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

const REDIS_SERVER_MISSING =
  'redis-server not found on PATH. Install it: sudo apt-get install redis-server (Debian/Ubuntu), ' +
  'brew install redis (macOS); or set REDIS_URL to an existing Redis.';
const READY_DEADLINE_MS = 10_000;
const PROBE_INTERVAL_MS = 50;
const PROBE_TIMEOUT_MS = 1_000;
const STOP_GRACE_MS = 5_000;
const OUTPUT_TAIL_CHARS = 4_000;

/** Spawns a throwaway redis-server (no RDB, no AOF) on 127.0.0.1 and resolves once it answers PING. */
export async function startRedisServer(opts: RedisServerOptions = {}): Promise<RedisServer> {
  const port = opts.port ?? (await freePort());
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  if (opts.dir !== undefined) args.push('--dir', opts.dir);
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });

  // Both pipes are drained for the whole run (a full pipe would block redis); the tails explain an early death.
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout = (stdout + chunk.toString('utf8')).slice(-OUTPUT_TAIL_CHARS);
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-OUTPUT_TAIL_CHARS);
  });
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(signal === null ? `exit code ${code}` : `signal ${signal}`));
  });
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));

  try {
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
  } catch (error) {
    if (error instanceof Error && (error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(REDIS_SERVER_MISSING, { cause: error });
    }
    throw error;
  }

  // If this process ends without calling stop(), redis must not outlive it.
  const stop = stopperOf(child, exited, STOP_GRACE_MS);

  let death: string | undefined;
  void exited.then((how) => {
    death = how;
  });
  const deadline = Date.now() + READY_DEADLINE_MS;
  for (;;) {
    if (death === undefined && child.pid !== undefined && (await answersPing(port, child.pid))) break;
    if (death !== undefined) {
      await Promise.race([closed, delay(1_000)]);
      await stop();
      throw new Error(`redis-server exited during startup (${death}): ${(stderr || stdout).trim()}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(
        `redis-server did not answer PING on 127.0.0.1:${port} within ${READY_DEADLINE_MS / 1000} s: ` +
          (stderr || stdout).trim(),
      );
    }
    await Promise.race([delay(PROBE_INTERVAL_MS), exited]);
  }

  return { url: `redis://127.0.0.1:${port}`, port, stop };
}

/** PING, then INFO to check the process id: a port taken by another Redis must not pass for ours. */
function answersPing(port: number, expectedPid: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    let settled = false;
    const finish = (ok: boolean): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('close', () => finish(false));
    socket.once('connect', () => socket.write('PING\r\nINFO server\r\n'));
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('latin1');
      if (!'+PONG\r\n'.startsWith(reply.slice(0, 7))) return finish(false);
      const pid = /\r\nprocess_id:(\d+)\r\n/.exec(reply);
      if (pid !== null) finish(Number(pid[1]) === expectedPid);
    });
  });
}
