// The audit trail's contract (DESIGN §9): every action the broker, the worker and the CLI append, and the
// `data` each one carries, in the shape of libs/jobs/jobs.ts (JobName + JobPayloads). appendAuditEvent only
// takes a member of AuditAction with its payload; the values are what is stored and exported, never renamed.
// Types only from libs of the offline verifier's reach (domain, webauthn, this lib), which reads the enum too.
import type { Decision, EndReason } from '../domain/request-enums.js';
import type { PrivilegeReason } from '../domain/recovery-rules.js';
import type { AuditedEvidence } from '../webauthn/evidence.js';
import type { RequestSubject, StepUpAction } from '../webauthn/step-up-binding.js';
import type { CheckpointData } from './checkpoint.js';
import type { ExportFilters, ExportFormat, ExportManifest } from './manifest.js';

/** Every action of an audit event. */
export enum AuditAction {
  // Requests (libs/elevation: RequestsService, RequestSweeper)
  RequestCreated = 'request.created',
  RequestApproved = 'request.approved',
  RequestDenied = 'request.denied',
  RequestCancelled = 'request.cancelled',
  RequestWindowOpened = 'request.window-opened',
  RequestActivated = 'request.activated',
  RequestRevoked = 'request.revoked',
  RequestEnded = 'request.ended',
  RequestExpired = 'request.expired',
  ApprovalRecorded = 'approval.recorded',
  BreakGlassActivated = 'break-glass.activated',
  BreakGlassReviewed = 'break-glass.reviewed',
  BreakGlassReviewOverdue = 'break-glass.review-overdue',
  EntitlementLocked = 'entitlement.locked',
  EntitlementUnlocked = 'entitlement.unlocked',
  // Grants (libs/elevation: request-grants.ts, RevocationService)
  GrantIssued = 'grant.issued',
  GrantRevoked = 'grant.revoked',
  /** With an underscore, unlike every other action: stored since the first release, so kept. */
  GrantRevokeFailed = 'grant.revoke_failed',
  /** An admin asked for a stuck revocation to be tried again (issue 17). */
  GrantRevokeRetried = 'grant.revoke-retried',
  /** A mint whose broker stopped mid-flight, found by the sweep and taken back (issue 13). */
  GrantMintAbandoned = 'grant.mint-abandoned',
  PolicyActivated = 'policy.activated',
  // People, passkeys and sessions (libs/identity)
  UserCreated = 'user.created',
  UserSuspended = 'user.suspended',
  UserReinstated = 'user.reinstated',
  /** Where notifications reach a person (issue 18); the address itself is not recorded. */
  UserEmailChanged = 'user.email-changed',
  InviteCreated = 'invite.created',
  InviteApproved = 'invite.approved',
  InviteApprovalRefused = 'invite.approval-refused',
  InviteUsed = 'invite.used',
  InviteRevoked = 'invite.revoked',
  RecoveryAcknowledged = 'recovery.acknowledged',
  SessionStarted = 'session.started',
  SessionEnded = 'session.ended',
  SessionsEnded = 'sessions.ended',
  AuthenticatorRegistered = 'authenticator.registered',
  AuthenticatorRemoved = 'authenticator.removed',
  AuthenticatorDisabled = 'authenticator.disabled',
  // Refused ceremonies: `<kind>.failed` (libs/identity/ceremony-failures.ts)
  LoginFailed = 'login.failed',
  EnrollFailed = 'enroll.failed',
  RegisterFailed = 'register.failed',
  StepUpFailed = 'step-up.failed',
  StepUpLocked = 'step-up.locked',
  IntrospectionLocked = 'introspection.locked',
  // The trail itself, keys and the database role
  AuditCheckpoint = 'audit.checkpoint',
  AuditExported = 'audit.exported',
  AuditExportFailed = 'audit.export-failed',
  SigningKeyRotated = 'signing-key.rotated',
  DatabasePrivilegedRole = 'database.privileged-role',
}

/** Marks an event an operator must look at (DESIGN §8 "alert"). */
interface Alert {
  alert: true;
}

/** A verified step-up, as a decision event carries it for the offline verifier. */
interface Evidence {
  evidence: AuditedEvidence;
}

/**
 * Who a workload's OIDC token proved it was (issue 21), on each event a workload causes: its policy id, the
 * token's issuer, subject and `jti` (null when the issuer sets none).
 */
