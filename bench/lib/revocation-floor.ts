import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { spawnNode, waitUntil } from './apps.js';
import { DIST_DIR } from './paths.js';
import type { BenchServices } from './stack.js';

/** How the revocation benchmarks spread their work: `count` due one after another over `spreadMs`, from `start`. */
export interface RevocationWindow {
  count: number;
  spreadMs: number;
}

/** Lateness (ms) of each revocation and the worker's CPU time (ms) from the window's start to the last one. */
export interface RevocationRun {
  lateness: number[];
  cpuMs: number;
  missing: number;
}

const QUEUE = 'revocation';
// As the product's JobProducer.scheduleRevocation: 8 attempts, exponential backoff, removed when done.
const JOB_OPTIONS = {
  attempts: 8,
  backoff: { type: 'exponential', delay: 1000, jitter: 0.5 },
  removeOnComplete: true,
  removeOnFail: true,
} as const;

let runs = 0;

/**
 * Bare BullMQ on the same Redis: delayed jobs due like the project's grants, a child worker with the product
 * worker's settings. With `roles` (one per job) and `targetUrl`, each job runs NOLOGIN, terminate, DROP ROLE.
 */
export async function bullmqFloor(
  services: BenchServices,
  window: RevocationWindow,
  options: { leadMs: number; targetUrl?: string; roles?: string[] },
): Promise<RevocationRun> {
  runs += 1;
  const prefix = `floor${runs}`;
  const out = path.join(services.workDir, `${prefix}.json`);
  const worker = await spawnNode(
    `${prefix}-worker`,
    path.join(DIST_DIR, 'bench', 'floors', 'bullmq-worker.js'),
    {
      FLOOR_REDIS_URL: services.redisUrl,
      FLOOR_PREFIX: prefix,
      FLOOR_QUEUE: QUEUE,
      FLOOR_COUNT: String(window.count),
      FLOOR_OUT: out,
      ...(options.targetUrl ? { FLOOR_TARGET_URL: options.targetUrl } : {}),
    },
    path.join(services.workDir, `${prefix}-worker.log`),
  );
  const redis = new URL(services.redisUrl);
  const queue = new Queue(QUEUE, { connection: { host: redis.hostname, port: Number(redis.port) }, prefix });
  try {
    await waitUntil(
      async () => (await readFile(worker.logFile, 'utf8')).includes('ready'),
      'the floor worker',
      worker,
    );
    const start = Date.now() + options.leadMs;
    const spacing = window.spreadMs / window.count;
    const jobs = Array.from({ length: window.count }, (_, index) => {
      const notAfter = Math.round(start + index * spacing);
      const data = { notAfter, ...(options.roles ? { role: options.roles[index] } : {}) };
      return {
        name: 'revoke-grant',
        data,
        opts: { ...JOB_OPTIONS, jobId: `revoke-${index}`, delay: notAfter - Date.now() },
      };
    });
    for (let index = 0; index < jobs.length; index += 1_000)
      await queue.addBulk(jobs.slice(index, index + 1_000));
    await delay(Math.max(0, start - Date.now()));
    const cpuAtStart = await worker.cpuMs();
    const deadline = start + window.spreadMs + 120_000;
    await waitUntil(
      async () => worker.child.exitCode !== null,
      'the floor jobs',
      undefined,
      deadline - Date.now(),
    );
    const report = JSON.parse(await readFile(out, 'utf8')) as { lateness: number[]; cpuMs: number };
    return {
      lateness: report.lateness,
      cpuMs: report.cpuMs - cpuAtStart,
      missing: window.count - report.lateness.length,
    };
  } finally {
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    await worker.stop();
  }
}
