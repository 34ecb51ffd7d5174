import { withClient } from '../../libs/devstack/databases.js';
import type { BenchContext } from './registry.js';
import type { BenchStack } from './stack.js';

// Statements per operation, from pg_stat_statements (loaded when BENCH_PG_STAT_STATEMENTS=1, see stack.ts):
// reset before the measured window, then the calls of each statement the apps' runtime role ran, divided
// by the number of operations, with each statement's mean time in the server. A diagnostic, logged; not a
// figure of the report.

const STATEMENTS = `
  SELECT r.rolname AS role, s.calls::int AS calls, round(s.mean_exec_time::numeric, 3)::float8 AS ms,
         left(regexp_replace(s.query, '\\s+', ' ', 'g'), 110) AS query
    FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
   WHERE r.rolname = ANY($1) ORDER BY r.rolname, s.calls DESC`;

/** Null unless BENCH_PG_STAT_STATEMENTS=1; otherwise reset() before the window, report(n) after it. */
export async function statementCounter(
  stack: BenchStack,
  context: BenchContext,
): Promise<{ report(operations: number): Promise<void> } | null> {
  if (process.env.BENCH_PG_STAT_STATEMENTS !== '1') return null;
  // The apps' runtime role on the broker database, and the postgres connector's login on the target.
  const roles = [stack.env.DATABASE_URL!, stack.env.BENCH_TARGET_DB_URL!].map((url) => new URL(url).username);
  await withClient(stack.brokerAdminUrl, async (client) => {
    await client.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    await client.query('SELECT pg_stat_statements_reset()');
  });
  return {
    report: (operations) =>
      withClient(stack.brokerAdminUrl, async (client) => {
        const { rows } = await client.query<{ role: string; calls: number; ms: number; query: string }>(
          STATEMENTS,
          [roles],
        );
        for (const role of roles) {
          const own = rows.filter((row) => row.role === role);
          const total = own.reduce((sum, row) => sum + row.calls, 0);
          context.log(`statements of ${role}: ${total} for ${operations} (${total / operations} each)`);
          for (const row of own.slice(0, 25))
            context.log(`  ${(row.calls / operations).toFixed(2)} x ${row.ms} ms  ${row.query}`);
        }
      }),
  };
}
