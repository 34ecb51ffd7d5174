import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { GrantState } from '../domain/grant-state.js';
import { CONNECTOR_KINDS } from '../domain/policy.js';
import { RequestState } from '../domain/request-enums.js';

/** Which app a Metrics instance belongs to: it exposes that app's series only. */
export type MetricsProcess = 'broker' | 'worker';

/** How an approval attempt ended: approved, denied, or refused (step-up, eligibility, state, …). */
export type ApprovalResult = 'approve' | 'deny' | 'refused';
/** How one revocation attempt ended: confirmed, failed with retries left, or failed on its last attempt. */
export type RevocationResult = 'revoked' | 'retry' | 'failed';

/** The states the BullMQ queue gauge reports; depth is `waiting` (prioritized jobs included). */
export const QUEUE_JOB_STATES = ['waiting', 'active', 'delayed', 'failed'] as const;

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
// Revocation lag is seconds to minutes: a job on time, a retry's backoff, a sweep after a Redis loss.
const LAG_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 900];

/**
 * Every Prometheus series of the broker and the worker, defined here only (names prefixed `jit_`), in one
 * registry per app instance: one per process in production; the e2e tests run a broker and a worker in one
 * process and still scrape each apart. A metric the other app records (none today) is simply not exposed.
 * Gauges read from PostgreSQL or Redis are set at scrape time by the app that exposes them.
 */
export class Metrics {
  readonly registry = new Registry();

  // Broker: HTTP, decisions, step-ups, and the state of PostgreSQL and the queues at scrape time.
  declare readonly httpRequestDuration: Histogram<'method' | 'route' | 'status'>;
  declare readonly approveDuration: Histogram<'result'>;
  declare readonly activateDuration: Histogram<'result'>;
  declare readonly approvals: Counter<'result'>;
  declare readonly stepUpFailures: Counter<'code'>;
  declare readonly rubberStampFlags: Counter;
  declare readonly grants: Gauge<'state'>;
  declare readonly grantsOverdue: Gauge;
  declare readonly revocationLagMax: Gauge;
  declare readonly requests: Gauge<'state'>;
  declare readonly rubberStampApprovals: Gauge;
  declare readonly stepUpFailuresRecent: Gauge;
  declare readonly breakGlassReviewsOverdue: Gauge;
  declare readonly queueJobs: Gauge<'queue' | 'state'>;

  // Worker: revocations as they are confirmed, and notification deliveries.
  declare readonly revocationLag: Histogram<'connector'>;
  declare readonly revocations: Counter<'connector' | 'result'>;
  declare readonly notifications: Counter<'channel' | 'result'>;

  constructor(readonly process: MetricsProcess) {
    collectDefaultMetrics({ register: this.registry, prefix: `jit_${process}_` });
    const broker = process === 'broker' ? [this.registry] : [];
    const worker = process === 'worker' ? [this.registry] : [];
    Object.assign(this, activitySeries(broker), stateSeries(broker), workerSeries(worker));
  }

  /** Runs `work`, observing its duration in `histogram` with `result` ok or error. */
  async timed<T>(histogram: Histogram<'result'>, work: () => Promise<T>): Promise<T> {
    const end = histogram.startTimer();
    try {
      const value = await work();
      end({ result: 'ok' });
      return value;
    } catch (error) {
      end({ result: 'error' });
      throw error;
    }
  }

  /** Records a confirmed revocation: its lag (negative clamped to 0) and the revoked count. */
  observeRevoked(connector: string, lagMs: number): void {
    this.revocationLag.observe({ connector }, Math.max(0, lagMs) / 1000);
    this.revocations.inc({ connector, result: 'revoked' });
  }
}

type Registers = Registry[];

