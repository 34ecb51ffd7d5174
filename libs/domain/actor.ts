/**
 * The roles a user may hold besides requesting and approving (which the policy's groups decide). A const
 * object rather than an enum: the users table and its entity hold the same values as plain string literals.
 */
export const Role = {
  ADMIN: 'admin',
  AUDITOR: 'auditor',
} as const;
export type Role = (typeof Role)[keyof typeof Role];

/** The authenticated person on whose behalf a service method runs. */
export interface Actor {
  id: string;
  username: string;
  displayName: string;
  roles: readonly Role[];
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
