import { seesEverything, type Actor } from './actor.js';
import { DomainError, ErrorCode } from './errors.js';
import {
  DEFAULT_ACTIVATION_WINDOW_SECONDS,
  findEntitlement,
  isApprover,
  isEligible,
  membersOf,
  recoveryCooldownSeconds,
  type Entitlement,
  type Policy,
} from './policy.js';
import { Decision, RequestState } from './request-enums.js';
import { transition, type Transition } from './request-state.js';
import { checkUserPublicKey } from './ssh-public-key.js';

// The decision rules around a request, pure like request-state.ts: the caller gathers the facts (from
// PostgreSQL, on its clock) and acts on the answer. Refusals are returned, not thrown.

const MILLISECONDS = 1000;

function addSeconds(date: Date, seconds: number): Date {
  return new Date(date.getTime() + seconds * MILLISECONDS);
}

/** The facts about a stored request that visibility and review rules read. */
export interface RequestFacts {
  requesterId: string;
  entitlementId: string;
  breakGlass: boolean;
}

/** What a requester asks for (an extension names the ACTIVE request whose end it moves). */
export interface NewRequest {
  entitlementId: string;
  durationSeconds: number;
  justification: string;
  ticket?: string | null;
  notBefore?: Date | null;
  sshPublicKey?: string | null;
  /** An extension: the ACTIVE request whose end it moves (DESIGN §3 extendsRequestId). */
  extendsRequestId?: string | null;
}

/** The 404 for a request that does not exist or that the actor may not see (the two look the same). */
export function requestNotFound(id: string): DomainError {
  return new DomainError(ErrorCode.REQUEST_NOT_FOUND, `No request ${id}`);
}

// ---------------------------------------------------------------------------------------------------
// Quorum (DESIGN §4.3, issue 12's recovery cool-down)

/** One decision on a request, recorded or about to be, as quorum counting reads it. */
export interface Vote {
  approverId: string;
  username: string;
  decision: Decision;
  /** Whether the approver's account is active now. */
  active: boolean;
  at: Date;
  /** When the approver's recovery invites were used (a new passkey enrolled on the existing account). */
  recoveredAt: readonly Date[];
}

/** Why a vote does not count toward quorum. */
export type UncountedReason = 'not-an-approval' | 'inactive' | 'not-an-approver' | 'recovery-cooldown';

/**
 * Whether `at` falls in the cool-down after one of the recoveries: an admin who recovered an approver's
 * account (or whoever holds the link) cannot make quorum as them at once (issue 12).
 */
export function withinRecoveryCooldown(
  at: Date,
  recoveredAt: readonly Date[],
  cooldownSeconds: number,
): boolean {
  return recoveredAt.some(
    (recovery) =>
      recovery.getTime() <= at.getTime() &&
      at.getTime() < recovery.getTime() + cooldownSeconds * MILLISECONDS,
  );
}

/**
 * Null when the vote counts toward quorum, else why not. Quorum counts approvals by people who are active
 * approvers at decision time (DESIGN §4.3) and who were not within a recovery cool-down when they approved.
 */
export function whyNotCounted(
  vote: Vote,
  entitlement: Entitlement | undefined,
  policy: Policy,
): UncountedReason | null {
  if (vote.decision !== Decision.APPROVE) return 'not-an-approval';
  if (!vote.active) return 'inactive';
  if (!entitlement || !isApprover(policy, entitlement, vote.username)) return 'not-an-approver';
  if (withinRecoveryCooldown(vote.at, vote.recoveredAt, recoveryCooldownSeconds(policy)))
    return 'recovery-cooldown';
  return null;
}

/** How many of `approvals` count toward quorum under the policy in force. */
export function countQuorum(
  approvals: readonly Vote[],
  entitlement: Entitlement | undefined,
  policy: Policy,
): number {
  return approvals.filter((vote) => whyNotCounted(vote, entitlement, policy) === null).length;
}

/** The stored request as a decision reads it. */
export interface DecidedRequest {
  /** As stored (a RequestState value). */
  state: string;
  requesterId: string;
  entitlementId: string;
  approvalsRequired: number;
  pendingUntil: Date | null;
  notBefore: Date | null;
}

/** An accepted decision: the transition (the state may stay PENDING), and how the quorum stands after it. */
export interface DecisionOutcome {
  next: Transition;
  /** Approvals that count toward quorum, this one included if it counts. */
  approvals: number;
  /** Why this vote does not count toward quorum, null when it does. */
  uncounted: UncountedReason | null;
}

