// `export`: a chain of 1,000,000 audit events, exported as NDJSON over HTTP by an auditor (with the
// `audit.export` step-up), in events/s, with the broker's peak RSS. Floor: sha256 over the same bytes.
import { sha256File } from './lib/crypto-floor.js';
import { auditExportFile } from './lib/audit-export-file.js';
import type { Benchmark } from './lib/registry.js';
import { round, type Measurement } from './lib/stats.js';

/** Events loaded into the chain: the 1,000,000, or 5,000 for --quick. */
export function exportEvents(quick: boolean): number {
  return quick ? 5_000 : 1_000_000;
}

async function sha256Floor(file: string, events: number): Promise<Measurement> {
  const hashed = await sha256File(file);
  return {
    eventsPerSec: round(events / hashed.seconds),
    mbPerSec: round(hashed.bytes / 2 ** 20 / hashed.seconds),
  };
}

export const exportBench: Benchmark = {
  name: 'export',
  description:
    'NDJSON audit export over HTTP of a 1,000,000-event chain (18.75 % with assertions), events/s and the ' +
    "broker's peak RSS; floor: sha256 over the same bytes",
  async run(context) {
    const loaded = exportEvents(context.quick);
    const made = await auditExportFile(loaded, context.log);
    // The file exists only once exported: both floor runs follow the export (page cache warm for both).
    const before = await sha256Floor(made.file, made.events);
    const after = await sha256Floor(made.file, made.events);
    const mb = made.bytes / 2 ** 20;
    return {
      params: {
        events: made.events,
        loadedEvents: made.load.events,
        assertions: made.load.assertions,
        bytes: made.bytes,
        generateSeconds: round(made.load.generateSeconds),
        loadSeconds: round(made.load.loadSeconds),
      },
      comparisons: [
        {
          label: `NDJSON export over HTTP, ${made.events} events`,
          project: {
            eventsPerSec: round(made.events / made.exportSeconds),
            mbPerSec: round(mb / made.exportSeconds),
            seconds: round(made.exportSeconds),
            brokerRssBeforeMb: round(made.brokerRssMb.before),
            brokerRssPeakMb: round(made.brokerRssMb.peak),
            brokerVmHwmMb: round(made.brokerRssMb.highWaterMark),
          },
          floor: { name: 'sha256 over the same bytes', before, after },
        },
      ],
      notes: [
        'export time: from the POST (step-up already answered) to the last byte written to disk',
        'RSS peak: VmRSS of the broker sampled every 20 ms during the export; VmHWM: its peak since boot',
        'the floor runs twice after the export (the file does not exist before it)',
      ],
    };
  },
};
