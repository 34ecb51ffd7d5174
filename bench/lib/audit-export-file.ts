// The export file the `export` and `verify` benchmarks share: a stack, a large valid chain loaded into it, and
// one NDJSON export fetched over HTTP by an auditor with an `audit.export` step-up, measured on the way.
import { createWriteStream, rmSync } from 'node:fs';
import { mkdtemp, open, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { expectOk, enrollAll, type Person } from './people.js';
import { peakRss } from './process-stats.js';
import { startBenchStack, type BenchStack } from './stack.js';
import { loadSyntheticAudit, type SyntheticAuditLoad } from './synthetic-audit.js';

/** An export on disk (outside the stack's work dir, removed when the process exits) and how it was made. */
export interface AuditExportFile {
  file: string;
  /** The broker's audit JWKS, saved as an auditor pins it (`audit verify --jwks`). */
  jwksFile: string;
  bytes: number;
  /** Events in the export (the manifest's count: the loaded ones and those the stack wrote itself). */
  events: number;
  load: SyntheticAuditLoad;
  /** From the POST to the last byte on disk. */
  exportSeconds: number;
  /** Broker RSS: before the export, the peak sampled during it, and VmHWM (peak since boot) after it. */
  brokerRssMb: { before: number; peak: number; highWaterMark: number };
}

const made = new Map<number, Promise<AuditExportFile>>();

/** The export of a chain with `events` loaded events, made once per process and size. */
export function auditExportFile(events: number, log: (message: string) => void): Promise<AuditExportFile> {
  let file = made.get(events);
  if (file === undefined) {
    file = makeExportFile(events, log);
    made.set(events, file);
  }
  return file;
}

async function makeExportFile(events: number, log: (message: string) => void): Promise<AuditExportFile> {
  const dir = await mkdtemp(path.join(tmpdir(), 'jit-bench-export-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const stack = await startBenchStack();
  try {
    const [auditor] = await enrollAll(stack, ['bench-auditor'], { 'bench-auditor': ['auditor'] });
    log(`loading ${events} audit events`);
    const load = await loadSyntheticAudit({
      adminUrl: stack.adminUrl,
      ownerUrl: stack.ownerUrl,
      count: events,
      origin: stack.origin,
    });
    log(
      `${load.events} events (${load.assertions} assertions) generated in ${load.generateSeconds.toFixed(1)} s, ` +
        `committed after ${load.loadSeconds.toFixed(1)} s; exporting`,
    );
    const file = path.join(dir, 'audit.ndjson');
    const fetched = await fetchExport(stack, auditor, file);
    const jwksFile = path.join(dir, 'audit-jwks.json');
    await writeFile(
      jwksFile,
      JSON.stringify(await expectOk(auditor.get('/.well-known/audit-jwks.json'), 'jwks')),
    );
    return { file, jwksFile, load, ...fetched };
  } finally {
    await stack.stop();
  }
}

/** VmHWM of `pid`: its peak resident set since it started (MB). */
async function highWaterMarkMb(pid: number): Promise<number> {
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

/** POST /api/audit/export (NDJSON, whole chain) as the auditor, streamed to `file`. */
async function fetchExport(stack: BenchStack, auditor: Person, file: string) {
  const body = { format: 'ndjson', filters: {} };
  const stepUp = await auditor.stepUp('audit.export', 'audit', body);
  const rssBefore = await peakRss(stack.broker.pid).stop();
  const rss = peakRss(stack.broker.pid, 20);
  const startedAt = performance.now();
  const response = await fetch(`${stack.baseUrl}/api/audit/export`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie: auditor.cookie, origin: stack.origin },
    body: JSON.stringify({ ...body, stepUp }),
  });
  if (response.status !== 200 || response.body === null) {
    throw new Error(`POST /api/audit/export: ${response.status} ${await response.text()}`);
  }
  const out = createWriteStream(file);
  await pipeline(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), out);
  const exportSeconds = (performance.now() - startedAt) / 1000;
  const peak = await rss.stop();
  const manifest = JSON.parse(await lastLine(file)) as { type?: string; count?: number };
  if (manifest.type !== 'manifest' || typeof manifest.count !== 'number') {
    throw new Error(`the export ${file} does not end with its manifest`);
  }
  return {
    bytes: out.bytesWritten,
    events: manifest.count,
    exportSeconds,
    brokerRssMb: { before: rssBefore, peak, highWaterMark: await highWaterMarkMb(stack.broker.pid) },
  };
}

/** The last line of a file, read from its end. */
async function lastLine(file: string): Promise<string> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, 1 << 16);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    return buffer.toString('utf8').trimEnd().split('\n').at(-1) ?? '';
  } finally {
    await handle.close();
  }
}
