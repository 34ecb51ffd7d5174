/**
 * The roles a user may hold besides requesting and approving (which the policy's groups decide). A const
 * object rather than an enum: the users table and its entity hold the same values as plain string literals.
 */
export const Role = {
  ADMIN: 'admin',
  AUDITOR: 'auditor',
} as const;
export type Role = (typeof Role)[keyof typeof Role];

/** What a workload's OIDC token proved on this call (issue 21). */
export interface WorkloadIdentity {
  /** The policy's workload id; the actor's username is `workload:<id>`. */
  id: string;
  issuer: string;
  subject: string;
  /** The token's `jti`, null when the issuer sets none. */
  jti: string | null;
  ownerGroup: string;
}

/**
 * The authenticated person, or workload, on whose behalf a service method runs. A workload has no roles, is
 * in no group, and reaches only the routes marked for workloads (WorkloadGuard).
 */
export interface Actor {
  id: string;
  username: string;
  displayName: string;
  roles: readonly Role[];
  /** Present exactly when the caller is a workload. */
  workload?: WorkloadIdentity;
}

/** Admins and auditors see every request. */
export function seesEverything(actor: Pick<Actor, 'roles'>): boolean {
  return actor.roles.includes(Role.ADMIN) || actor.roles.includes(Role.AUDITOR);
}

/** Whether the actor holds the admin role. */
export function isAdmin(actor: Pick<Actor, 'roles'>): boolean {
  return actor.roles.includes(Role.ADMIN);
}

/** Whether an account may act; a suspended one cannot sign in, request or count toward quorum. */
export const UserStatus = {
  ACTIVE: 'active',
  SUSPENDED: 'suspended',
} as const;
export type UserStatus = (typeof UserStatus)[keyof typeof UserStatus];
