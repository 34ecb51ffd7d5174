import { OnWorkerEvent, Processor, WorkerHost } from '@nestjs/bullmq';
import { Logger } from '@nestjs/common';
import { DelayedError, type Job, type MinimalJob } from 'bullmq';
import { GrantsService } from '../../libs/elevation/grants.service.js';
import { RequestsService } from '../../libs/elevation/requests.service.js';
import { JobName, QueueName, revokeRetryDelayMs, type JobPayloads } from '../../libs/jobs/jobs.js';
import { Metrics } from '../../libs/metrics/metrics.js';
import { assertHandlesEveryJob, dispatch, type JobHandlers } from './job-handlers.js';

// The retry delay each failed attempt chose and recorded as the grant's nextRetryAt, keyed by the error
// BullMQ hands to the backoff strategy, so BullMQ waits exactly what the grant says.
const chosenDelays = new WeakMap<Error, number>();

function baseDelayOf(job?: MinimalJob): number {
  const backoff = job?.opts.backoff;
  return (typeof backoff === 'number' ? backoff : backoff?.delay) ?? 0;
}

/** BullMQ's backoff strategy for revocation jobs (REVOKE_BACKOFF_TYPE): the delay the attempt recorded. */
export function revocationBackoff(
  attemptsMade: number,
  _type?: string,
  error?: Error,
  job?: MinimalJob,
): number {
  return (error && chosenDelays.get(error)) ?? revokeRetryDelayMs(attemptsMade, baseDelayOf(job));
}

/** Revokes grants at notAfter. Thin: GrantsService decides from PostgreSQL; RequestsService ends the request. */
// A job that was running in a killed worker is handed to another after ~15 s instead of ~60 s; the
// handlers are idempotent, so running one twice is harmless.
@Processor(QueueName.Revocation, {
  concurrency: 8,
  lockDuration: 10_000,
  stalledInterval: 5_000,
  settings: { backoffStrategy: revocationBackoff },
})
export class RevocationProcessor extends WorkerHost {
  private readonly logger = new Logger(RevocationProcessor.name);
  private readonly handlers: JobHandlers = {
    [JobName.RevokeGrant]: (job) => this.revokeGrant(job as Job<JobPayloads[JobName.RevokeGrant]>),
  };

  constructor(
    private readonly grants: GrantsService,
    private readonly requests: RequestsService,
    private readonly metrics: Metrics,
  ) {
    super();
    assertHandlesEveryJob(QueueName.Revocation, this.handlers);
  }

  /** Connection errors (Redis restarting) are logged; BullMQ would otherwise print them raw. */
  @OnWorkerEvent('error')
  onWorkerError(error: Error): void {
    this.logger.warn(`Worker connection: ${error.message}`);
  }

  process(job: Job, token?: string): Promise<unknown> {
    return dispatch(QueueName.Revocation, this.handlers, job)
      .catch(async (error: unknown) => {
        if (error instanceof DelayedError) throw error;
        const failure = error instanceof Error ? error : new Error(String(error));
        const attemptsMade = job.attemptsMade + 1;
        const finalAttempt = attemptsMade >= (job.opts.attempts ?? 1);
        const delayMs = finalAttempt ? null : revokeRetryDelayMs(attemptsMade, baseDelayOf(job));
        const nextRetryAt = delayMs === null ? null : new Date(Date.now() + delayMs);
        const grantId = (job.data as { grantId: string }).grantId;
        const recorded = await this.grants.recordFailure(grantId, failure, nextRetryAt);
        if (recorded) {
          const result = finalAttempt ? 'failed' : 'retry';
          this.metrics.revocations.inc({ connector: recorded.connectorType, result });
        }
        if (delayMs !== null) chosenDelays.set(failure, delayMs);
        throw failure;
      })
      .then((outcome) => this.rescheduleIfEarly(job, outcome, token));
  }

  private async revokeGrant(job: Job<JobPayloads[JobName.RevokeGrant]>) {
    const outcome = await this.grants.revoke(job.data.grantId, (manager, request, at) =>
      this.requests.endAtExpiry(manager, request, at),
    );
    if (outcome.status === 'revoked') {
      this.metrics.observeRevoked(outcome.connectorType, outcome.lagMs);
      this.logger.log(`Revoked grant ${job.data.grantId}, lag ${outcome.lagMs} ms`);
    }
    return outcome;
  }

  /** A job that fires before PostgreSQL's clock reaches notAfter (clock drift) waits for the remainder. */
  private async rescheduleIfEarly(job: Job, outcome: unknown, token?: string): Promise<unknown> {
    const early = outcome as { status?: string; remainingMs?: number };
    if (early.status !== 'not-due' || !token) return outcome;
    await job.moveToDelayed(Date.now() + (early.remainingMs ?? 0), token);
    throw new DelayedError();
  }
}
