import { InjectQueue } from '@nestjs/bullmq';
import { Injectable, Logger } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { DataSource } from 'typeorm';
import { AuditAction } from '../../../libs/audit/audit-actions.js';
import { GrantState } from '../../../libs/domain/grant-state.js';
import { RequestState } from '../../../libs/domain/request-enums.js';
import { QueueName } from '../../../libs/jobs/jobs.js';
import { Metrics } from '../../../libs/metrics/metrics.js';

type Count = { count: number };
/** How long a scrape waits for Redis's queue counts. */
const QUEUE_READ_TIMEOUT_MS = 2_000;

/**
 * The broker's scrape: its own counters and histograms (libs/metrics), plus gauges read from PostgreSQL and
 * the BullMQ queues at scrape time, so every broker reports the same truth for what the worker changes.
 */
@Injectable()
export class MetricsService {
  private readonly queues: Queue[];
  private readonly logger = new Logger(MetricsService.name);

  constructor(
    private readonly dataSource: DataSource,
    readonly metrics: Metrics,
    @InjectQueue(QueueName.Revocation) revocation: Queue,
    @InjectQueue(QueueName.Lifecycle) lifecycle: Queue,
    @InjectQueue(QueueName.Maintenance) maintenance: Queue,
    @InjectQueue(QueueName.Notify) notify: Queue,
  ) {
    this.queues = [revocation, lifecycle, maintenance, notify];
  }

  /** The Prometheus text exposition, gauges refreshed first. */
  async render(): Promise<string> {
    await Promise.all([this.readDatabase(), this.readQueues()]);
    return this.metrics.registry.metrics();
  }

  get contentType(): string {
    return this.metrics.registry.contentType;
  }

  private async readDatabase(): Promise<void> {
    const m = this.metrics;
    const [grants, requests, [overdue], [lag], [rubberStamps], [stepUps], [reviews]] = await Promise.all([
      this.query<Count & { state: string }>(
        `SELECT state, count(*)::int AS count FROM grants GROUP BY state`,
      ),
      this.query<Count & { state: string }>(
        `SELECT state, count(*)::int AS count FROM elevation_requests GROUP BY state`,
      ),
      this.query<Count>(
        `SELECT count(*)::int AS count FROM grants
          WHERE state <> 'REVOKED' AND (not_after < now() OR revoke_requested_at IS NOT NULL)`,
      ),
      this.query<{ lag: number | null }>(
        `SELECT max(extract(epoch FROM revoked_at - not_after))::float8 AS lag FROM grants
          WHERE state = 'REVOKED' AND revoke_requested_at IS NULL AND revoked_at > now() - interval '1 hour'`,
      ),
      this.query<Count>(
        `SELECT count(*)::int AS count FROM audit_events WHERE action = $1 AND (data ->> 'rubberStamp')::boolean`,
        [AuditAction.ApprovalRecorded],
      ),
      this.query<Count>(
        `SELECT count(*)::int AS count FROM audit_events WHERE action = $1 AND at > now() - interval '15 minutes'`,
        [AuditAction.StepUpFailed],
      ),
      this.query<Count>(
        `SELECT count(*)::int AS count FROM elevation_requests
          WHERE break_glass AND reviewed_at IS NULL AND review_due_at < now()`,
      ),
    ]);
    // Every state has its series, 0 included, so an alert on REVOKE_FAILED needs no `absent()`.
    setByState(m.grants, Object.values(GrantState), grants);
    setByState(m.requests, Object.values(RequestState), requests);
    m.grantsOverdue.set(overdue.count);
    m.revocationLagMax.set(Math.max(0, lag.lag ?? 0));
    m.rubberStampApprovals.set(rubberStamps.count);
    m.stepUpFailuresRecent.set(stepUps.count);
    m.breakGlassReviewsOverdue.set(reviews.count);
  }

  /**
   * Queue gauges from Redis, given at most QUEUE_READ_TIMEOUT_MS: with Redis down the scrape still answers
   * (the database series, the process's own), and the queue series are left out rather than stale.
   */
  private async readQueues(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), QUEUE_READ_TIMEOUT_MS);
    });
    try {
      const outcome = await Promise.race([this.readQueueCounts(), timeout]);
      if (outcome === 'timeout') throw new Error(`no answer within ${QUEUE_READ_TIMEOUT_MS} ms`);
    } catch (error) {
      this.metrics.queueJobs.reset();
      this.logger.warn(`Metrics: queue counts unavailable (${String(error)})`);
    } finally {
      clearTimeout(timer);
    }
  }

  private async readQueueCounts(): Promise<void> {
    for (const queue of this.queues) {
      const counts = await queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed');
      const depth = (counts.waiting ?? 0) + (counts.prioritized ?? 0);
      this.metrics.queueJobs.set({ queue: queue.name, state: 'waiting' }, depth);
      for (const state of ['active', 'delayed', 'failed'] as const)
        this.metrics.queueJobs.set({ queue: queue.name, state }, counts[state] ?? 0);
    }
  }

  private query<T>(sql: string, parameters: unknown[] = []): Promise<T[]> {
    return this.dataSource.query(sql, parameters) as Promise<T[]>;
  }
}

function setByState(
  gauge: Metrics['grants'],
  states: readonly string[],
  rows: Array<Count & { state: string }>,
): void {
  const counts = new Map(rows.map((row) => [row.state, row.count]));
  for (const state of new Set([...states, ...counts.keys()])) gauge.set({ state }, counts.get(state) ?? 0);
}
