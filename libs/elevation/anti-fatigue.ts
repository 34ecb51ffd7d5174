import type { EntityManager } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { AuditAction } from '../audit/audit-actions.js';
import { appendAuditEvent } from '../audit/audit-log.js';
import type { AppConfig } from '../config/config.js';
import type { Actor } from '../domain/actor.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import { RequestState, WAITING_STATES } from '../domain/request-state.js';

type Limits = AppConfig['antiFatigue'];

/** What the limits on filing are checked against: the requester's requests, counted by PostgreSQL. */
export interface FilingCounts {
  open: number;
  openHere: number;
  openExtensionsHere: number;
  recent: number;
  lastDenial: Date | null;
  now: Date;
}

/**
 * What stops a flood of requests from wearing approvers down, checked inside the creating transaction
 * after the requester's row is locked (so two concurrent requests cannot both slip under a limit).
 * Times come from PostgreSQL. An extension is not a new open request: it is capped by its original.
 */
export async function assertMayRequest(
  manager: EntityManager,
  limits: Limits,
  actor: Actor,
  entitlementId: string,
  options: { extension: boolean },
): Promise<void> {
  await assertNotLockedOut(manager, actor.id, entitlementId);
  const counts = await filingCounts(manager, limits, actor.id, entitlementId);
  const refusal = checkFilingLimits(counts, limits, entitlementId, options);
  if (refusal) throw refusal;
}

/** Refuses a requester whom repeated denials locked out of the entitlement (until an admin unlocks). */
async function assertNotLockedOut(manager: EntityManager, userId: string, entitlementId: string) {
  const [lockout] = (await manager.query(
    `SELECT locked_at AS "lockedAt" FROM entitlement_lockouts
      WHERE user_id = $1 AND entitlement_id = $2 AND unlocked_at IS NULL`,
    [userId, entitlementId],
  )) as Array<{ lockedAt: Date }>;
  if (lockout) {
    throw new DomainError(
      ErrorCode.ENTITLEMENT_LOCKED,
      `Repeated denials locked you out of "${entitlementId}" on ${lockout.lockedAt.toISOString()}; an admin must unlock it`,
    );
  }
}

/** The requester's open, recent and recently denied requests, as the filing limits count them. */
async function filingCounts(
  manager: EntityManager,
  limits: Limits,
  requesterId: string,
  entitlementId: string,
): Promise<FilingCounts> {
  const [counts] = (await manager.query(
    `SELECT
       count(*) FILTER (WHERE state = ANY($5) AND extends_request_id IS NULL)::int AS "open",
       count(*) FILTER (WHERE state = ANY($5) AND extends_request_id IS NULL
                          AND entitlement_id = $2)::int AS "openHere",
       count(*) FILTER (WHERE state = ANY($5) AND extends_request_id IS NOT NULL
                          AND entitlement_id = $2)::int AS "openExtensionsHere",
       count(*) FILTER (WHERE created_at > now() - make_interval(secs => $3))::int AS "recent",
       max(decided_at) FILTER (WHERE state = $6 AND entitlement_id = $2
                                 AND decided_at > now() - make_interval(secs => $4)
                                 -- An admin's unlock also ends the cool-down of the denials before it.
                                 AND decided_at > coalesce((SELECT max(unlocked_at) FROM entitlement_lockouts
                                                             WHERE user_id = $1 AND entitlement_id = $2),
                                                           '-infinity')) AS "lastDenial",
       now() AS now
     FROM elevation_requests WHERE requester_id = $1`,
    [
      requesterId,
      entitlementId,
      limits.requestWindowSeconds,
      limits.denialCooldownSeconds,
      WAITING_STATES,
      RequestState.DENIED,
    ],
  )) as FilingCounts[];
  return counts;
}

/**
 * The filing limits, in order: the rate of new requests, the cool-down after a denial, then one open
 * extension per request, or the open requests per entitlement and in all. The refusal, or null.
 */
