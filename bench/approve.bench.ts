// `approve`: 16 approvers decide requests concurrently, each decision with a genuine request-bound step-up
// (challenge for this request, then the approval with a real ES256 assertion). Floors, on the same machine
// and PostgreSQL, before and after: ES256 verifies/s and one hot chain-head row with 2 appends per transaction.
import { es256VerifyFloor } from './lib/crypto-floor.js';
import { hotRowFloor } from './lib/hot-row-floor.js';
import type { Benchmark, BenchContext } from './lib/registry.js';
import type { Comparison } from './lib/report.js';
import { enrollAll, expectOk, type Person } from './lib/people.js';
import { startBenchStack, withClient, type BenchStack } from './lib/stack.js';
import { statementCounter } from './lib/statements.js';
import { waitSampler, type WaitSummary } from './lib/wait-sampler.js';
import { latencySummary, round, type Measurement } from './lib/stats.js';

const ENTITLEMENT = 'bench-approved-token';
const REQUESTER = 'bench-user';
/** Requests filed at once (by the one requester of bench/policies). */
const FILING_LANES = 4;

interface ApproveSize {
  approvers: number;
  /** Decisions each approver makes; each reaches the quorum of 1 (approval.recorded + request.approved). */
  approvalsPerApprover: number;
  floorSeconds: number;
}

const FULL: ApproveSize = { approvers: 16, approvalsPerApprover: 40, floorSeconds: 8 };
const QUICK: ApproveSize = { approvers: 4, approvalsPerApprover: 3, floorSeconds: 1 };

function approverName(index: number): string {
  return `bench-approver-${String(index + 1).padStart(2, '0')}`;
}

/** Files `count` requests in a few parallel lanes; their ids in filing order. */
async function fileRequests(requester: Person, count: number): Promise<string[]> {
  const ids: string[] = new Array<string>(count);
  await Promise.all(
    Array.from({ length: FILING_LANES }, async (_, lane) => {
      for (let index = lane; index < count; index += FILING_LANES) {
        const created = await expectOk(
          requester.post('/api/requests', {
            entitlementId: ENTITLEMENT,
            durationSeconds: 600,
            justification: `approve benchmark, request ${index}`,
          }),
          'POST /api/requests',
        );
        ids[index] = created.id as string;
      }
    }),
  );
  return ids;
}

/**
 * Every approver works through its own list (request k is approver k's, modulo their number) with one
 * decision in flight at a time: step-up challenge, assertion, POST approve. Latency is that whole round, as
 * the person waits for it.
 */
async function approveAll(approvers: Person[], requestIds: string[]) {
  const latencies: number[] = [];
  const startedAt = performance.now();
  await Promise.all(
    approvers.map(async (approver, index) => {
      const mine = requestIds.filter((_, request) => request % approvers.length === index);
      for (const requestId of mine) {
        const began = performance.now();
        await expectOk(approver.decide(requestId, 'approve'), `approve ${requestId} as ${approver.username}`);
        latencies.push(performance.now() - began);
      }
    }),
  );
  return { latencies, seconds: (performance.now() - startedAt) / 1000 };
}

/** Behind the broker's back: every request approved, each with its approval. */
async function assertApproved(stack: BenchStack, requests: number): Promise<void> {
  const { rows } = await withClient(stack.brokerAdminUrl, (client) =>
    client.query<{ approved: string; approvals: string }>(
      `SELECT (SELECT count(*) FROM elevation_requests WHERE state = 'APPROVED') AS approved,
              (SELECT count(*) FROM approvals WHERE decision = 'approve') AS approvals`,
    ),
  );
  if (Number(rows[0].approved) !== requests || Number(rows[0].approvals) !== requests) {
    throw new Error(`expected ${requests} approved requests, found ${JSON.stringify(rows[0])}`);
  }
}

/** p50, p99 and max (ms), without the count: the project counts approvals, the floor transactions. */
function latencyOf(values: number[]): Measurement {
  const { count: _count, ...latency } = latencySummary(values);
  return latency;
}

