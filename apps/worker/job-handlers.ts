import type { Job } from 'bullmq';
import { jobsOfQueue, type JobName, type QueueName } from '../../libs/jobs/jobs.js';

/** A processor's handlers by job name. */
export type JobHandlers = Partial<Record<JobName, (job: Job) => Promise<unknown>>>;

/** Refuses to boot when a job name of the queue has no handler (STYLE: jobs as contracts). */
export function assertHandlesEveryJob(queue: QueueName, handlers: JobHandlers): void {
  const missing = jobsOfQueue(queue).filter((name) => !handlers[name]);
  if (missing.length > 0) throw new Error(`Queue ${queue} has no handler for: ${missing.join(', ')}`);
}

/** Dispatches a job to its handler; an unknown name fails the job loudly instead of completing it. */
export function dispatch(queue: QueueName, handlers: JobHandlers, job: Job): Promise<unknown> {
  const handler = handlers[job.name as JobName];
  if (!handler) throw new Error(`Queue ${queue} received unknown job ${job.name}`);
  return handler(job);
}