/** The broker's counters and histograms of what it did. */
function activitySeries(registers: Registers) {
  const approvals = new Counter({
    name: 'jit_approvals_total',
    help: 'Approver decisions by result: approve, deny, or refused (the decision was not recorded)',
    labelNames: ['result'],
    registers,
  });
  for (const result of ['approve', 'deny', 'refused'] satisfies ApprovalResult[])
    approvals.inc({ result }, 0);
  const duration = (name: string, help: string) =>
    new Histogram({ name, help, labelNames: ['result'], buckets: LATENCY_BUCKETS, registers });
  return {
    httpRequestDuration: new Histogram({
      name: 'jit_http_request_duration_seconds',
      help: 'HTTP requests by method, route pattern (never the raw URL) and status',
      labelNames: ['method', 'route', 'status'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    approveDuration: duration(
      'jit_approve_duration_seconds',
      'POST /api/requests/:id/approve, step-up included, by result (ok, error)',
    ),
    activateDuration: duration(
      'jit_activate_duration_seconds',
      'POST /api/requests/:id/activate, step-up and connector mint included, by result (ok, error)',
    ),
    approvals,
    stepUpFailures: new Counter({
      name: 'jit_step_up_failures_total',
      help: 'Refused (audited) step-ups by error code',
      labelNames: ['code'],
      registers,
    }),
    rubberStampFlags: new Counter({
      name: 'jit_rubber_stamp_flags_total',
      help: 'Approvals flagged as rubber stamps (not opened, or approved within RUBBER_STAMP_SECONDS)',
      registers,
    }),
  };
}

/** The broker's gauges, set at scrape time from PostgreSQL and Redis. */
function stateSeries(registers: Registers) {
  const gauge = (name: string, help: string) => new Gauge({ name, help, registers });
  const grants = new Gauge({
    name: 'jit_grants',
    help: 'Grants by state, every state present (0 included)',
    labelNames: ['state'],
    registers,
  });
  const requests = new Gauge({
    name: 'jit_requests',
    help: 'Elevation requests by state, every state present (0 included)',
    labelNames: ['state'],
    registers,
  });
  for (const state of Object.values(GrantState)) grants.set({ state }, 0);
  for (const state of Object.values(RequestState)) requests.set({ state }, 0);
  return {
    grants,
    requests,
    grantsOverdue: gauge(
      'jit_grants_overdue',
      'Grants past notAfter (or an early revoke) and not yet revoked: should stay 0; alert when not',
    ),
    revocationLagMax: gauge(
      'jit_revocation_lag_max_seconds',
      'Largest revokedAt - notAfter of grants revoked at their end in the last hour',
    ),
    rubberStampApprovals: gauge(
      'jit_rubber_stamp_approvals',
      'Approvals given without opening the request, or within seconds of first opening it (all time)',
    ),
    stepUpFailuresRecent: gauge(
      'jit_step_up_failures_15m',
      'Refused step-ups in the last 15 minutes, all brokers (from the audit log)',
    ),
    breakGlassReviewsOverdue: gauge(
      'jit_break_glass_reviews_overdue',
      'Break-glass requests past their post-review deadline and not reviewed',
    ),
    queueJobs: new Gauge({
      name: 'jit_queue_jobs',
      help: 'BullMQ jobs per queue by state (waiting is the depth; failed are kept failed jobs)',
      labelNames: ['queue', 'state'],
      registers,
    }),
  };
}

/** The worker's revocation and notification series; every connector kind and result from 0. */
function workerSeries(registers: Registers) {
  const revocationLag = new Histogram({
    name: 'jit_revocation_lag_seconds',
    help: 'Seconds from a grant being due (notAfter or early revoke) to its confirmed revocation, by connector kind',
    labelNames: ['connector'],
    buckets: LAG_BUCKETS,
    registers,
  });
  const revocations = new Counter({
    name: 'jit_revocations_total',
    help: 'Revocation attempts by connector kind and result (revoked, retry, failed: REVOKE_FAILED)',
    labelNames: ['connector', 'result'],
    registers,
  });
  for (const connector of CONNECTOR_KINDS) {
    revocationLag.zero({ connector });
    for (const result of ['revoked', 'retry', 'failed'] satisfies RevocationResult[])
      revocations.inc({ connector, result }, 0);
  }
  const notifications = new Counter({
    name: 'jit_notifications_total',
    help: 'Notification delivery attempts by policy channel and result (sent, retry, failed after the last attempt)',
    labelNames: ['channel', 'result'],
    registers,
  });
  return { revocationLag, revocations, notifications };
}
