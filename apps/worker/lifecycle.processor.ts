import { OnWorkerEvent, Processor, WorkerHost } from '@nestjs/bullmq';
import { Logger } from '@nestjs/common';
import { DelayedError, type Job } from 'bullmq';
import { RequestsService } from '../../libs/elevation/requests.service.js';
import { JobName, QueueName, type JobPayloads } from '../../libs/jobs/jobs.js';
import { assertHandlesEveryJob, dispatch, type JobHandlers } from './job-handlers.js';

type RequestJob = Job<JobPayloads[JobName.ExpireRequest]>;

/** Pending TTL, activation window and scheduled start. Thin: RequestsService decides from PostgreSQL. */
// A job that was running in a killed worker is handed to another after ~15 s instead of ~60 s; the
// handlers are idempotent, so running one twice is harmless.
@Processor(QueueName.Lifecycle, { concurrency: 8, lockDuration: 10_000, stalledInterval: 5_000 })
export class LifecycleProcessor extends WorkerHost {
  private readonly logger = new Logger(LifecycleProcessor.name);
  private readonly handlers: JobHandlers = {
    [JobName.ExpireRequest]: (job) => this.requests.expireIfDue((job as RequestJob).data.requestId),
    [JobName.StartScheduled]: (job) => this.requests.openScheduledWindow((job as RequestJob).data.requestId),
  };

  constructor(private readonly requests: RequestsService) {
    super();
    assertHandlesEveryJob(QueueName.Lifecycle, this.handlers);
  }

  /** Connection errors (Redis restarting) are logged; BullMQ would otherwise print them raw. */
  @OnWorkerEvent('error')
  onWorkerError(error: Error): void {
    this.logger.warn(`Worker connection: ${error.message}`);
  }

  async process(job: Job, token?: string): Promise<unknown> {
    const outcome = (await dispatch(QueueName.Lifecycle, this.handlers, job)) as {
      status: string;
      remainingMs?: number;
    };
    if (outcome.status === 'expired')
      this.logger.log(`Request ${(job as RequestJob).data.requestId} expired`);
    // A job that fires before PostgreSQL's clock reaches the deadline (drift, or a deadline that moved
    // later on approval) waits for the remainder.
    if (outcome.status === 'not-due' && token) {
      await job.moveToDelayed(Date.now() + (outcome.remainingMs ?? 0), token);
      throw new DelayedError();
    }
    return outcome;
  }
}
