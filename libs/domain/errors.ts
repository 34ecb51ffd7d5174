/** Every failure the broker reports to a client has one of these codes; the HTTP layer maps them to statuses. */
export enum ErrorCode {
  // 400: malformed input
  VALIDATION_FAILED = 'VALIDATION_FAILED',
  INVALID_ID = 'INVALID_ID',
  // 401
  UNAUTHENTICATED = 'UNAUTHENTICATED',
  STEP_UP_REQUIRED = 'STEP_UP_REQUIRED',
  STEP_UP_INVALID = 'STEP_UP_INVALID',
  INVALID_CLIENT = 'INVALID_CLIENT',
  SESSION_EXPIRED = 'SESSION_EXPIRED',
  /** A workload's bearer token that does not verify, or matches no workload in the policy (issue 21). */
  WORKLOAD_TOKEN_INVALID = 'WORKLOAD_TOKEN_INVALID',
  // 401: a WebAuthn ceremony or step-up that does not hold; each way has its own code (and an audit event)
  WEBAUTHN_MALFORMED = 'WEBAUTHN_MALFORMED',
  CEREMONY_EXPIRED = 'CEREMONY_EXPIRED',
  CHALLENGE_MISMATCH = 'CHALLENGE_MISMATCH',
  ORIGIN_MISMATCH = 'ORIGIN_MISMATCH',
  RP_ID_MISMATCH = 'RP_ID_MISMATCH',
  USER_PRESENCE_REQUIRED = 'USER_PRESENCE_REQUIRED',
  USER_VERIFICATION_REQUIRED = 'USER_VERIFICATION_REQUIRED',
  SIGNATURE_INVALID = 'SIGNATURE_INVALID',
  ATTESTATION_INVALID = 'ATTESTATION_INVALID',
  UNKNOWN_CREDENTIAL = 'UNKNOWN_CREDENTIAL',
  CREDENTIAL_NOT_YOURS = 'CREDENTIAL_NOT_YOURS',
  AUTHENTICATOR_DISABLED = 'AUTHENTICATOR_DISABLED',
  SIGN_COUNT_REGRESSION = 'SIGN_COUNT_REGRESSION',
  STEP_UP_EXPIRED = 'STEP_UP_EXPIRED',
  STEP_UP_REPLAYED = 'STEP_UP_REPLAYED',
  STEP_UP_ACTION_MISMATCH = 'STEP_UP_ACTION_MISMATCH',
  STEP_UP_SUBJECT_MISMATCH = 'STEP_UP_SUBJECT_MISMATCH',
  STEP_UP_SUBJECT_CHANGED = 'STEP_UP_SUBJECT_CHANGED',
  // 403
  FORBIDDEN = 'FORBIDDEN',
  /** A workload calling a route that is not one of its own: it can never approve, deny or break glass. */
  WORKLOAD_FORBIDDEN = 'WORKLOAD_FORBIDDEN',
  NOT_ELIGIBLE = 'NOT_ELIGIBLE',
  SELF_APPROVAL = 'SELF_APPROVAL',
  NOT_AN_APPROVER = 'NOT_AN_APPROVER',
  NOT_REQUESTER = 'NOT_REQUESTER',
  ORIGIN_NOT_ALLOWED = 'ORIGIN_NOT_ALLOWED',
  AUTHENTICATOR_NOT_ALLOWED = 'AUTHENTICATOR_NOT_ALLOWED',
  /** An admin approving a recovery invite they created, or their own recovery. */
  INVITE_SELF_APPROVAL = 'INVITE_SELF_APPROVAL',
  /** A second admin whose own passkey or recovery is younger than the recovery cool-down. */
  SECOND_ADMIN_TOO_RECENT = 'SECOND_ADMIN_TOO_RECENT',
  /** A second admin whose own account was enrolled from an invite the creator created or approved. */
  INVITE_APPROVER_NOT_INDEPENDENT = 'INVITE_APPROVER_NOT_INDEPENDENT',
  // 404
  NOT_FOUND = 'NOT_FOUND',
  ENTITLEMENT_NOT_FOUND = 'ENTITLEMENT_NOT_FOUND',
  REQUEST_NOT_FOUND = 'REQUEST_NOT_FOUND',
  INVITE_NOT_FOUND = 'INVITE_NOT_FOUND',
  USER_NOT_FOUND = 'USER_NOT_FOUND',
  AUTHENTICATOR_NOT_FOUND = 'AUTHENTICATOR_NOT_FOUND',
  SESSION_NOT_FOUND = 'SESSION_NOT_FOUND',
  // 409: the request is not in a state that allows this
  ALREADY_DECIDED = 'ALREADY_DECIDED',
  REQUEST_NOT_PENDING = 'REQUEST_NOT_PENDING',
  GRANT_ALREADY_REVOKED = 'GRANT_ALREADY_REVOKED',
  REQUEST_NOT_APPROVED = 'REQUEST_NOT_APPROVED',
  REQUEST_NOT_ACTIVE = 'REQUEST_NOT_ACTIVE',
  REQUEST_FINISHED = 'REQUEST_FINISHED',
  NOT_YET_STARTED = 'NOT_YET_STARTED',
  ACTIVATION_WINDOW_PASSED = 'ACTIVATION_WINDOW_PASSED',
  NOT_YET_DUE = 'NOT_YET_DUE',
  REQUEST_EXPIRED = 'REQUEST_EXPIRED',
  LAST_AUTHENTICATOR = 'LAST_AUTHENTICATOR',
  AUTHENTICATOR_ALREADY_DISABLED = 'AUTHENTICATOR_ALREADY_DISABLED',
  OPEN_REQUEST_EXISTS = 'OPEN_REQUEST_EXISTS',
  TOO_MANY_OPEN_REQUESTS = 'TOO_MANY_OPEN_REQUESTS',
  ENTITLEMENT_LOCKED = 'ENTITLEMENT_LOCKED',
  NOT_EXTENDABLE = 'NOT_EXTENDABLE',
  REVIEW_NOT_PENDING = 'REVIEW_NOT_PENDING',
  USER_SUSPENDED = 'USER_SUSPENDED',
  ROLES_MISMATCH = 'ROLES_MISMATCH',
  /** An assertion signed before a newer one of the same passkey was accepted: a race between tabs, not a clone. */
  SIGN_COUNT_STALE = 'SIGN_COUNT_STALE',
  /** A recovery invite for an admin or approver that a second admin has not approved yet. */
  RECOVERY_NEEDS_SECOND_ADMIN = 'RECOVERY_NEEDS_SECOND_ADMIN',
  INVITE_NOT_PENDING = 'INVITE_NOT_PENDING',
  /** Removing a passkey older than a recovery within the recovery cool-down (it would hide the notice). */
  PASSKEY_KEPT_AFTER_RECOVERY = 'PASSKEY_KEPT_AFTER_RECOVERY',
  // 410: a one-time invite that can no longer be used
  INVITE_USED = 'INVITE_USED',
  INVITE_EXPIRED = 'INVITE_EXPIRED',
  // 422: well-formed but refused by policy
  DURATION_TOO_LONG = 'DURATION_TOO_LONG',
  JUSTIFICATION_REQUIRED = 'JUSTIFICATION_REQUIRED',
  TICKET_REQUIRED = 'TICKET_REQUIRED',
  TICKET_INVALID = 'TICKET_INVALID',
  POLICY_INVALID = 'POLICY_INVALID',
  // 429
  RATE_LIMITED = 'RATE_LIMITED',
  STEP_UP_LOCKED = 'STEP_UP_LOCKED',
  REQUEST_RATE_LIMITED = 'REQUEST_RATE_LIMITED',
  DENIAL_COOLDOWN = 'DENIAL_COOLDOWN',
  /** One person holds SSE_MAX_STREAMS_PER_USER live-update streams on this broker already. */
  LIVE_STREAMS_PER_USER = 'LIVE_STREAMS_PER_USER',
  /** This broker holds SSE_MAX_STREAMS live-update streams already. */
  LIVE_STREAMS_FULL = 'LIVE_STREAMS_FULL',
  // 501: a feature the policy may name but this version does not provide
  NOT_SUPPORTED = 'NOT_SUPPORTED',
  // 5xx: never for client input
  CONNECTOR_FAILED = 'CONNECTOR_FAILED',
  /** PostgreSQL or Redis cannot be reached: try again later (503, never a 500). */
  SERVICE_UNAVAILABLE = 'SERVICE_UNAVAILABLE',
  INTERNAL = 'INTERNAL',
}

/** The one error type of the domain: a stable code, a human message, optional structured details. */
export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'DomainError';
  }
}
