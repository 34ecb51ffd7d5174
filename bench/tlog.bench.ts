// `tlog`: the audit log's Merkle tree (issue 22) as it grows to 10k, 100k and 1M events. At each size: the real
// append path (appendAuditEvent, one client, 2 events per transaction; floor: one hot row, same PostgreSQL)
// and the sequencer integrating the next batches (µs per event; floor: sha256 over the same leaf bytes, in
// process). At the largest size: inclusion and consistency proofs and the tree head (floor: one primary-key
// lookup of a stored node). "Flat" is the cost at the largest size ÷ the cost at the smallest, near 1.
import { bracketed } from './lib/floors.js';
import { hotRowFloor } from './lib/hot-row-floor.js';
import type { Benchmark, BenchContext } from './lib/registry.js';
import { ratiosOf, type Comparison } from './lib/report.js';
import { latencySummary, quantile, round, type Measurement } from './lib/stats.js';
import {
  appendThroughBroker,
  headSeq,
  integrateBatches,
  integrateEverything,
  loadEvents,
  nextLeafBytes,
  proofOperations,
  settle,
  sha256LeafFloor,
  startTlogDatabase,
  timedRandom,
  type TlogDatabase,
} from './lib/tlog-log.js';
import { integratedSize } from '../libs/audit/merkle-log.js';

interface TlogPlan {
  sizes: number[];
  /** Events per sequencer transaction measured, and how many such batches at each size. */
  batch: number;
  batches: number;
  appendTransactions: number;
  eventsPerTransaction: number;
  /** Proofs (and tree heads) measured at the largest size, each kind. */
  proofs: number;
  floorSeconds: number;
}

const FULL: TlogPlan = {
  sizes: [10_000, 100_000, 1_000_000],
  batch: 5_000,
  batches: 5,
  appendTransactions: 200,
  eventsPerTransaction: 2,
  proofs: 1_000,
  floorSeconds: 3,
};
const QUICK: TlogPlan = {
  sizes: [1_000, 5_000, 10_000],
  batch: 500,
  batches: 2,
  appendTransactions: 20,
  eventsPerTransaction: 2,
  proofs: 50,
  floorSeconds: 0.5,
};
/** Calls of each proof kind before the measured ones (connections, plans, buffers warm). */
const WARM_UP = 5;

const perEvent = (ms: number, events: number) => round((ms * 1000) / events);
const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);

/** Fills the log to `size` with synthetic events and integrates them; what that took. */
async function fill(db: TlogDatabase, size: number, context: BenchContext) {
  const loadSeconds = await loadEvents(db, size - (await headSeq(db)));
  const integrateSeconds = await integrateEverything(db);
  context.log(
    `${size} events: loaded in ${loadSeconds.toFixed(1)} s, integrated in ${integrateSeconds.toFixed(1)} s`,
  );
  return { size, loadSeconds: round(loadSeconds), integrateSeconds: round(integrateSeconds) };
}

/** The real append path at this size, against one hot row with the same shape of transaction. */
async function appendComparison(db: TlogDatabase, size: number, plan: TlogPlan): Promise<Comparison> {
  const events = plan.eventsPerTransaction;
  const comparison = await bracketed(
    `append (appendAuditEvent, ${events}/txn, 1 client) at ${size}`,
    `hot row: 1 client, ${events} appends/txn`,
    async () => {
      const floor = await hotRowFloor(db.services.adminUrl, {
        clients: 1,
        seconds: plan.floorSeconds,
        appendsPerTransaction: events,
      });
      return transactionFigures(floor.latencies, events);
    },
    async () => transactionFigures(await appendThroughBroker(db, plan.appendTransactions, events), events),
  );
  await integrateEverything(db);
  return comparison;
}

function transactionFigures(latencies: number[], eventsPerTransaction: number): Measurement {
  const summary = latencySummary(latencies, 'txn');
  return {
    usPerEvent: perEvent(sum(latencies), latencies.length * eventsPerTransaction),
    txnP50Ms: summary.txnP50Ms,
    txnP99Ms: summary.txnP99Ms,
  };
}

/** The sequencer's next batches at this size, against sha256 over the same leaf bytes. */
async function integrateComparison(db: TlogDatabase, size: number, plan: TlogPlan): Promise<Comparison> {
  const events = plan.batch * plan.batches;
  await loadEvents(db, events);
  const leaves = await nextLeafBytes(db, events);
  // The median of 5 passes over the leaves, as the project's median batch.
  const floor = async () => ({
    usPerEvent: round(
      quantile(
        Array.from({ length: 5 }, () => sha256LeafFloor(leaves)),
        0.5,
      ),
    ),
  });
  return bracketed(
    `integrate ${plan.batches} x ${plan.batch} events at ${size}`,
    'sha256 of the same leaf bytes, in process',
    floor,
    async () => {
      const times = await integrateBatches(db, plan.batch, plan.batches);
      // The median batch: one batch slowed by a neighbour on the machine does not move the figure.
      return {
        usPerEvent: perEvent(quantile(times, 0.5), plan.batch),
        batchMaxMs: round(Math.max(...times)),
      };
    },
  );
}

