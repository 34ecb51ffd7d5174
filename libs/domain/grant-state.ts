/**
 * Where an issued credential is in its life. A const object rather than an enum: the grants entity and its
 * SQL hold the same values as plain string literals.
 *
 * ACTIVE until its revocation is due (an early revoke, or notAfter); REVOKING from then until the connector
 * confirms; REVOKED once it has (revokedAt is that moment); REVOKE_FAILED once a revocation job ran out of
 * attempts (an alert), still retried by every sweep until the connector confirms.
 */
export const GrantState = {
  ACTIVE: 'ACTIVE',
  REVOKING: 'REVOKING',
  REVOKED: 'REVOKED',
  REVOKE_FAILED: 'REVOKE_FAILED',
} as const;
export type GrantState = (typeof GrantState)[keyof typeof GrantState];

/** Characters of a connector's error kept on the grant. */
export const LAST_ERROR_MAX_LENGTH = 2000;

/** What a failed revocation attempt changes on its grant. */
export interface FailedRevocation {
  state: GrantState;
  revokeAttempts: number;
  lastError: string;
  nextRetryAt: Date | null;
  /** This attempt was the last of its job and turned the grant REVOKE_FAILED: raise the alert once. */
  alert: boolean;
}

/**
 * Pure: one more failed attempt. `nextRetryAt` is when the job tries again, null after its last attempt:
 * the grant becomes REVOKE_FAILED (once, with an alert) and the sweep takes it over; a REVOKE_FAILED grant
 * stays so until the connector confirms.
 */
export function failedRevocation(
  grant: { state: GrantState; revokeAttempts: number },
  message: string,
  nextRetryAt: Date | null,
): FailedRevocation {
  const failed = grant.state === GrantState.REVOKE_FAILED || nextRetryAt === null;
  return {
    state: failed ? GrantState.REVOKE_FAILED : GrantState.REVOKING,
    revokeAttempts: grant.revokeAttempts + 1,
    lastError: message.slice(0, LAST_ERROR_MAX_LENGTH),
    nextRetryAt,
    alert: failed && grant.state !== GrantState.REVOKE_FAILED,
  };
}

// The failures a webhook connector words itself (WebhookConnector.failure): the connector's policy name, what
// happened, no host, class name or stack. Anything else may carry internals and is shown as GENERIC_FAILURE.
const WORDED_FAILURE =
  /^Webhook "[^"\n]{1,100}" (answered [0-9]{3}|did not answer within [0-9]{1,9} ms|could not be reached) to (mint|revoke)$/;
const GENERIC_FAILURE = 'The connector did not confirm the revocation (details in the broker logs)';

/**
 * Pure: the last error of a grant as a request's view shows it: a connector failure the broker worded itself,
 * or a fixed sentence; the raw text stays in the grant row, the logs and the admin's revocation list.
 */
export function publicRevokeError(lastError: string | null): string | null {
  if (lastError === null) return null;
  return WORDED_FAILURE.test(lastError) ? lastError : GENERIC_FAILURE;
}
