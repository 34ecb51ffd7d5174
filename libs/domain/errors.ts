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
  // 403
  FORBIDDEN = 'FORBIDDEN',
  NOT_ELIGIBLE = 'NOT_ELIGIBLE',
  SELF_APPROVAL = 'SELF_APPROVAL',
  NOT_AN_APPROVER = 'NOT_AN_APPROVER',
  NOT_REQUESTER = 'NOT_REQUESTER',
  // 404
  NOT_FOUND = 'NOT_FOUND',
  ENTITLEMENT_NOT_FOUND = 'ENTITLEMENT_NOT_FOUND',
  REQUEST_NOT_FOUND = 'REQUEST_NOT_FOUND',
  // 409: the request is not in a state that allows this
  ALREADY_DECIDED = 'ALREADY_DECIDED',
  REQUEST_NOT_PENDING = 'REQUEST_NOT_PENDING',
  REQUEST_NOT_APPROVED = 'REQUEST_NOT_APPROVED',
  REQUEST_NOT_ACTIVE = 'REQUEST_NOT_ACTIVE',
  REQUEST_FINISHED = 'REQUEST_FINISHED',
  NOT_YET_STARTED = 'NOT_YET_STARTED',
  ACTIVATION_WINDOW_PASSED = 'ACTIVATION_WINDOW_PASSED',
  NOT_YET_DUE = 'NOT_YET_DUE',
  REQUEST_EXPIRED = 'REQUEST_EXPIRED',
  // 422: well-formed but refused by policy
  DURATION_TOO_LONG = 'DURATION_TOO_LONG',
  JUSTIFICATION_REQUIRED = 'JUSTIFICATION_REQUIRED',
  TICKET_REQUIRED = 'TICKET_REQUIRED',
  TICKET_INVALID = 'TICKET_INVALID',
  POLICY_INVALID = 'POLICY_INVALID',
  // 429
  RATE_LIMITED = 'RATE_LIMITED',
  // 501: a feature the policy may name but this version does not provide
  NOT_SUPPORTED = 'NOT_SUPPORTED',
  // 5xx: never for client input
  CONNECTOR_FAILED = 'CONNECTOR_FAILED',
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
