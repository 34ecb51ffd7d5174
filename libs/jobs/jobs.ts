/** Queues of DESIGN §8. */
export enum QueueName {
  Revocation = 'revocation',
  Lifecycle = 'lifecycle',
  Maintenance = 'maintenance',
  Notify = 'notify',
}

/** Every job name; the worker refuses to boot if one has no handler. */
export enum JobName {
  RevokeGrant = 'revoke-grant',
  ExpireRequest = 'expire-request',
  StartScheduled = 'start-scheduled',
  Sweep = 'sweep',
  Checkpoint = 'checkpoint',
  DeliverNotification = 'deliver-notification',
}

/** Payloads carry ids only (DESIGN §4.7): handlers load the truth from PostgreSQL. */
export interface JobPayloads {
  [JobName.RevokeGrant]: { grantId: string };
  [JobName.ExpireRequest]: { requestId: string };
  [JobName.StartScheduled]: { requestId: string };
  [JobName.Sweep]: Record<string, never>;
  [JobName.Checkpoint]: Record<string, never>;
  [JobName.DeliverNotification]: { deliveryId: string };
}

/** Which queue each job runs on. */
export const JOB_QUEUE: Readonly<Record<JobName, QueueName>> = {
  [JobName.RevokeGrant]: QueueName.Revocation,
  [JobName.ExpireRequest]: QueueName.Lifecycle,
  [JobName.StartScheduled]: QueueName.Lifecycle,
  [JobName.Sweep]: QueueName.Maintenance,
  [JobName.Checkpoint]: QueueName.Maintenance,
  [JobName.DeliverNotification]: QueueName.Notify,
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

/** `deliver-<deliveryId>`: one notification_deliveries row, sent with retries (issue 18). */
export function deliverJobId(deliveryId: string): string {
  return `deliver-${deliveryId}`;
}

/** Revocation attempts before a grant is marked REVOKE_FAILED (the sweeper keeps retrying after that). */
export const REVOKE_ATTEMPTS = 8;

/**
 * The revocation job's backoff type: a strategy of the worker's (not BullMQ's built-in exponential), so the
 * worker chooses each retry's delay itself and records it on the grant as `nextRetryAt` before BullMQ waits it.
 */
export const REVOKE_BACKOFF_TYPE = 'revocation';
const REVOKE_JITTER = 0.5;

/**
 * Pure: the wait before the retry that follows failed attempt `attemptsMade` (1-based): a random time between
 * half and all of `baseMs × 2^(attemptsMade-1)`, as BullMQ's exponential backoff with jitter 0.5.
 */
export function revokeRetryDelayMs(
  attemptsMade: number,
  baseMs: number,
  random: () => number = Math.random,
): number {
  const maxDelay = Math.round(2 ** (attemptsMade - 1) * baseMs);
  return Math.floor(maxDelay * (1 - REVOKE_JITTER) + random() * maxDelay * REVOKE_JITTER);
}
