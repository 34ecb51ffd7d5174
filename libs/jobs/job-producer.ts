import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable } from '@nestjs/common';
import type { JobsOptions, Queue } from 'bullmq';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { withDeadline } from '../deadline/deadline.js';
import {
  expireJobId,
  JobName,
  QueueName,
  REVOKE_ATTEMPTS,
  REVOKE_BACKOFF_TYPE,
  revokeJobId,
  startJobId,
  type JobPayloads,
} from './jobs.js';

const ENQUEUE_TIMEOUT_MS = 2000;
/** Revocation jobs per pipeline when the sweep re-adds them. */
const REVOCATION_BULK = 500;

// Finished jobs are removed so that the sweeper can enqueue the same id again if PostgreSQL says the work
// is still not done.
const REMOVE_WHEN_DONE: JobsOptions = { removeOnComplete: true, removeOnFail: true };
const LIFECYCLE_RETRIES: JobsOptions = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 1000, jitter: 0.5 },
};

/**
 * The one place that enqueues jobs; every job is keyed by a deterministic id. Callers enqueue after their
 * transaction commits; if the process dies first, the sweeper enqueues from PostgreSQL (DESIGN §4).
 */
@Injectable()
export class JobProducer {
  constructor(
    @InjectQueue(QueueName.Revocation) private readonly revocationQueue: Queue,
    @InjectQueue(QueueName.Lifecycle) private readonly lifecycleQueue: Queue,
    @Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'revokeBackoffMs'>,
  ) {}

  /** Schedules the revocation of a grant at `notAfter` (at once when already due). */
  async scheduleRevocation(grantId: string, notAfter: Date): Promise<void> {
    const { name, data, opts } = this.revocationJob(grantId, notAfter, Date.now());
    await bounded(this.revocationQueue.add(name, data, opts));
  }

  /**
   * scheduleRevocation for many grants (the sweep's), REVOCATION_BULK jobs per Redis round trip: re-adding
   * the jobs that still exist is a no-op, so a sweep costs a few pipelines instead of a command per grant.
   */
  async scheduleRevocations(grants: ReadonlyArray<{ grantId: string; notAfter: Date }>): Promise<void> {
    for (let start = 0; start < grants.length; start += REVOCATION_BULK) {
      const now = Date.now();
      const jobs = grants
        .slice(start, start + REVOCATION_BULK)
        .map(({ grantId, notAfter }) => this.revocationJob(grantId, notAfter, now));
      await bounded(this.revocationQueue.addBulk(jobs));
    }
  }

  private revocationJob(grantId: string, notAfter: Date, now: number) {
    const data: JobPayloads[JobName.RevokeGrant] = { grantId };
    const opts: JobsOptions = {
      jobId: revokeJobId(grantId),
      delay: Math.max(0, notAfter.getTime() - now),
      attempts: REVOKE_ATTEMPTS,
      backoff: { type: REVOKE_BACKOFF_TYPE, delay: this.config.revokeBackoffMs },
      ...REMOVE_WHEN_DONE,
    };
    return { name: JobName.RevokeGrant, data, opts };
  }

  /** Early revoke: the grant's delayed job runs now (DESIGN §8: promoted on early revoke). */
  async revokeNow(grantId: string): Promise<void> {
    await bounded(this.runNow(this.revocationQueue, revokeJobId(grantId)));
    await this.scheduleRevocation(grantId, new Date(0));
  }

  /** (Re)schedules a request's expiry check at `deadline` (pending TTL, then activation window). */
  async scheduleExpiry(requestId: string, deadline: Date): Promise<void> {
    await this.reschedule(JobName.ExpireRequest, expireJobId(requestId), { requestId }, deadline);
  }

  /** Schedules the opening of a scheduled request's activation window at notBefore. */
  async scheduleStart(requestId: string, notBefore: Date): Promise<void> {
    await this.reschedule(JobName.StartScheduled, startJobId(requestId), { requestId }, notBefore);
  }

  /** Replaces a delayed lifecycle job with one at `at`; a job already running re-delays itself from PostgreSQL. */
  private async reschedule(
    name: JobName,
    jobId: string,
    payload: { requestId: string },
    at: Date,
  ): Promise<void> {
    await bounded(
      (async () => {
        const existing = await this.lifecycleQueue.getJob(jobId);
        if (existing && (await existing.isDelayed())) await existing.remove().catch(() => undefined);
        await this.lifecycleQueue.add(name, payload, {
          jobId,
          delay: Math.max(0, at.getTime() - Date.now()),
          ...LIFECYCLE_RETRIES,
          ...REMOVE_WHEN_DONE,
        });
      })(),
    );
  }

  /** Promotes a delayed job that has not run yet; one waiting out a retry backoff keeps its backoff. */
  private async runNow(queue: Queue, jobId: string): Promise<void> {
    const existing = await queue.getJob(jobId);
    if (!existing || existing.attemptsMade > 0 || !(await existing.isDelayed())) return;
    try {
      await existing.promote();
    } catch (error) {
      // It may have left the delayed set meanwhile (a worker took it): that is what we wanted.
      if (await existing.isDelayed()) throw error;
    }
  }
}

/** While Redis is unreachable, BullMQ waits for it indefinitely; a caller must not hang on that. */
function bounded<T>(operation: Promise<T>): Promise<T> {
  return withDeadline(operation, ENQUEUE_TIMEOUT_MS, 'Redis did not accept the job in time');
}