/**
 * Applies one approver's vote to a request under the policy in force (like Teleport's ApplyAccessReview):
 * who may decide, whether the vote counts, whether quorum is reached, and the activation deadline.
 */
export function applyDecision(
  request: DecidedRequest,
  vote: Vote,
  recorded: readonly Vote[],
  policy: Policy,
): DecisionOutcome | DomainError {
  const entitlement = findEntitlement(policy, request.entitlementId);
  const now = vote.at;
  const guards = {
    actorId: vote.approverId,
    requesterId: request.requesterId,
    actorIsApprover: entitlement !== undefined && isApprover(policy, entitlement, vote.username),
    actorAlreadyDecided: recorded.some((earlier) => earlier.approverId === vote.approverId),
    now,
    pendingUntil: request.pendingUntil,
  };
  const approvalsBefore = countQuorum(recorded, entitlement, policy);
  const uncounted = whyNotCounted(vote, entitlement, policy);
  const state = request.state as RequestState;
  const next =
    vote.decision === Decision.APPROVE
      ? transition(state, 'approve', {
          ...guards,
          approvalsBefore,
          approvalsRequired: request.approvalsRequired,
          actorCounts: uncounted === null,
          activateBy: activationDeadline(now, request.notBefore, activationWindowOf(entitlement)),
        })
      : transition(state, 'deny', guards);
  if (next instanceof DomainError) return next;
  return { next, approvals: approvalsBefore + (uncounted === null ? 1 : 0), uncounted };
}

// ---------------------------------------------------------------------------------------------------
// Who may see, decide on and review a request

/** The ids of the entitlements the actor approves under `policy`. */
export function approvableBy(policy: Policy, actor: Pick<Actor, 'username'>): string[] {
  return policy.entitlements
    .filter((entitlement) => isApprover(policy, entitlement, actor.username))
    .map((entitlement) => entitlement.id);
}

/** An admin, an auditor, or a member of a group the break-glass entitlement notifies. */
export function mayReview(
  actor: Actor,
  request: Pick<RequestFacts, 'entitlementId'>,
  policy: Policy,
): boolean {
  if (seesEverything(actor)) return true;
  const notified = findEntitlement(policy, request.entitlementId)?.breakGlass?.notify ?? [];
  return notified.some((group) => membersOf(policy, group).includes(actor.username));
}

/** The requester, an admin, an auditor, a current approver, or (break-glass) whoever may review it. */
export function canSee(actor: Actor, request: RequestFacts, policy: Policy): boolean {
  if (request.requesterId === actor.id) return true;
  if (seesEverything(actor)) return true;
  const entitlement = findEntitlement(policy, request.entitlementId);
  if (!entitlement) return false;
  if (isApprover(policy, entitlement, actor.username)) return true;
  return request.breakGlass && mayReview(actor, request, policy);
}

/** Null when the actor may post-review this request now, else the refusal. */
export function checkReview(
  actor: Actor,
  request: RequestFacts & { reviewedAt: Date | null },
  policy: Policy,
): DomainError | null {
  if (!request.breakGlass || request.reviewedAt) {
    return new DomainError(ErrorCode.REVIEW_NOT_PENDING, 'This request awaits no post-review');
  }
  if (!mayReview(actor, request, policy)) {
    return new DomainError(
      ErrorCode.FORBIDDEN,
      'Only a notified approver, an auditor or an admin can review',
    );
  }
  if (request.requesterId === actor.id) {
    return new DomainError(ErrorCode.SELF_APPROVAL, 'You cannot review your own break-glass access');
  }
  return null;
}

/** What a verified step-up confirmed: who, which action, on what, and (request-bound) the digest signed. */
export interface Confirmation {
  userId: string;
  action: string;
  subjectId: string;
  subjectDigest?: string | null;
}

/**
 * Null when the step-up was made by this actor, for this action, on this subject; and, when the call binds
 * to a stored request, on the request as it stands now (DESIGN §4.4). Else the refusal.
 */
