// Which audit events tell whom (issue 18), as plain data and pure functions: the worker reads the audit log
// (the outbox: every state change appends in its own transaction) and asks this file what each event means.
import type { Entitlement, Policy } from '../domain/policy.js';
import { membersOf } from '../domain/policy.js';

/** Every kind of message; a channel's `events:` in the policy lists some of these. */
export enum NotificationKind {
  RequestFiled = 'request.filed',
  RequestReminder = 'request.reminder',
  RequestDigest = 'request.digest',
  RequestApproved = 'request.approved',
  RequestDenied = 'request.denied',
  RequestActivated = 'request.activated',
  RequestEndingSoon = 'request.ending-soon',
  RequestEnded = 'request.ended',
  BreakGlassUsed = 'break-glass.used',
  BreakGlassReviewDue = 'break-glass.review-due',
  RevokeFailed = 'grant.revoke-failed',
  PasskeyAdded = 'passkey.added',
  PasskeyRemoved = 'passkey.removed',
  RecoveryUsed = 'recovery.used',
  UserSuspended = 'user.suspended',
}

/** Who hears of a kind: resolved against the users table and the policy in force. */
export type Audience = 'approvers' | 'requester' | 'admins' | 'break-glass-notify' | 'subject-user';

/** Security notices go out whatever a person's preferences say; approvals and outcomes respect them. */
export const ALWAYS_SENT: ReadonlySet<NotificationKind> = new Set([
  NotificationKind.BreakGlassUsed,
  NotificationKind.BreakGlassReviewDue,
  NotificationKind.RevokeFailed,
  NotificationKind.PasskeyAdded,
  NotificationKind.PasskeyRemoved,
  NotificationKind.RecoveryUsed,
  NotificationKind.UserSuspended,
]);

/** An audit event as the worker reads it (no hashes). */
export interface AuditRow {
  seq: string;
  actorId: string;
  action: string;
  subjectType: string;
  subjectId: string;
  requestId: string | null;
  data: Record<string, unknown>;
}

/** What one audit event asks for: a kind, its audiences, and the user it is about (if any). */
export interface Intent {
  kind: NotificationKind;
  audiences: Audience[];
  /** For `subject-user`: whose passkey, suspension or recovery. */
  subjectUserId: string | null;
  /** Free text safe to show (a decision's reason, a revocation error): never a credential. */
  detail: string | null;
}

function intent(kind: NotificationKind, audiences: Audience[], extra: Partial<Intent> = {}): Intent {
  return { kind, audiences, subjectUserId: null, detail: null, ...extra };
}

function text(value: unknown): string | null {
  return typeof value === 'string' && value.length > 0 ? value.slice(0, 500) : null;
}

/** Pure: the notifications an audit event calls for, none for most. */
export function intentsOf(event: AuditRow): Intent[] {
  const data = event.data;
  switch (event.action) {
    case 'request.created':
      // Break-glass and self-service need no approver: break-glass has its own event below.
      if (data.selfService === true || (data.subject as { breakGlass?: boolean })?.breakGlass) return [];
      return [intent(NotificationKind.RequestFiled, ['approvers'])];
    case 'request.approved':
      return data.selfService === true ? [] : [intent(NotificationKind.RequestApproved, ['requester'])];
    case 'request.denied':
      return [intent(NotificationKind.RequestDenied, ['requester'], { detail: text(data.reason) })];
    case 'request.activated':
      return [intent(NotificationKind.RequestActivated, ['requester'])];
    case 'request.ended':
    case 'request.revoked':
      return [intent(NotificationKind.RequestEnded, ['requester'], { detail: text(data.reason) })];
    case 'break-glass.activated':
      return [
        intent(NotificationKind.BreakGlassUsed, ['break-glass-notify', 'admins'], {
          detail: text(data.justification),
        }),
      ];
    case 'break-glass.review-overdue':
      return [intent(NotificationKind.BreakGlassReviewDue, ['break-glass-notify', 'admins'])];
    case 'grant.revoke_failed':
      return [intent(NotificationKind.RevokeFailed, ['admins'], { detail: text(data.error) })];
    case 'authenticator.registered':
      // The first passkey of an invite is the enrollment itself; a recovery is told by invite.used.
      if (data.enrolledVia !== 'step-up') return [];
      return [userIntent(NotificationKind.PasskeyAdded, data.userId)];
    case 'authenticator.removed':
      return [userIntent(NotificationKind.PasskeyRemoved, data.userId)];
    case 'authenticator.disabled':
      // By an admin (detail: their reason) or on a signature-counter regression (a possible clone).
      return [userIntent(NotificationKind.PasskeyRemoved, data.userId, text(data.detail))];
    case 'invite.used':
      return data.recovery === true ? [userIntent(NotificationKind.RecoveryUsed, event.subjectId)] : [];
    case 'user.suspended':
      return [userIntent(NotificationKind.UserSuspended, event.subjectId)];
    default:
      return [];
  }
}

function userIntent(kind: NotificationKind, userId: unknown, detail: string | null = null): Intent {
  return intent(kind, ['subject-user', 'admins'], {
    subjectUserId: typeof userId === 'string' ? userId : null,
    detail,
  });
}

/** Pure: usernames of an entitlement's approvers in `policy`, never the requester. */
export function approverUsernames(policy: Policy, entitlement: Entitlement, requester: string): string[] {
  const groups = entitlement.approval?.approverGroups ?? [];
  return uniqueSorted(groups.flatMap((group) => membersOf(policy, group))).filter(
    (username) => username !== requester,
  );
}

/** Pure: usernames a break-glass use of `entitlement` must reach at once (its notify groups). */
export function breakGlassUsernames(policy: Policy, entitlement: Entitlement, requester: string): string[] {
  const groups = [...(entitlement.breakGlass?.notify ?? []), ...(entitlement.approval?.approverGroups ?? [])];
  return uniqueSorted(groups.flatMap((group) => membersOf(policy, group))).filter(
    (username) => username !== requester,
  );
}

function uniqueSorted(items: string[]): string[] {
  return [...new Set(items)].sort();
}

/** Pure: whether a channel limited by `events` carries `kind` (no list: every kind). */
export function channelCarries(events: readonly string[] | undefined, kind: NotificationKind): boolean {
  return events === undefined || events.includes(kind);
}