export interface WorkloadAudit {
  workload: { id: string; issuer: string; subject: string; jti: string | null };
}

/** What every refused ceremony records; `reason` is the error message, cut to a bounded length. */
export interface CeremonyFailure {
  code: string;
  reason: string;
  credentialId: string | null;
}

/** What a refused step-up adds: the action and subject the client asked for. */
export interface StepUpFailureContext {
  action: StepUpAction;
  subjectId: string;
  challengeId: string;
}

/** `data` of each action, as written. */
export interface AuditPayloads {
  /** The request's immutable fields twice: flat, and as the `subject` its step-ups commit to (DESIGN §5). */
  [AuditAction.RequestCreated]: Omit<RequestSubject, 'id' | 'requesterId'> &
    Partial<WorkloadAudit> & {
      subject: RequestSubject;
      requester: string;
      approvalsRequired: number;
      selfService: boolean;
    };
  /** `selfService: true` when no approval was needed; else after the quorum's last approval. */
  [AuditAction.RequestApproved]: { selfService?: boolean; activateBy?: string };
  [AuditAction.RequestDenied]: { reason: string | null };
  [AuditAction.RequestCancelled]: Partial<WorkloadAudit> & { reason: string | null };
  [AuditAction.RequestWindowOpened]: { notBefore: string; activateBy: string | null };
  /** A person's activation carries their step-up; a workload's, the identity its token proved. */
  [AuditAction.RequestActivated]: (Evidence | WorkloadAudit) & {
    activatedAt: string;
    notAfter: string;
    extendsRequestId?: string;
  };
  [AuditAction.RequestRevoked]: Partial<Evidence> & { reason: string; grantIds: string[] };
  [AuditAction.RequestEnded]: { reason?: EndReason; endedAt: string };
  [AuditAction.RequestExpired]: { reason?: EndReason; deadline: string };
  [AuditAction.ApprovalRecorded]: Evidence & {
    approver: string;
    decision: Decision;
    comment: string | null;
    approvals: number;
    approvalsRequired: number;
    /** Approvals only. */
    rubberStamp?: boolean;
    /** Recorded, not counted toward quorum (UncountedReason `recovery-cooldown`), with `alert: true`. */
    recoveryCooldown?: true;
    alert?: true;
  };
  [AuditAction.BreakGlassActivated]: Alert &
    Evidence & {
      entitlementId: string;
      justification: string;
      notifyGroups: string[];
      notifyUsers: string[];
      reviewDueAt: string;
    };
  [AuditAction.BreakGlassReviewed]: { comment: string; reviewDueAt: string | null; late: boolean };
  [AuditAction.BreakGlassReviewOverdue]: Alert & { entitlementId: string; reviewDueAt: string };
  [AuditAction.EntitlementLocked]: Alert & { entitlementId: string; denials: number; windowSeconds: number };
  [AuditAction.EntitlementUnlocked]: { entitlementId: string; lockoutId: string };
  [AuditAction.GrantIssued]: Partial<WorkloadAudit> & {
    connector: string;
    connectorType: string;
    externalRef: string;
    /** Of the credential; the secret itself is never recorded. */
    fingerprint: string;
    notAfter: string;
    overlapKey?: string;
  };
  [AuditAction.GrantRevoked]: {
    /** The early revoke's reason, `revoked`, or `expired` at notAfter. */
    reason: string;
    connector: string;
    externalRef: string;
    notAfter: string;
    revokedAt: string;
    lagMs: number;
    attempts: number;
    /** Another grant of the same connector and overlap key still holds the external access. */
    externalRevokeSkipped?: true;
    heldBy?: string;
  };
  [AuditAction.GrantRevokeFailed]: Alert & { attempts: number; error: string };
  [AuditAction.GrantRevokeRetried]: Evidence & { state: string; attempts: number };
  [AuditAction.GrantMintAbandoned]: Alert & {
    connector: string;
    /** The request's state when the sweep found the attempt (null: a break-glass that never committed). */
    requestState: string | null;
    /** When the attempt was reserved. */
    reservedAt: string;
    /** `revoke`: a compensating revoke is queued (mint_attempts); `none`: the connector's mint leaves nothing. */
    undo: 'revoke' | 'none';
  };
  [AuditAction.PolicyActivated]: Partial<Evidence> & {
    hash: string;
    previousHash: string | null;
    entitlements: string[];
  };
  [AuditAction.UserCreated]: { username: string; roles: string[] };
  [AuditAction.UserSuspended]: Evidence & { username: string; reason: string };
  [AuditAction.UserReinstated]: Evidence & { username: string; reason: string };
  [AuditAction.UserEmailChanged]: Evidence & { username: string; emailSet: boolean; byAdmin: boolean };
  [AuditAction.InviteCreated]: Partial<Evidence> & {
    inviteId: string;
    username: string;
    recovery: boolean;
    /** For an existing account, or a privileged user's first invite from an admin. */
    alert?: true;
    privilege?: PrivilegeReason[];
    needsSecondAdmin?: boolean;
    breakGlass?: boolean;
    expiresAt: string;
  };
  [AuditAction.InviteApproved]: Alert & Evidence & { inviteId: string; username: string; createdBy: string };
  [AuditAction.InviteRevoked]: { inviteId: string; username: string };
  [AuditAction.InviteApprovalRefused]: Alert & Evidence & { code: string };
  [AuditAction.InviteUsed]: {
    inviteId: string;
    authenticatorId: string;
    /** A recovery: someone now holds a new passkey for an existing account (with `alert: true`). */
    recovery?: true;
    alert?: true;
    createdBy?: string;
    approvedBy?: string | null;
  };
  [AuditAction.RecoveryAcknowledged]: { inviteId: string; authenticatorId: string };
  [AuditAction.SessionStarted]: { authenticatorId: string; ip: string | null; expiresAt: string };
  /** `ended-by-admin` with `userId`: an admin ended one of someone's sessions. */
  [AuditAction.SessionEnded]:
    { reason: 'logout' } | { reason: 'ended-by-admin' | 'replaced-at-sign-in'; userId: string };
  [AuditAction.SessionsEnded]: { reason: string; count: number };
  [AuditAction.AuthenticatorRegistered]: {
    userId: string;
    username: string;
    credentialId: string;
    publicKey: string;
    aaguid: string;
    backupEligible: boolean;
    backedUp: boolean;
    enrolledVia: 'invite' | 'step-up';
    /** When enrolled through an invite. */
    inviteId?: string;
  };
  [AuditAction.AuthenticatorRemoved]: Evidence & { userId: string; credentialId: string };
  [AuditAction.AuthenticatorDisabled]:
    | (Alert & {
        reason: 'sign-count-regression';
        userId: string;
        credentialId: string | null;
        detail: string;
      })
    /** An admin disabled it; `lastUsable` (with `alert`) when the person has no usable passkey left. */
    | (Evidence & {
        reason: 'admin';
        userId: string;
        credentialId: string;
        detail: string;
        lastUsable: boolean;
        alert?: true;
      });
  [AuditAction.LoginFailed]: CeremonyFailure;
  [AuditAction.EnrollFailed]: CeremonyFailure;
  [AuditAction.RegisterFailed]: CeremonyFailure;
  [AuditAction.StepUpFailed]: CeremonyFailure & StepUpFailureContext;
  [AuditAction.StepUpLocked]: Alert & { failures: number; windowSeconds: number; lockedUntil: string };
  [AuditAction.IntrospectionLocked]: Alert & {
    failures: number;
    windowSeconds: number;
    retryAfterSeconds: number;
  };
  [AuditAction.AuditCheckpoint]: CheckpointData;
  [AuditAction.AuditExported]: Evidence & {
    format: ExportFormat;
    filters: ExportFilters;
    /** Exactly what the step-up digest covers, so a reader can recompute it. */
    params: unknown;
    /** What the manifest signs about the events, and its signature. */
    manifest: Pick<
      ExportManifest,
      | 'count'
      | 'firstSeq'
      | 'lastSeq'
      | 'lastHash'
      | 'eventsDigest'
      | 'chainHead'
      | 'kid'
      | 'jws'
      | 'signature'
    >;
  };
  [AuditAction.AuditExportFailed]: Evidence & {
    format: ExportFormat;
    filters: ExportFilters;
    params: unknown;
    error: string;
  };
  [AuditAction.SigningKeyRotated]: {
    purpose: 'jwt' | 'audit' | 'ssh';
    alg: string;
    kid: string;
    retiredKid: string | null;
  };
  [AuditAction.DatabasePrivilegedRole]: Alert & { application: string; reasons: string[] };
}
