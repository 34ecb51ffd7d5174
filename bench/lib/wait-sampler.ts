import pg from 'pg';
import type { BenchContext } from './registry.js';
import type { BenchStack } from './stack.js';

// What the apps' backends wait on, sampled from pg_stat_activity every few milliseconds during a measured
// window (BENCH_PG_WAITS=1): per sample, how many backends are active and on which wait event. A
// diagnostic, logged; not a figure of the report.

const SAMPLE = `
  SELECT coalesce(wait_event_type || ':' || wait_event, 'cpu') AS wait, count(*)::int AS backends
    FROM pg_stat_activity WHERE usename = $1 AND state = 'active' GROUP BY 1`;

/** Null unless BENCH_PG_WAITS=1; otherwise sampling starts now and stop() logs the averages. */
export async function waitSampler(
  stack: BenchStack,
  context: BenchContext,
  intervalMs = 10,
): Promise<{ stop(): Promise<void> } | null> {
  if (process.env.BENCH_PG_WAITS !== '1') return null;
  const runtimeRole = new URL(stack.env.DATABASE_URL!).username;
  const client = new pg.Client({ connectionString: stack.brokerAdminUrl });
  await client.connect();
  const totals = new Map<string, number>();
  let samples = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const { rows } = await client.query<{ wait: string; backends: number }>(SAMPLE, [runtimeRole]);
      samples += 1;
      for (const row of rows) totals.set(row.wait, (totals.get(row.wait) ?? 0) + row.backends);
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      await client.end();
      const active = [...totals.values()].reduce((sum, count) => sum + count, 0);
      context.log(
        `active backends of ${runtimeRole}: ${(active / samples).toFixed(2)} on average (${samples} samples)`,
      );
      for (const [wait, count] of [...totals].sort((a, b) => b[1] - a[1]))
        context.log(`  ${(count / samples).toFixed(2)}  ${wait}`);
    },
  };
}
