import { Injectable, Logger } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditAction } from '../audit/audit-actions.js';
import { SYSTEM_ACTOR } from '../audit/audit-log.js';
import { RequestState } from '../domain/request-state.js';
import { JobProducer } from '../jobs/job-producer.js';
import * as audit from './request-audit.js';
import * as store from './request-store.js';

/**
 * Restore from PostgreSQL (Vault's Restore): re-enqueues the lifecycle jobs of every waiting request, and
 * reports break-glass reviews that became overdue. Changes no request's state; the jobs it enqueues do,
 * through RequestsService.
 */
@Injectable()
export class RequestSweeper {
  private readonly logger = new Logger(RequestSweeper.name);

  constructor(
    private readonly dataSource: DataSource,
    private readonly jobs: JobProducer,
  ) {}

  /** Re-enqueues lifecycle jobs of every waiting request from PostgreSQL (DESIGN §8); returns how many. */
  async sweepLifecycle(): Promise<number> {
    const waiting = await store.waitingRequests(this.dataSource.manager);
    for (const request of waiting) {
      const deadline = request.state === RequestState.PENDING ? request.pendingUntil : request.activateBy;
      if (deadline) await this.jobs.scheduleExpiry(request.id, deadline);
      if (request.state === RequestState.APPROVED && request.notBefore && request.awaitsStart) {
        await this.jobs.scheduleStart(request.id, request.notBefore);
      }
    }
    return waiting.length;
  }

  /** Audits each break-glass review that became overdue, once; returns how many. */
  async reportOverdueReviews(): Promise<number> {
    return this.dataSource.transaction(async (manager) => {
      const overdue = await store.markOverdueReviews(manager);
      for (const request of overdue) {
        this.logger.warn(`Break-glass request ${request.id} is overdue for post-review`);
        await audit.event(manager, SYSTEM_ACTOR, AuditAction.BreakGlassReviewOverdue, request.id, {
          alert: true,
          entitlementId: request.entitlementId,
          reviewDueAt: request.reviewDueAt.toISOString(),
        });
      }
      return overdue.length;
    });
  }
}
