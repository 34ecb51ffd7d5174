// The revocation floors' worker: bare BullMQ with the product worker's settings (concurrency 8, lock 10 s,
// stalled check 5 s) on the same Redis. Each job records its lateness (now - notAfter) after doing the
// minimal work: nothing (jwt), or NOLOGIN, terminate the role's sessions, DROP ROLE (postgres, FLOOR_TARGET_URL).
// When FLOOR_COUNT jobs are done it writes { lateness, cpuMs } to FLOOR_OUT and exits.
import { writeFileSync } from 'node:fs';
import { Worker, type Job } from 'bullmq';
import pg from 'pg';

const env = process.env;
const redis = new URL(env.FLOOR_REDIS_URL!);
const count = Number(env.FLOOR_COUNT);
const pool = env.FLOOR_TARGET_URL ? new pg.Pool({ connectionString: env.FLOOR_TARGET_URL, max: 8 }) : null;
pool?.on('error', () => {});
const lateness: number[] = [];

async function revokeRole(role: string): Promise<void> {
  const client = await pool!.connect();
  try {
    const name = pg.escapeIdentifier(role);
    await client.query(`ALTER ROLE ${name} NOLOGIN`);
    await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [role]);
    await client.query(`DROP ROLE ${name}`);
  } finally {
    client.release();
  }
}

async function handle(job: Job<{ notAfter: number; role?: string }>): Promise<void> {
  if (job.data.role !== undefined) await revokeRole(job.data.role);
  lateness.push(Date.now() - job.data.notAfter);
  if (lateness.length === count) {
    const usage = process.cpuUsage();
    writeFileSync(env.FLOOR_OUT!, JSON.stringify({ lateness, cpuMs: (usage.user + usage.system) / 1000 }));
    setImmediate(() => process.exit(0));
  }
}

new Worker(env.FLOOR_QUEUE!, handle, {
  connection: { host: redis.hostname, port: Number(redis.port), maxRetriesPerRequest: null },
  prefix: env.FLOOR_PREFIX,
  concurrency: 8,
  lockDuration: 10_000,
  stalledInterval: 5_000,
})
  .on('ready', () => console.log('ready'))
  .on('failed', (job, error) => console.error(`job ${job?.id} failed: ${error.message}`));
