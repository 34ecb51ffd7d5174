import pg from 'pg';
import type { BenchContext } from './registry.js';
import type { BenchStack } from './stack.js';

// What the apps' backends wait on, sampled from pg_stat_activity every few milliseconds during a measured
// window: per sample, how many backends are active and on which wait event. Always on (one small query per
// sample on its own connection); the share of active backends waiting on a lock is a figure of the report,
// and BENCH_PG_WAITS=1 also logs the breakdown by wait event.

const SAMPLE = `
  SELECT coalesce(wait_event_type || ':' || wait_event, 'cpu') AS wait, count(*)::int AS backends
    FROM pg_stat_activity WHERE usename = $1 AND state = 'active' GROUP BY 1`;

/** Averages over the samples of the window. */
export interface WaitSummary {
  samples: number;
  /** Active backends of the runtime role, on average per sample. */
  activeBackends: number;
  /** Of those, the share (%) waiting on a heavyweight lock (wait_event_type Lock: row, transaction, tuple...). */
  lockWaitPct: number;
  /** Average backends per wait event (`Lock:transactionid`, `IO:WalSync`, `cpu`...). */
  byWait: Record<string, number>;
}

/** Starts sampling now; stop() ends it and returns the averages (logged in full with BENCH_PG_WAITS=1). */
export async function waitSampler(
  stack: BenchStack,
  context: BenchContext,
  intervalMs = 20,
): Promise<{ stop(): Promise<WaitSummary> }> {
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
      const summary = summaryOf(totals, samples);
      if (process.env.BENCH_PG_WAITS === '1') {
        context.log(
          `active backends of ${runtimeRole}: ${summary.activeBackends.toFixed(2)} on average (${samples} samples)`,
        );
        for (const [wait, average] of Object.entries(summary.byWait))
          context.log(`  ${average.toFixed(2)}  ${wait}`);
      }
      return summary;
    },
  };
}

function summaryOf(totals: Map<string, number>, samples: number): WaitSummary {
  const active = [...totals.values()].reduce((sum, count) => sum + count, 0);
  const locked = [...totals]
    .filter(([wait]) => wait.startsWith('Lock:'))
    .reduce((sum, [, count]) => sum + count, 0);
  const byWait: Record<string, number> = {};
  for (const [wait, count] of [...totals].sort((a, b) => b[1] - a[1])) byWait[wait] = count / samples;
  return {
    samples,
    activeBackends: samples === 0 ? 0 : active / samples,
    lockWaitPct: active === 0 ? 0 : (100 * locked) / active,
    byWait,
  };
}