export function checkFilingLimits(
  counts: FilingCounts,
  limits: Limits,
  entitlementId: string,
  options: { extension: boolean },
): DomainError | null {
  if (counts.recent >= limits.requestLimit) {
    return new DomainError(
      ErrorCode.REQUEST_RATE_LIMITED,
      `You filed ${counts.recent} requests in the last ${limits.requestWindowSeconds} seconds; wait before filing more`,
      { limit: limits.requestLimit, windowSeconds: limits.requestWindowSeconds },
    );
  }
  if (counts.lastDenial) {
    const retryAfterSeconds = Math.ceil(
      (counts.lastDenial.getTime() + limits.denialCooldownSeconds * 1000 - counts.now.getTime()) / 1000,
    );
    return new DomainError(
      ErrorCode.DENIAL_COOLDOWN,
      `Your last request for "${entitlementId}" was denied; wait ${retryAfterSeconds} s before asking again`,
      { retryAfterSeconds },
    );
  }
  if (options.extension) {
    if (counts.openExtensionsHere === 0) return null;
    return new DomainError(ErrorCode.OPEN_REQUEST_EXISTS, 'An extension of this request is already open');
  }
  if (counts.openHere >= limits.maxOpenPerEntitlement) {
    return new DomainError(
      ErrorCode.OPEN_REQUEST_EXISTS,
      `You already have an open request for "${entitlementId}"; cancel it or wait for a decision`,
    );
  }
  if (counts.open >= limits.maxOpen) {
    return new DomainError(
      ErrorCode.TOO_MANY_OPEN_REQUESTS,
      `You already have ${counts.open} open requests (at most ${limits.maxOpen})`,
    );
  }
  return null;
}

/**
 * The rubber-stamp signal: the approver approves without having opened the request, or within
 * `rubberStampSeconds` of first opening it.
 */
export async function isRubberStamp(
  manager: EntityManager,
  limits: Limits,
  approval: { requestId: string; approverId: string; at: Date },
): Promise<boolean> {
  const [view] = (await manager.query(
    `SELECT first_viewed_at AS "firstViewedAt" FROM request_views WHERE request_id = $1 AND user_id = $2`,
    [approval.requestId, approval.approverId],
  )) as Array<{ firstViewedAt: Date }>;
  if (!view) return true;
  return approval.at.getTime() - view.firstViewedAt.getTime() < limits.rubberStampSeconds * 1000;
}

/**
 * After a denial: when the requester has collected `denialLockoutCount` denials for the entitlement within
 * the window, they are locked out of it until an admin unlocks (audited). Returns true when it locked.
 */
export async function lockOutAfterRepeatedDenials(
  manager: EntityManager,
  limits: Limits,
  requesterId: string,
  entitlementId: string,
  actorId: string,
): Promise<boolean> {
  const [{ denials }] = (await manager.query(
    `SELECT count(*)::int AS denials FROM elevation_requests
      WHERE requester_id = $1 AND entitlement_id = $2 AND state = $4
        AND decided_at > now() - make_interval(secs => $3)
        AND decided_at > coalesce((SELECT max(unlocked_at) FROM entitlement_lockouts
                                    WHERE user_id = $1 AND entitlement_id = $2), '-infinity')`,
    [requesterId, entitlementId, limits.denialLockoutWindowSeconds, RequestState.DENIED],
  )) as Array<{ denials: number }>;
  if (denials < limits.denialLockoutCount) return false;
  const [inserted] = (await manager.query(
    `INSERT INTO entitlement_lockouts (id, user_id, entitlement_id, locked_at, reason)
     VALUES ($1, $2, $3, now(), $4) ON CONFLICT DO NOTHING RETURNING id`,
    [
      uuidv7(),
      requesterId,
      entitlementId,
      `${denials} denials within ${limits.denialLockoutWindowSeconds} s`,
    ],
  )) as Array<{ id: string }>;
  if (!inserted) return false;
  await appendAuditEvent(manager, {
    actorId,
    action: AuditAction.EntitlementLocked,
    subjectType: 'user',
    subjectId: requesterId,
    data: { alert: true, entitlementId, denials, windowSeconds: limits.denialLockoutWindowSeconds },
  });
  return true;
}

/** Lifts a lockout (admin), audited; 404 when there is none. */
export async function unlockEntitlement(
  manager: EntityManager,
  admin: Actor,
  userId: string,
  entitlementId: string,
): Promise<void> {
  const [[row]] = (await manager.query(
    `UPDATE entitlement_lockouts SET unlocked_at = now(), unlocked_by = $3
      WHERE user_id = $1 AND entitlement_id = $2 AND unlocked_at IS NULL RETURNING id`,
    [userId, entitlementId, admin.id],
  )) as [Array<{ id: string }>, number];
  if (!row) throw new DomainError(ErrorCode.NOT_FOUND, `No lockout of that user from "${entitlementId}"`);
  await appendAuditEvent(manager, {
    actorId: admin.id,
    action: AuditAction.EntitlementUnlocked,
    subjectType: 'user',
    subjectId: userId,
    data: { entitlementId, lockoutId: row.id },
  });
}