/** p50, p99 and max (ms) of `count` calls with random arguments up to `size`, after a warm-up. */
async function latencyOf(count: number, size: number, operation: (n: number) => Promise<unknown>) {
  await timedRandom(WARM_UP, size, operation);
  const { count: _count, ...latency } = latencySummary(await timedRandom(count, size, operation));
  return latency;
}

/** Inclusion and consistency proofs and the tree head at the tree's size, against one node lookup. */
async function proofComparisons(db: TlogDatabase, plan: TlogPlan): Promise<Comparison[]> {
  await settle(db);
  const size = await integratedSize(db.runtime);
  const operations = proofOperations(db, size);
  const floor = () => latencyOf(plan.proofs, size, operations.nodeLookup);
  const floorName = 'one primary-key lookup of a stored node';
  const kinds: Array<[string, (n: number) => Promise<unknown>]> = [
    [`inclusion proof (random seq) at ${size}`, operations.inclusion],
    [`consistency proof (random size) to ${size}`, operations.consistency],
    [`tree head at ${size}`, operations.treeHead],
  ];
  const comparisons: Comparison[] = [];
  for (const [label, operation] of kinds)
    comparisons.push(await bracketed(label, floorName, floor, () => latencyOf(plan.proofs, size, operation)));
  return comparisons;
}

/** Largest-size figure ÷ smallest-size figure of `key`, over the comparisons whose label starts with `prefix`. */
function flatness(comparisons: Comparison[], prefix: string, key = 'usPerEvent') {
  const matching = comparisons.filter((comparison) => comparison.label.startsWith(prefix));
  const [first, last] = [matching[0], matching.at(-1)!];
  return {
    raw: round(last.project[key] / first.project[key]),
    /** The same of the ratios to each size's own floor: what is left once the machine's drift is taken out. */
    vsFloor: round(ratiosOf(last)[key] / ratiosOf(first)[key]),
  };
}

async function measure(db: TlogDatabase, plan: TlogPlan, context: BenchContext) {
  const fills = [];
  const comparisons: Comparison[] = [];
  for (const size of plan.sizes) {
    fills.push(await fill(db, size, context));
    comparisons.push(await appendComparison(db, size, plan));
    comparisons.push(await integrateComparison(db, size, plan));
    context.log(`${size}: measured append and integrate`);
  }
  comparisons.push(...(await proofComparisons(db, plan)));
  const flat = {
    append: flatness(comparisons, 'append', 'txnP50Ms'),
    integrate: flatness(comparisons, 'integrate'),
  };
  return { fills, comparisons, flat };
}

export const tlogBench: Benchmark = {
  name: 'tlog',
  description:
    'audit Merkle tree at 10k, 100k, 1M events: append (appendAuditEvent) and sequencer integration cost per ' +
    'event, proofs and tree head at 1M; floors: one hot row, sha256 of the leaf bytes, one node lookup',
  async run(context) {
    const plan = context.quick ? QUICK : FULL;
    const db = await startTlogDatabase();
    try {
      const { fills, comparisons, flat } = await measure(db, plan, context);
      const [smallest, largest] = [plan.sizes[0], plan.sizes.at(-1)!];
      return {
        params: { ...plan, fills, flatness: flat },
        comparisons,
        notes: [
          `flatness, at ${largest} ÷ at ${smallest} (append: txn p50; integrate: µs/event of the median batch): ` +
            `append ${flat.append.raw}, integrate ` +
            `${flat.integrate.raw}; of the ratios to the same-run floor: append ${flat.append.vsFloor}, ` +
            `integrate ${flat.integrate.vsFloor}`,
          'fill: synthetic events COPied in (bench/lib/synthetic-audit.ts), then integrated by the sequencer',
          'append: transactions one after another through a TypeORM data source as the runtime role',
          `proofs: ${plan.proofs} each with random arguments after ${WARM_UP} warm-up calls, once the nodes ` +
            'table is vacuumed and analysed and a checkpoint is done (as some time after the bulk load); goal p99 < 5 ms',
        ],
      };
    } finally {
      await db.stop();
    }
  },
};