export function checkConfirmation(evidence: Confirmation, expected: Confirmation): DomainError | null {
  const { userId, action, subjectId } = expected;
  if (evidence.userId !== userId || evidence.action !== action || evidence.subjectId !== subjectId) {
    return new DomainError(ErrorCode.STEP_UP_INVALID, 'The confirmation does not match this call');
  }
  if (expected.subjectDigest !== undefined && evidence.subjectDigest !== expected.subjectDigest) {
    return new DomainError(ErrorCode.STEP_UP_SUBJECT_CHANGED, 'The request changed after you confirmed it');
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------
// A new request

/**
 * The entitlement a new request is for, or why it may not be filed: the entitlement exists, the requester
 * is eligible, break-glass goes through its own door (starting now, justified), the duration,
 * justification and ticket meet the entitlement's requirements, and an ssh entitlement has a usable key.
 */
export function checkNewRequest(
  policy: Policy,
  actor: Pick<Actor, 'username' | 'workload'>,
  input: NewRequest,
  kind: { breakGlass: boolean },
): Entitlement | DomainError {
  const entitlement = findEntitlement(policy, input.entitlementId);
  if (!entitlement) {
    return new DomainError(ErrorCode.ENTITLEMENT_NOT_FOUND, `No entitlement "${input.entitlementId}"`);
  }
  if (actor.workload)
    return (
      checkWorkloadRequest(entitlement, actor.workload.id, input, kind) ??
      checkCredentialInput(policy, entitlement, input) ??
      entitlement
    );
  if (!isEligible(policy, entitlement, actor.username)) {
    return new DomainError(ErrorCode.NOT_ELIGIBLE, `You are not eligible for "${entitlement.id}"`);
  }
  const door = kind.breakGlass ? checkBreakGlassDoor(entitlement, input) : checkOrdinaryDoor(entitlement);
  return (
    door ??
    checkRequirements(entitlement, input) ??
    checkCredentialInput(policy, entitlement, input) ??
    entitlement
  );
}

/**
 * What the entitlement's connector needs from the requester, checked as the connector will check it at
 * activation, so approvers never spend a step-up on a request that cannot be activated: an ssh entitlement
 * needs a public key the CA will certify (type, size, encoding).
 */
function checkCredentialInput(
  policy: Policy,
  entitlement: Entitlement,
  input: NewRequest,
): DomainError | null {
  if (policy.connectors[entitlement.connector]?.type !== 'ssh') return null;
  return checkUserPublicKey(input.sshPublicKey);
}

/**
 * A workload (issue 21) may file an ordinary request for an entitlement that names it, within its own cap,
 * always with a task; never break-glass, and never an extension (it files a new request instead).
 */
function checkWorkloadRequest(
  entitlement: Entitlement,
  workloadId: string,
  input: NewRequest,
  kind: { breakGlass: boolean },
): DomainError | null {
  if (kind.breakGlass)
    return new DomainError(ErrorCode.WORKLOAD_FORBIDDEN, 'A workload can never use break-glass');
  if (!entitlement.eligibleWorkloads?.includes(workloadId))
    return new DomainError(
      ErrorCode.NOT_ELIGIBLE,
      `Workload "${workloadId}" is not eligible for "${entitlement.id}"`,
    );
  if (entitlement.breakGlass || entitlement.selfService || !entitlement.approval)
    return new DomainError(ErrorCode.NOT_ELIGIBLE, `"${entitlement.id}" needs no human approval`);
  if (input.extendsRequestId)
    return new DomainError(ErrorCode.VALIDATION_FAILED, 'A workload files a new request, not an extension');
  const cap = entitlement.workloadMaxDurationSeconds ?? entitlement.maxDurationSeconds;
  if (input.durationSeconds > cap)
    return new DomainError(
      ErrorCode.DURATION_TOO_LONG,
      `"${entitlement.id}" allows a workload at most ${cap} seconds`,
      { maxDurationSeconds: cap },
    );
  if (input.justification.trim().length === 0)
    return new DomainError(ErrorCode.JUSTIFICATION_REQUIRED, 'A workload must describe its task');
  return checkRequirements(entitlement, input);
}

function checkOrdinaryDoor(entitlement: Entitlement): DomainError | null {
  if (!entitlement.breakGlass) return null;
  return new DomainError(
    ErrorCode.STEP_UP_REQUIRED,
    `"${entitlement.id}" is break-glass: it activates at once with a "break-glass" step-up in the body`,
  );
}

function checkBreakGlassDoor(entitlement: Entitlement, input: NewRequest): DomainError | null {
  if (!entitlement.breakGlass) {
    return new DomainError(
      ErrorCode.VALIDATION_FAILED,
      `"${entitlement.id}" is not a break-glass entitlement`,
    );
  }
  if (input.notBefore || input.extendsRequestId) {
    return new DomainError(ErrorCode.VALIDATION_FAILED, 'Break-glass starts now and cannot extend a request');
  }
  if (!input.justification.trim()) {
    return new DomainError(ErrorCode.JUSTIFICATION_REQUIRED, 'Break-glass always needs a justification');
  }
  return null;
}

function checkRequirements(entitlement: Entitlement, input: NewRequest): DomainError | null {
  if (input.durationSeconds > entitlement.maxDurationSeconds) {
    return new DomainError(
      ErrorCode.DURATION_TOO_LONG,
      `"${entitlement.id}" allows at most ${entitlement.maxDurationSeconds} seconds`,
      { maxDurationSeconds: entitlement.maxDurationSeconds },
    );
  }
  if (entitlement.requires.justification && input.justification.trim().length === 0) {
    return new DomainError(ErrorCode.JUSTIFICATION_REQUIRED, 'A justification is required');
  }
  const pattern = entitlement.requires.ticketPattern;
  if (!pattern) return null;
  if (!input.ticket)
    return new DomainError(ErrorCode.TICKET_REQUIRED, `"${entitlement.id}" requires a ticket`);
  if (!new RegExp(pattern).test(input.ticket)) {
    return new DomainError(ErrorCode.TICKET_INVALID, `The ticket must match ${pattern}`, { pattern });
  }
  return null;
}

/** The request that an extension names, as the extension rules read it. */
export interface ExtendedRequest {
  id: string;
  requesterId: string;
  entitlementId: string;
  /** As stored (a RequestState value). */
  state: string;
  breakGlass: boolean;
  extendsRequestId: string | null;
  endsAt: Date | null;
}

/**
 * Checks on filing that need PostgreSQL's clock and, for an extension, its original (null when missing):
 * a scheduled start lies ahead; an extension moves the end of the requester's own active, ordinary,
 * not-itself-extended request for the same entitlement, and is not scheduled.
 */
export function checkFiling(
  actor: Pick<Actor, 'id'>,
  input: NewRequest,
  now: Date,
  original: ExtendedRequest | null,
): DomainError | null {
  if (input.notBefore && input.notBefore.getTime() <= now.getTime()) {
    return new DomainError(ErrorCode.VALIDATION_FAILED, 'notBefore must be in the future', [
      { field: 'notBefore', problems: ['must be in the future'] },
    ]);
  }
  if (!input.extendsRequestId) return null;
  if (!original || original.requesterId !== actor.id) return requestNotFound(input.extendsRequestId);
  if (original.state !== RequestState.ACTIVE || original.breakGlass || original.extendsRequestId) {
    return new DomainError(
      ErrorCode.NOT_EXTENDABLE,
      'Only an active, non-break-glass request that is not itself an extension can be extended',
    );
  }
  if (original.entitlementId !== input.entitlementId) {
    return new DomainError(ErrorCode.VALIDATION_FAILED, 'An extension is for the same entitlement');
  }
  if (input.notBefore)
    return new DomainError(ErrorCode.VALIDATION_FAILED, 'An extension cannot be scheduled');
  return null;
}

// ---------------------------------------------------------------------------------------------------
// Deadlines

/** How long an approved request may wait for activation under its entitlement. */
export function activationWindowOf(entitlement: Entitlement | undefined): number {
  return entitlement?.approval?.activationWindowSeconds ?? DEFAULT_ACTIVATION_WINDOW_SECONDS;
}

/**
 * When an approved request may no longer be activated: the window opens at its scheduled start if that is
 * still ahead, else now.
 */
export function activationDeadline(now: Date, notBefore: Date | null, windowSeconds: number): Date {
  const opens = notBefore && notBefore.getTime() > now.getTime() ? notBefore : now;
  return addSeconds(opens, windowSeconds);
}

/**
 * An extension's end: its original's end plus its own duration, so access continues without a gap, yet no
 * single credential lives longer than the entitlement's maxDuration from its activation (in whole seconds),
 * and never earlier than the extension's own end. Refused when the original is no longer active.
 */
export function extensionEnd(
  original: Pick<ExtendedRequest, 'state' | 'endsAt'> | null,
  extension: { durationSeconds: number; maxDurationSeconds: number },
  now: Date,
  ownEnd: Date,
): Date | DomainError {
  if (!original || original.state !== RequestState.ACTIVE || !original.endsAt || original.endsAt <= now) {
    return new DomainError(ErrorCode.NOT_EXTENDABLE, 'The request this extends is no longer active');
  }
  const continued = addSeconds(original.endsAt, extension.durationSeconds);
  const capMs = addSeconds(now, extension.maxDurationSeconds).getTime();
  const cap = new Date(Math.floor(capMs / MILLISECONDS) * MILLISECONDS);
  const end = continued < cap ? continued : cap;
  return end > ownEnd ? end : ownEnd;
}
