// `verify`: the export of the `export` benchmark checked by `audit verify` as an auditor runs it (the built
// CLI, the broker's audit JWKS pinned with --jwks), in events/s. Floor: sha256 over the file plus an ES256
// verify of each of its assertions (keys built once), on one core.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { assertionsOfNdjson, sha256File, verifyAssertions } from './lib/crypto-floor.js';
import { auditExportFile } from './lib/audit-export-file.js';
import { DIST_DIR } from './lib/paths.js';
import { peakRss } from './lib/process-stats.js';
import type { Benchmark } from './lib/registry.js';
import { round, type Measurement } from './lib/stats.js';
import { exportEvents } from './export.bench.js';

/** `node dist/apps/cli/main.js audit verify <file> --jwks <jwks>`: wall time, peak RSS, and its output. */
async function runAuditVerify(file: string, jwksFile: string) {
  const cli = path.join(DIST_DIR, 'apps', 'cli', 'main.js');
  const startedAt = performance.now();
  const child = spawn(process.execPath, [cli, 'audit', 'verify', file, '--jwks', jwksFile], {
    env: { PATH: process.env.PATH },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const rss = peakRss(child.pid!, 50);
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  const seconds = (performance.now() - startedAt) / 1000;
  const peakMb = await rss.stop();
  if (code !== 0) throw new Error(`audit verify exited with ${code}: ${output}`);
  return { seconds, peakMb, output: output.trim() };
}

async function floor(file: string, events: number, samples: Awaited<ReturnType<typeof assertionsOfNdjson>>) {
  const hashed = await sha256File(file);
  const verified = verifyAssertions(samples);
  const seconds = hashed.seconds + verified.seconds;
  return {
    eventsPerSec: round(events / seconds),
    seconds: round(seconds),
    sha256Seconds: round(hashed.seconds),
    es256Seconds: round(verified.seconds),
  } satisfies Measurement;
}

export const verifyBench: Benchmark = {
  name: 'verify',
  description:
    "`audit verify --jwks` of the export benchmark's file (1,000,000 events, 18.75 % with genuine " +
    'assertions), events/s; floor: sha256 over the file plus ES256 verify of its assertions',
  async run(context) {
    const made = await auditExportFile(exportEvents(context.quick), context.log);
    const samples = await assertionsOfNdjson(made.file);
    const before = await floor(made.file, made.events, samples);
    context.log(`floor ${before.eventsPerSec} events/s; running audit verify on ${made.events} events`);
    const verified = await runAuditVerify(made.file, made.jwksFile);
    const after = await floor(made.file, made.events, samples);
    return {
      params: { events: made.events, assertions: samples.length, bytes: made.bytes },
      comparisons: [
        {
          label: `audit verify --jwks, ${made.events} events`,
          project: {
            eventsPerSec: round(made.events / verified.seconds),
            seconds: round(verified.seconds),
            peakRssMb: round(verified.peakMb),
          },
          floor: { name: `sha256 + ES256 verify of ${samples.length} assertions`, before, after },
        },
      ],
      notes: [
        `audit verify said: ${verified.output.split('\n')[0]}`,
        'time includes starting node (the CLI as an auditor runs it)',
      ],
    };
  },
};
