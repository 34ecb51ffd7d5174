import type { EntityManager } from 'typeorm';
import { AuditAction, type AuditPayloads, type WorkloadAudit } from '../audit/audit-actions.js';
import { appendAuditEvent, SYSTEM_ACTOR } from '../audit/audit-log.js';
import type { ElevationRequestEntity } from '../db/index.js';
import type { Actor } from '../domain/actor.js';
import { Decision } from '../domain/request-state.js';
import type { UncountedReason } from '../domain/request-rules.js';
import { evidenceForAudit, type StepUpEvidence } from '../webauthn/evidence.js';
import { requestSubject } from '../webauthn/step-up-binding.js';
import type { RequestRow } from './request-store.js';

// What each event about a request records, in one place (the evidence an offline verifier reads).
// Imported as a namespace: `audit.created(…)`, `audit.revoked(…)`.

/** Appends an event about a request (subject and request id both the request). */
export async function event<A extends AuditAction>(
  manager: EntityManager,
  actorId: string,
  action: A,
  requestId: string,
  data: AuditPayloads[A],
): Promise<void> {
  await appendAuditEvent(manager, {
    actorId,
    action,
    subjectType: 'request',
    subjectId: requestId,
    requestId,
    data,
  });
}

/** `{ workload }` for an event a workload causes (issue 21), `{}` for a person's. */
export function workloadFacts(actor: Pick<Actor, 'workload'>): Partial<WorkloadAudit> {
  if (!actor.workload) return {};
  const { id, issuer, subject, jti } = actor.workload;
  return { workload: { id, issuer, subject, jti } };
}

/** request.created, with the immutable fields every step-up on the request commits to. */
export async function created(
  manager: EntityManager,
  actor: Actor,
  request: ElevationRequestEntity,
  row: RequestRow,
  selfService: boolean,
): Promise<void> {
  await event(manager, actor.id, AuditAction.RequestCreated, row.id, {
    // The immutable fields every step-up on this request commits to (DESIGN §5), for offline checks.
    subject: requestSubject(request),
    requester: actor.username,
    entitlementId: row.entitlementId,
    policyHash: row.policyHash,
    scope: row.scope,
    durationSeconds: row.durationSeconds,
    justification: row.justification,
    ticket: row.ticket,
    notBefore: row.notBefore?.toISOString() ?? null,
    approvalsRequired: row.approvalsRequired,
    breakGlass: row.breakGlass,
    selfService,
    extendsRequestId: row.extendsRequestId,
    sshPublicKey: row.sshPublicKey,
    ...workloadFacts(actor),
  });
}

/** break-glass.activated: an alert naming who to notify. */
export async function breakGlassActivated(
  manager: EntityManager,
  actor: Actor,
  request: ElevationRequestEntity,
  notify: { groups: string[]; users: string[] },
  evidence: StepUpEvidence,
): Promise<void> {
  await event(manager, actor.id, AuditAction.BreakGlassActivated, request.id, {
    alert: true,
    entitlementId: request.entitlementId,
    justification: request.justification,
    notifyGroups: notify.groups,
    notifyUsers: notify.users,
    reviewDueAt: request.reviewDueAt!.toISOString(),
    evidence: evidenceForAudit(evidence),
  });
}

/** approval.recorded: one approver's decision, how it counts, and the signals around it. */
export async function approvalRecorded(
  manager: EntityManager,
  actor: Actor,
  request: ElevationRequestEntity,
  vote: {
    decision: Decision;
    comment: string | null;
    approvals: number;
    uncounted: UncountedReason | null;
    rubberStamp: boolean;
  },
  evidence: StepUpEvidence,
): Promise<void> {
  await event(manager, actor.id, AuditAction.ApprovalRecorded, request.id, {
    approver: actor.username,
    decision: vote.decision,
    comment: vote.comment,
    approvals: vote.approvals,
    approvalsRequired: request.approvalsRequired,
    ...(vote.decision === Decision.APPROVE ? { rubberStamp: vote.rubberStamp } : {}),
    // Recorded, but not toward quorum: the approver's account was recovered too recently.
    ...(vote.uncounted === 'recovery-cooldown' ? { recoveryCooldown: true, alert: true } : {}),
    evidence: evidenceForAudit(evidence),
  });
}

/**
 * request.activated: the window the credential runs for, and who proved it: a person's step-up, or (null
 * evidence) the workload whose token activated it.
 */
export async function activated(
  manager: EntityManager,
  actor: Actor,
  request: ElevationRequestEntity,
  evidence: StepUpEvidence | null,
): Promise<void> {
  const proof = evidence ? { evidence: evidenceForAudit(evidence) } : workloadFacts(actor);
  if (!('evidence' in proof) && !('workload' in proof))
    throw new Error('An activation needs a step-up or a workload');
  await event(manager, actor.id, AuditAction.RequestActivated, request.id, {
    activatedAt: request.activatedAt!.toISOString(),
    notAfter: request.endsAt!.toISOString(),
    ...(request.extendsRequestId ? { extendsRequestId: request.extendsRequestId } : {}),
    ...(proof as Required<WorkloadAudit> | { evidence: ReturnType<typeof evidenceForAudit> }),
  });
}

/** request.revoked: why, and which grants are now due. */
export async function revoked(
  manager: EntityManager,
  actorId: string,
  request: ElevationRequestEntity,
  revocation: { reason: string; grantIds: string[]; evidence: StepUpEvidence | null },
): Promise<void> {
  await event(manager, actorId, AuditAction.RequestRevoked, request.id, {
    reason: revocation.reason,
    grantIds: revocation.grantIds,
    ...(revocation.evidence ? { evidence: evidenceForAudit(revocation.evidence) } : {}),
  });
}

/** request.window-opened: the activation window of a scheduled request opened (at notBefore). */
export async function windowOpened(manager: EntityManager, request: ElevationRequestEntity): Promise<void> {
  await event(manager, SYSTEM_ACTOR, AuditAction.RequestWindowOpened, request.id, {
    notBefore: request.notBefore!.toISOString(),
    activateBy: request.activateBy?.toISOString() ?? null,
  });
}

/** break-glass.reviewed: the post-review's comment, and whether it came after its due time. */
export async function reviewed(
  manager: EntityManager,
  actor: Actor,
  request: ElevationRequestEntity,
  comment: string,
): Promise<void> {
  const dueAt = request.reviewDueAt;
  await event(manager, actor.id, AuditAction.BreakGlassReviewed, request.id, {
    comment,
    reviewDueAt: dueAt?.toISOString() ?? null,
    late: dueAt !== null && request.reviewedAt! > dueAt,
  });
}