/** Both floors on this stack's PostgreSQL and this machine, figures named as the project's. */
async function floors(
  stack: BenchStack,
  seconds: number,
): Promise<{ hotRow: Measurement; es256: Measurement }> {
  const hotRow = await hotRowFloor(stack.adminUrl, { seconds, clients: 16, appendsPerTransaction: 2 });
  const es256 = es256VerifyFloor(seconds);
  return {
    hotRow: {
      perSec: round(hotRow.transactionsPerSecond),
      ...latencyOf(hotRow.latencies),
      transactions: hotRow.transactions,
    },
    es256: { perSec: round(es256.perSecond) },
  };
}

/** Enrolls everyone, files the requests, then floors, approvals, floors. */
async function measure(
  stack: BenchStack,
  size: ApproveSize,
  context: BenchContext,
): Promise<{ comparisons: Comparison[]; waits: WaitSummary }> {
  const approverNames = Array.from({ length: size.approvers }, (_, index) => approverName(index));
  const [requester, ...approvers] = await enrollAll(stack, [REQUESTER, ...approverNames]);
  const requests = size.approvers * size.approvalsPerApprover;
  const requestIds = await fileRequests(requester, requests);
  context.log(`${approvers.length} approvers enrolled, ${requests} requests filed; floors, then approvals`);

  const before = await floors(stack, size.floorSeconds);
  const statements = await statementCounter(stack, context);
  const waits = await waitSampler(stack, context);
  const cpuBefore = await stack.broker.cpuMs();
  const run = await approveAll(approvers, requestIds);
  const brokerCpuMs = (await stack.broker.cpuMs()) - cpuBefore;
  const waited = await waits.stop();
  await statements?.report(run.latencies.length);
  const after = await floors(stack, size.floorSeconds);
  await assertApproved(stack, requests);

  const project: Measurement = {
    perSec: round(run.latencies.length / run.seconds),
    ...latencyOf(run.latencies),
    approvals: run.latencies.length,
    brokerCpuMsPerApproval: round(brokerCpuMs / run.latencies.length),
    activeBackends: round(waited.activeBackends),
    lockWaitPct: round(waited.lockWaitPct),
  };
  const comparisons = [
    {
      label: `approvals, ${size.approvers} approvers (step-up + approve)`,
      project,
      floor: { name: 'hot row: 16 clients, 2 appends/txn', before: before.hotRow, after: after.hotRow },
    },
    {
      label: `approvals, ${size.approvers} approvers vs ES256`,
      project: { perSec: project.perSec },
      floor: { name: 'ES256 verify, one core', before: before.es256, after: after.es256 },
    },
  ];
  return { comparisons, waits: waited };
}

/** Average backends per wait event, rounded for the record. */
function roundedWaits(waits: WaitSummary): Record<string, number> {
  return Object.fromEntries(Object.entries(waits.byWait).map(([wait, average]) => [wait, round(average)]));
}

export const approveBench: Benchmark = {
  name: 'approve',
  description:
    '16 concurrent approvers, each approval with a genuine request-bound step-up; floors: one hot ' +
    'chain-head row (2 appends per transaction, 16 clients, same PostgreSQL) and ES256 verifies/s',
  async run(context) {
    const size = context.quick ? QUICK : FULL;
    const stack = await startBenchStack();
    try {
      const { comparisons, waits } = await measure(stack, size, context);
      return {
        params: { ...size, entitlement: ENTITLEMENT, quorum: 1, backendsByWait: roundedWaits(waits) },
        comparisons,
        notes: [
          'latency = step-up challenge + assertion + POST approve, one in flight per approver',
          'each approval reaches the quorum (1): 2 audit appends, as the hot-row floor does',
          "activeBackends, lockWaitPct: the runtime role's active backends in pg_stat_activity, sampled every " +
            '20 ms during the approvals, and the share of them waiting on a lock (by wait event: params.backendsByWait)',
        ],
      };
    } finally {
      await stack.stop();
    }
  },
};
