import { Logger } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import type { JobProducer } from '../jobs/job-producer.js';

const logger = new Logger('AfterCommit');

/** Jobs to enqueue once the transaction has committed (never inside it: DESIGN §4). */
export interface AfterCommit {
  revokeAt: Array<{ grantId: string; notAfter: Date }>;
  revokeNow: string[];
  expireAt: Array<{ requestId: string; deadline: Date }>;
  startAt: Array<{ requestId: string; notBefore: Date }>;
  /** Requests whose state or grant changed: announced to live-update streams after commit. */
  changed: string[];
}

/** Announces committed request changes (RequestAnnouncer); null where nobody listens. */
export interface Announcer {
  announce(requestIds: readonly string[]): Promise<void>;
}

// The collector of the transaction a manager runs, so that the one state writer (compareAndSet) can note
// its change without every command threading the list through.
const collectors = new WeakMap<EntityManager, AfterCommit>();

/** An empty list of jobs for a command to fill. */
export function afterCommit(): AfterCommit {
  return { revokeAt: [], revokeNow: [], expireAt: [], startAt: [], changed: [] };
}

/** A transaction whose collected jobs are enqueued once it has committed (never inside it: DESIGN §4). */
export async function transactWithJobs<T>(
  dataSource: DataSource,
  producer: JobProducer,
  work: (manager: EntityManager, jobs: AfterCommit) => Promise<T>,
  announcer: Announcer | null = null,
): Promise<T> {
  const jobs = afterCommit();
  const result = await dataSource.transaction((manager) => {
    collectAfterCommit(manager, jobs);
    return work(manager, jobs);
  });
  await enqueue(producer, jobs);
  await announcer?.announce(jobs.changed);
  return result;
}

/** Has `jobs` collect the changes noted in the transaction `manager` runs. */
export function collectAfterCommit(manager: EntityManager, jobs: AfterCommit): void {
  collectors.set(manager, jobs);
}

/** Notes that a request (or its grant) changed in this transaction, to be announced once it commits. */
export function noteChanged(manager: EntityManager, requestId: string): void {
  const jobs = collectors.get(manager);
  if (jobs) jobs.changed.push(requestId);
  else logger.debug(`Request ${requestId} changed in a transaction that announces nothing`);
}

/** Enqueues committed work; a failure is logged, as the sweeper enqueues the same from PostgreSQL. */
export async function enqueue(producer: JobProducer, jobs: AfterCommit): Promise<void> {
  const attempts: Array<Promise<void>> = [
    ...jobs.revokeAt.map(({ grantId, notAfter }) => producer.scheduleRevocation(grantId, notAfter)),
    ...jobs.revokeNow.map((grantId) => producer.revokeNow(grantId)),
    ...jobs.expireAt.map(({ requestId, deadline }) => producer.scheduleExpiry(requestId, deadline)),
    ...jobs.startAt.map(({ requestId, notBefore }) => producer.scheduleStart(requestId, notBefore)),
  ];
  for (const outcome of await Promise.allSettled(attempts)) {
    // Committed already; the sweeper enqueues the same work from PostgreSQL within one interval.
    if (outcome.status === 'rejected') logger.warn(`Could not enqueue a job: ${String(outcome.reason)}`);
  }
}
