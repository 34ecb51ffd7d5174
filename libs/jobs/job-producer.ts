import { InjectQueue } from '@nestjs/bullmq';
import { Injectable } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { withDeadline } from '../deadline/deadline.js';
import { JobName, QueueName, REVOKE_ATTEMPTS, revokeJobId, type JobPayloads } from './jobs.js';

const ENQUEUE_TIMEOUT_MS = 2000;

/** The one place that enqueues jobs; every job is keyed by a deterministic id. */
@Injectable()
export class JobProducer {
  constructor(@InjectQueue(QueueName.Revocation) private readonly revocationQueue: Queue) {}

  /**
   * Schedules the revocation of a grant at `notAfter` (at once when already due). Called after the
   * transaction that issued the grant commits; if this process dies first, the sweeper enqueues it.
   */
  async scheduleRevocation(grantId: string, notAfter: Date): Promise<void> {
    const payload: JobPayloads[JobName.RevokeGrant] = { grantId };
    const added = this.revocationQueue.add(JobName.RevokeGrant, payload, {
      jobId: revokeJobId(grantId),
      delay: Math.max(0, notAfter.getTime() - Date.now()),
      attempts: REVOKE_ATTEMPTS,
      backoff: { type: 'exponential', delay: 1000, jitter: 0.5 },
      // Finished jobs are removed so that the sweeper can enqueue the same id again if PostgreSQL says
      // the grant is still not revoked.
      removeOnComplete: true,
      removeOnFail: true,
    });
    // While Redis is unreachable, add() waits for it indefinitely; a caller must not hang on that.
    await withDeadline(added, ENQUEUE_TIMEOUT_MS, 'Redis did not accept the job in time');
  }
}
