import { OnWorkerEvent, Processor, WorkerHost } from '@nestjs/bullmq';
import { Logger } from '@nestjs/common';
import { DelayedError, type Job } from 'bullmq';
import { GrantsService } from '../../libs/elevation/grants.service.js';
import { RequestsService } from '../../libs/elevation/requests.service.js';
import { JobName, QueueName, type JobPayloads } from '../../libs/jobs/jobs.js';
import { assertHandlesEveryJob, dispatch, type JobHandlers } from './job-handlers.js';

/** Revokes grants at notAfter. Thin: GrantsService decides from PostgreSQL; RequestsService ends the request. */
// A job that was running in a killed worker is handed to another after ~15 s instead of ~60 s; the
// handlers are idempotent, so running one twice is harmless.
@Processor(QueueName.Revocation, { concurrency: 8, lockDuration: 10_000, stalledInterval: 5_000 })
export class RevocationProcessor extends WorkerHost {
  private readonly logger = new Logger(RevocationProcessor.name);
  private readonly handlers: JobHandlers = {
    [JobName.RevokeGrant]: (job) => this.revokeGrant(job as Job<JobPayloads[JobName.RevokeGrant]>),
  };

  constructor(
    private readonly grants: GrantsService,
    private readonly requests: RequestsService,
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
        const finalAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
        await this.grants.recordFailure((job.data as { grantId: string }).grantId, error, finalAttempt);
        throw error;
      })
      .then((outcome) => this.rescheduleIfEarly(job, outcome, token));
  }

  private async revokeGrant(job: Job<JobPayloads[JobName.RevokeGrant]>) {
    const outcome = await this.grants.revoke(job.data.grantId, (manager, requestId, at) =>
      this.requests.endAtExpiry(manager, requestId, at),
    );
    if (outcome.status === 'revoked')
      this.logger.log(`Revoked grant ${job.data.grantId}, lag ${outcome.lagMs} ms`);
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
