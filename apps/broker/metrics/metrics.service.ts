import { Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { DataSource } from 'typeorm';
import { AuditAction } from '../../../libs/audit/audit-actions.js';

/**
 * Prometheus metrics read from PostgreSQL at scrape time: brokers are stateless and revocations happen in
 * the worker, so every instance reports the same truth instead of its own counters.
 */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();

  constructor(private readonly dataSource: DataSource) {
    collectDefaultMetrics({ register: this.registry, prefix: 'jit_broker_' });
    const query = <T>(sql: string, parameters: unknown[] = []) =>
      this.dataSource.query(sql, parameters) as Promise<T[]>;
    const registers = [this.registry];

    new Gauge({
      name: 'jit_grants',
      help: 'Grants by state (ACTIVE, REVOKING, REVOKED, REVOKE_FAILED)',
      labelNames: ['state'],
      registers,
      async collect() {
        this.reset();
        for (const row of await query<{ state: string; count: number }>(
          `SELECT state, count(*)::int AS count FROM grants GROUP BY state`,
        ))
          this.set({ state: row.state }, row.count);
      },
    });
    new Gauge({
      name: 'jit_grants_overdue',
      help: 'Grants past notAfter (or an early revoke) and not yet revoked: should stay 0; alert when not',
      registers,
      async collect() {
        const [row] = await query<{ count: number }>(
          `SELECT count(*)::int AS count FROM grants
            WHERE state <> 'REVOKED' AND (not_after < now() OR revoke_requested_at IS NOT NULL)`,
        );
        this.set(row.count);
      },
    });
    new Gauge({
      name: 'jit_revocation_lag_max_seconds',
      help: 'Largest revokedAt - notAfter of grants revoked at their end in the last hour',
      registers,
      async collect() {
        const [row] = await query<{ lag: number | null }>(
          `SELECT max(extract(epoch FROM revoked_at - not_after))::float8 AS lag FROM grants
            WHERE state = 'REVOKED' AND revoke_requested_at IS NULL AND revoked_at > now() - interval '1 hour'`,
        );
        this.set(Math.max(0, row.lag ?? 0));
      },
    });
    new Gauge({
      name: 'jit_requests',
      help: 'Elevation requests by state',
      labelNames: ['state'],
      registers,
      async collect() {
        this.reset();
        for (const row of await query<{ state: string; count: number }>(
          `SELECT state, count(*)::int AS count FROM elevation_requests GROUP BY state`,
        ))
          this.set({ state: row.state }, row.count);
      },
    });
    new Gauge({
      name: 'jit_rubber_stamp_approvals',
      help: 'Approvals given without opening the request, or within seconds of first opening it (all time)',
      registers,
      async collect() {
        const [row] = await query<{ count: number }>(
          `SELECT count(*)::int AS count FROM audit_events
            WHERE action = $1 AND (data ->> 'rubberStamp')::boolean`,
          [AuditAction.ApprovalRecorded],
        );
        this.set(row.count);
      },
    });
    new Gauge({
      name: 'jit_step_up_failures_15m',
      help: 'Refused step-ups in the last 15 minutes',
      registers,
      async collect() {
        const [row] = await query<{ count: number }>(
          `SELECT count(*)::int AS count FROM audit_events
            WHERE action = $1 AND at > now() - interval '15 minutes'`,
          [AuditAction.StepUpFailed],
        );
        this.set(row.count);
      },
    });
    new Gauge({
      name: 'jit_break_glass_reviews_overdue',
      help: 'Break-glass requests past their post-review deadline and not reviewed',
      registers,
      async collect() {
        const [row] = await query<{ count: number }>(
          `SELECT count(*)::int AS count FROM elevation_requests
            WHERE break_glass AND reviewed_at IS NULL AND review_due_at < now()`,
        );
        this.set(row.count);
      },
    });
  }
}
