import { isApprover, recoveryCooldownSeconds, type Entitlement, type Policy } from './policy.js';

/** One decision on a request, recorded or about to be, as quorum counting reads it. */
export interface QuorumVote {
  approverId: string;
  username: string;
  decision: 'approve' | 'deny';
  /** Whether the approver's account is active now. */
  active: boolean;
  at: Date;
}

/** When one of a user's recovery invites was used (a new passkey enrolled on an existing account). */
export interface Recovery {
  userId: string;
  at: Date;
}

/** What counting needs besides the votes: the policy in force now and the approvers' recoveries. */
export interface QuorumContext {
  policy: Policy;
  entitlement: Entitlement | undefined;
  recoveries: readonly Recovery[];
}

/** Why a vote does not count toward quorum. */
export type UncountedReason = 'not-an-approval' | 'inactive' | 'not-an-approver' | 'recovery-cooldown';

/**
 * Whether `at` falls in the cool-down after one of `userId`'s recoveries: an admin who recovered an
 * approver's account (or whoever holds the link) cannot make quorum as them at once (issue 12).
 */
export function withinRecoveryCooldown(
  userId: string,
  at: Date,
  recoveries: readonly Recovery[],
  cooldownSeconds: number,
): boolean {
  return recoveries.some(
    (recovery) =>
      recovery.userId === userId &&
      recovery.at.getTime() <= at.getTime() &&
      at.getTime() < recovery.at.getTime() + cooldownSeconds * 1000,
  );
}

/**
 * Null when the vote counts toward quorum, else why not. Quorum counts approvals by people who are active
 * approvers at decision time (DESIGN §4.3) and who were not within a recovery cool-down when they approved.
 */
export function whyNotCounted(vote: QuorumVote, context: QuorumContext): UncountedReason | null {
  const { policy, entitlement, recoveries } = context;
  if (vote.decision !== 'approve') return 'not-an-approval';
  if (!vote.active) return 'inactive';
  if (!entitlement || !isApprover(policy, entitlement, vote.username)) return 'not-an-approver';
  if (withinRecoveryCooldown(vote.approverId, vote.at, recoveries, recoveryCooldownSeconds(policy)))
    return 'recovery-cooldown';
  return null;
}

/** How many of `votes` count toward quorum. */
export function countedApprovals(votes: readonly QuorumVote[], context: QuorumContext): number {
  return votes.filter((vote) => whyNotCounted(vote, context) === null).length;
}
