/** Where an elevation request is in its life (DESIGN.md §3). */
export enum RequestState {
  PENDING = 'PENDING',
  APPROVED = 'APPROVED',
  DENIED = 'DENIED',
  ACTIVE = 'ACTIVE',
  ENDED = 'ENDED',
  REVOKED = 'REVOKED',
  CANCELLED = 'CANCELLED',
  EXPIRED = 'EXPIRED',
}

/** States a request never leaves; every event on them is refused with REQUEST_FINISHED. */
export const TERMINAL_STATES: ReadonlySet<RequestState> = new Set([
  RequestState.DENIED,
  RequestState.ENDED,
  RequestState.REVOKED,
  RequestState.CANCELLED,
  RequestState.EXPIRED,
]);

/** States in which a request holds or awaits access (and counts against the requester's limits). */
export const OPEN_STATES: readonly RequestState[] = [
  RequestState.PENDING,
  RequestState.APPROVED,
  RequestState.ACTIVE,
];

/** Open states before activation: the request may still be cancelled, or expire. */
export const WAITING_STATES: readonly RequestState[] = [RequestState.PENDING, RequestState.APPROVED];

/**
 * An approver's decision. A const object rather than an enum: the approvals entity holds the same values as
 * plain string literals.
 */
export const Decision = {
  APPROVE: 'approve',
  DENY: 'deny',
} as const;
export type Decision = (typeof Decision)[keyof typeof Decision];

/** Why a request left the open states (the `end_reason` column). */
export enum EndReason {
  DENIED = 'denied',
  CANCELLED = 'cancelled',
  /** Cancelled because the requester was suspended. */
  SUSPENDED = 'suspended',
  PENDING_TTL = 'pending-ttl',
  ACTIVATION_WINDOW = 'activation-window',
  /** An active request that reached its notAfter. */
  EXPIRED = 'expired',
  REVOKED = 'revoked',
}
