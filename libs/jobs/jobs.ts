/** Queues of DESIGN §8. */
export enum QueueName {
  Revocation = 'revocation',
  Lifecycle = 'lifecycle',
  Maintenance = 'maintenance',
}

/** Every job name; the worker refuses to boot if one has no handler. */
export enum JobName {
  RevokeGrant = 'revoke-grant',
  ExpireRequest = 'expire-request',
  StartScheduled = 'start-scheduled',
  Sweep = 'sweep',
  Checkpoint = 'checkpoint',
}

/** Payloads carry ids only (DESIGN §4.7): handlers load the truth from PostgreSQL. */
export interface JobPayloads {
  [JobName.RevokeGrant]: { grantId: string };
  [JobName.ExpireRequest]: { requestId: string };
  [JobName.StartScheduled]: { requestId: string };
  [JobName.Sweep]: Record<string, never>;
  [JobName.Checkpoint]: Record<string, never>;
}

/** Which queue each job runs on. */
export const JOB_QUEUE: Readonly<Record<JobName, QueueName>> = {
  [JobName.RevokeGrant]: QueueName.Revocation,
  [JobName.ExpireRequest]: QueueName.Lifecycle,
  [JobName.StartScheduled]: QueueName.Lifecycle,
  [JobName.Sweep]: QueueName.Maintenance,
  [JobName.Checkpoint]: QueueName.Maintenance,
};

/** The job names that belong to a queue. */
export function jobsOfQueue(queue: QueueName): JobName[] {
  return Object.values(JobName).filter((name) => JOB_QUEUE[name] === queue);
}

/** Deterministic id, so re-adding the revocation of a grant is a no-op (BullMQ refuses ids with `:`). */
export function revokeJobId(grantId: string): string {
  return `revoke-${grantId}`;
}

/** `expire-<requestId>`: the pending TTL, then the activation window, of one request. */
export function expireJobId(requestId: string): string {
  return `expire-${requestId}`;
}

/** `start-<requestId>`: a scheduled request's activation window opens at notBefore. */
export function startJobId(requestId: string): string {
  return `start-${requestId}`;
}

/** Revocation attempts before a grant is marked REVOKE_FAILED (the sweeper keeps retrying after that). */
export const REVOKE_ATTEMPTS = 8;
