import { setTimeout as delay } from 'node:timers/promises';
import { bracketed } from './floors.js';
import { revocationLateness, dueFrom, type GrantCopy } from './grants.js';
import type { BenchContext } from './registry.js';
import type { Comparison } from './report.js';
import { bullmqFloor, type RevocationRun, type RevocationWindow } from './revocation-floor.js';
import type { BenchStack } from './stack.js';
import { statementCounter } from './statements.js';
import { latencySummary, round, type Measurement } from './stats.js';

/** Lateness p50/p99/max and worker CPU per revocation; `missing` counts what was not revoked in time. */
export function revocationFigures(run: RevocationRun): Measurement {
  const revoked = run.lateness.length;
  return {
    ...latencySummary(run.lateness),
    cpuMsPerRevocation: round(revoked === 0 ? Number.NaN : run.cpuMs / revoked),
    missing: run.missing,
  };
}

/** Time for the worker to boot and its sweep to schedule `count` grants before the first is due. */
export function leadMs(quick: boolean, count: number): number {
  return (quick ? 6_000 : 10_000) + count * 2;
}

/**
 * The project: makes the copies due over the window, starts the real worker (its boot sweep schedules them,
 * as after a restart), and waits for each revocation; CPU is the worker's from the first due time to the last.
 */
export async function projectRevocations(
  stack: BenchStack,
  copies: GrantCopy[],
  window: RevocationWindow,
  context: BenchContext,
): Promise<RevocationRun> {
  const start = new Date(Date.now() + leadMs(context.quick, copies.length));
  await dueFrom(stack, copies, start, window.spreadMs / window.count);
  const worker = await stack.startWorker();
  const slack = start.getTime() - Date.now();
  context.log(`worker ready ${slack} ms before the first grant is due`);
  // A late boot would count boot time as lateness: a full run refuses it; --quick (which only shows that
  // the benchmark works, on a machine busy with other suites) goes on.
  if (slack < 0 && !context.quick) {
    throw new Error(`the worker's boot sweep ended ${-slack} ms after the first grant was due`);
  }
  await delay(Math.max(0, slack));
  const statements = await statementCounter(stack, context);
  const cpuAtStart = await worker.cpuMs();
  const result = await revocationLateness(stack, copies, start.getTime() + window.spreadMs + 120_000);
  await statements?.report(copies.length);
  return { lateness: result.lateness, missing: result.missing, cpuMs: (await worker.cpuMs()) - cpuAtStart };
}

/** Floor (bare BullMQ), project, floor, on the same PostgreSQL and Redis; `floorRoles` gives each floor its roles. */
export async function compareRevocations(
  stack: BenchStack,
  label: string,
  floorName: string,
  window: RevocationWindow,
  context: BenchContext,
  sides: {
    project: () => Promise<RevocationRun>;
    floorRoles?: () => Promise<{ roles: string[]; close(): Promise<void> }>;
  },
): Promise<Comparison> {
  const floor = async () => {
    const roles = await sides.floorRoles?.();
    try {
      const run = await bullmqFloor(stack, window, {
        leadMs: (context.quick ? 2_000 : 5_000) + window.count,
        ...(roles ? { roles: roles.roles, targetUrl: stack.env.BENCH_TARGET_DB_URL } : {}),
      });
      context.log(`floor: ${run.lateness.length} jobs`);
      return revocationFigures(run);
    } finally {
      await roles?.close();
    }
  };
  return bracketed(label, floorName, floor, async () => revocationFigures(await sides.project()));
}
