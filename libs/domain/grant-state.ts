/**
 * Where an issued credential is in its life. A const object rather than an enum: the grants entity and its
 * SQL hold the same values as plain string literals.
 */
export const GrantState = {
  ACTIVE: 'ACTIVE',
  REVOKED: 'REVOKED',
  REVOKE_FAILED: 'REVOKE_FAILED',
} as const;
export type GrantState = (typeof GrantState)[keyof typeof GrantState];
