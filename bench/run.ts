// `npm run bench [-- name...] [--quick]`: runs the named benchmarks (all by default), prints a table for each
// and writes bench/results/<name>.json. Each benchmark starts its own PostgreSQL, Redis, broker and worker.
import { BENCHMARKS } from './benchmarks.js';
import { loadAverage } from './lib/machine.js';
import { formatTable, resultOf, writeResult } from './lib/report.js';

interface Options {
  names: string[];
  quick: boolean;
}

function parseArgs(argv: string[]): Options {
  const names: string[] = [];
  let quick = false;
  for (const arg of argv) {
    if (arg === '--quick') quick = true;
    else if (arg === '--list') {
      for (const bench of BENCHMARKS) console.log(`${bench.name.padEnd(22)} ${bench.description}`);
      process.exit(0);
    } else if (arg.startsWith('-')) throw new Error(`unknown option ${arg} (use --quick, --list)`);
    else names.push(arg);
  }
  const known = new Set(BENCHMARKS.map((bench) => bench.name));
  const unknown = names.filter((name) => !known.has(name));
  if (unknown.length > 0)
    throw new Error(`unknown benchmark ${unknown.join(', ')}; known: ${[...known].join(', ')}`);
  return { names, quick };
}

async function main(): Promise<number> {
  const { names, quick } = parseArgs(process.argv.slice(2));
  const selected = BENCHMARKS.filter((bench) => names.length === 0 || names.includes(bench.name));
  let failures = 0;
  for (const bench of selected) {
    const startedAt = new Date();
    const loadAtStart = loadAverage();
    const log = (message: string) => console.error(`[${bench.name}] ${message}`);
    log(`starting${quick ? ' (quick)' : ''}`);
    try {
      const result = resultOf(bench.name, quick, { startedAt, loadAtStart }, await bench.run({ quick, log }));
      const file = await writeResult(result);
      console.log(`\n${formatTable(result)}\n  -> ${file}\n`);
    } catch (error) {
      failures += 1;
      log(`FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    }
  }
  return failures === 0 ? 0 : 1;
}

// Embedded PostgreSQL and redis are children: exit() (not a dangling handle) ends the run.
main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(2);
  },
);
