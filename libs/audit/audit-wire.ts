// The audit API's wire shapes as plain types, with no runtime import: the broker builds them and the web UI
// (apps/web, a browser bundle) reads them, both from this one declaration.

/** An audit event as it is hashed and exported: everything but its own hash. */
export interface ChainedEvent {
  seq: number;
  at: string;
  actorId: string;
  action: string;
  subjectType: string;
  subjectId: string;
  requestId: string | null;
  data: Record<string, unknown>;
  /** Hex of the previous event's hash. */
  prevHash: string;
}

/** An audit event as exported: the hashed body plus its own hash (hex). */
export type ExportedEvent = ChainedEvent & { hash: string };

/** A credential issued for the request: its fingerprint, never the secret; lag = revokedAt − notAfter. */
export interface BundleGrant {
  id: string;
  connector: string;
  connectorType: string;
  fingerprint: string;
  issuedAt: string;
  notAfter: string;
  state: string;
  revokedAt: string | null;
  revokeAttempts: number;
  revocationLagMs: number | null;
}

/** Whether a step-up assertion binds this person to this decision on this request, and why not. */
export interface BindingCheck {
  verified: boolean;
  /** Null when verified; else the first reason it does not hold. */
  reason: string | null;
  /** The passkey that signed: the credential id, and its name when the broker still knows it. */
  credentialId: string | null;
  authenticatorName: string | null;
}

export type ChainStepKind =
  | 'requested'
  | 'approval'
  | 'denial'
  | 'approved'
  | 'denied'
  | 'activated'
  | 'issued'
  | 'revoked'
  | 'credential-revoked'
  | 'revoke-failed'
  | 'ended'
  | 'expired'
  | 'other';

/** One step of the timeline, with the audit event it comes from (seq and hash, to find it in an export). */
export interface ChainStep {
  kind: ChainStepKind;
  action: string;
  at: string;
  seq: number;
  hash: string;
  /** The acting person's username, or the actor id (`system`, `cli`) when it is not a person. */
  actor: string;
  comment: string | null;
  binding: BindingCheck | null;
  /** Step-specific facts: justification, ticket, policyHash, fingerprint, notAfter, lagMs, reason… */
  details: Record<string, unknown>;
}
