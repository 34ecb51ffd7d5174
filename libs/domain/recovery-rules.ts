import { ErrorCode } from './errors.js';
import { isApprover, isEligible, type Policy } from './policy.js';

// Who one admin must not be able to enroll a passkey for alone, and who may be the second admin (issue 12).
// Pure: the caller loads the facts from PostgreSQL and turns a refusal into a DomainError.

/** An invited user as the rules see them: the roles they hold (or, for a new user, are asked for). */
export interface InvitedUser {
  username: string;
  roles: readonly string[];
}

/** Why a user's identity alone yields access without another person's approval. */
export type PrivilegeReason = 'admin' | 'approver' | 'break-glass' | 'self-service';

/** What makes `user` privileged under `policy`, in a fixed order; empty for a plain requester. */
export function privilegeReasons(user: InvitedUser, policy: Policy): PrivilegeReason[] {
  const reasons: PrivilegeReason[] = [];
  if (user.roles.includes('admin')) reasons.push('admin');
  const entitlements = policy.entitlements;
  if (entitlements.some((entitlement) => isApprover(policy, entitlement, user.username)))
    reasons.push('approver');
  const eligibleFor = entitlements.filter((entitlement) => isEligible(policy, entitlement, user.username));
  if (eligibleFor.some((entitlement) => entitlement.breakGlass)) reasons.push('break-glass');
  if (eligibleFor.some((entitlement) => entitlement.selfService)) reasons.push('self-service');
  return reasons;
}

/**
 * Whether enrolling a passkey for `user` needs a second admin: an admin, an approver of anything, or a
 * requester of any break-glass or self-service entitlement, since whoever holds their passkey gets access
 * (or approves others) without anyone else's approval.
 */
export function recoveryNeedsSecondAdmin(user: InvitedUser, policy: Policy): boolean {
  return privilegeReasons(user, policy).length > 0;
}

/** An invite the account of an admin was enrolled or recovered from: who created and who approved it. */
export interface EnrolledFrom {
  createdBy: string;
  approvedBy: string | null;
}

/**
 * Whether an admin is independent of `creatorId`: none of the invites their account used was created or
 * approved by the creator. Else the creator may have held that link, and the admin may be their sock puppet.
 */
export function isIndependentOf(creatorId: string, enrolledFrom: readonly EnrolledFrom[]): boolean {
  return !enrolledFrom.some((invite) => invite.createdBy === creatorId || invite.approvedBy === creatorId);
}

/**
 * Whether some admin other than the creator (each given with the invites their account used) could ever be
 * the second admin of the creator's invite. The caller passes active admins holding a usable passkey; one
 * still within the cool-down counts, since waiting for it ends.
 */
export function anotherAdminCanApprove(
  creatorId: string,
  admins: ReadonlyArray<{ id: string; enrolledFrom: readonly EnrolledFrom[] }>,
): boolean {
  return admins.some((admin) => admin.id !== creatorId && isIndependentOf(creatorId, admin.enrolledFrom));
}

/** What the second-admin rule needs to know about one approval attempt. */
export interface SecondAdminFacts {
  approverId: string;
  invite: { createdBy: string; userId: string };
  /** When the approver's first passkey was registered; null when they hold none. */
  approverFirstPasskeyAt: Date | null;
  /** When the approver's account last used a recovery invite; null when never. */
  approverLastRecoveredAt: Date | null;
  /** Every invite the approver's account used. */
  approverEnrolledFrom: readonly EnrolledFrom[];
  now: Date;
  recoveryCooldownSeconds: number;
}

/** Why an admin may not be the second admin of an invite; a 403 code and the text shown to them. */
export interface SecondAdminRefusal {
  code:
    | ErrorCode.INVITE_SELF_APPROVAL
    | ErrorCode.INVITE_APPROVER_NOT_INDEPENDENT
    | ErrorCode.SECOND_ADMIN_TOO_RECENT;
  message: string;
}

/**
 * Null when `approverId` may approve the invite; else why not. Never the creator or the invited user; never
 * an admin enrolled from the creator's invites; never one whose first passkey or last recovery is within
 * the cool-down (one admin could otherwise invite a fresh admin account, enroll it and approve with it).
 */
export function secondAdminRefusal(facts: SecondAdminFacts): SecondAdminRefusal | null {
  const { approverId, invite } = facts;
  if (invite.userId === approverId) {
    return {
      code: ErrorCode.INVITE_SELF_APPROVAL,
      message: 'You cannot approve the recovery of your own account: another admin must',
    };
  }
  if (invite.createdBy === approverId) {
    return {
      code: ErrorCode.INVITE_SELF_APPROVAL,
      message: 'You created this invite: a different admin must approve it',
    };
  }
  if (!isIndependentOf(invite.createdBy, facts.approverEnrolledFrom)) {
    return {
      code: ErrorCode.INVITE_APPROVER_NOT_INDEPENDENT,
      message:
        "Your account was enrolled from an invite this invite's creator created or approved: an admin " +
        'independent of them must approve it',
    };
  }
  const cooldownStart = facts.now.getTime() - facts.recoveryCooldownSeconds * 1000;
  const firstPasskeyAt = facts.approverFirstPasskeyAt ?? facts.now;
  const recoveredAt = facts.approverLastRecoveredAt;
  if (firstPasskeyAt.getTime() > cooldownStart || (recoveredAt && recoveredAt.getTime() > cooldownStart)) {
    return {
      code: ErrorCode.SECOND_ADMIN_TOO_RECENT,
      message:
        'Your account got its first passkey, or was recovered, within the recovery cool-down: another admin must approve',
    };
  }
  return null;
}

/**
 * Whether a passkey may be removed now. Within the recovery cool-down after the account's last recovery, a
 * passkey registered before it stays: else whoever held the recovery link could remove the owner's passkey
 * and with it the only place the owner would read the recovery notice.
 */
export function passkeyRemovalAllowed(facts: {
  passkeyCreatedAt: Date;
  lastRecoveredAt: Date | null;
  now: Date;
  recoveryCooldownSeconds: number;
}): boolean {
  const { lastRecoveredAt } = facts;
  if (!lastRecoveredAt) return true;
  const withinCooldown =
    facts.now.getTime() - lastRecoveredAt.getTime() < facts.recoveryCooldownSeconds * 1000;
  return !(withinCooldown && facts.passkeyCreatedAt.getTime() < lastRecoveredAt.getTime());
}
