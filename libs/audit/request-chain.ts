// A request's approval chain as people read it (the auditor's timeline): the bundle's events in order, each
// decision with its step-up re-checked the way the offline verifier checks it (libs/audit/evidence-check.ts).
import { subjectDigest } from '../webauthn/step-up-binding.js';
import { AuditAction } from './audit-actions.js';
import type { BindingCheck, ChainStep, ChainStepKind } from './audit-wire.js';
import type { RequestBundle } from './bundle.js';
import { checkStepUpAssertion, parseStepUpEvidence, type RelyingParty } from './evidence-check.js';
import type { ExportedEvent } from './manifest.js';

export type { BindingCheck, ChainStep, ChainStepKind } from './audit-wire.js';

export interface RequestChain {
  requestId: string;
  request: RequestBundle['request'] & { requester: string };
  policyVersion: { hash: string; loadedAt: string; loadedBy: string } | null;
  grants: RequestBundle['grants'];
  steps: ChainStep[];
}

/** What the chain needs besides the bundle: where assertions must come from, and names for ids. */
export interface ChainContext {
  relyingParty: RelyingParty;
  usernames: ReadonlyMap<string, string>;
  /** Credential id → the passkey's name. */
  authenticatorNames: ReadonlyMap<string, string>;
}

const KIND_OF: Readonly<Record<string, ChainStepKind>> = {
  [AuditAction.RequestCreated]: 'requested',
  [AuditAction.RequestApproved]: 'approved',
  [AuditAction.RequestDenied]: 'denied',
  [AuditAction.RequestActivated]: 'activated',
  [AuditAction.BreakGlassActivated]: 'activated',
  [AuditAction.GrantIssued]: 'issued',
  [AuditAction.RequestRevoked]: 'revoked',
  [AuditAction.GrantRevoked]: 'credential-revoked',
  [AuditAction.GrantRevokeFailed]: 'revoke-failed',
  [AuditAction.RequestEnded]: 'ended',
  [AuditAction.RequestExpired]: 'expired',
};

/** The fields of `data` each step shows (never evidence: the binding stands for it). */
const DETAIL_FIELDS: Readonly<Record<string, readonly string[]>> = {
  requested: ['justification', 'ticket', 'policyHash', 'entitlementId', 'durationSeconds', 'scope'],
  approval: ['approvals', 'approvalsRequired', 'rubberStamp', 'recoveryCooldown'],
  denial: ['approvals', 'approvalsRequired'],
  approved: ['selfService', 'activateBy'],
  denied: ['reason'],
  activated: ['activatedAt', 'notAfter', 'extendsRequestId', 'justification'],
  issued: ['connector', 'connectorType', 'fingerprint', 'notAfter'],
  revoked: ['reason', 'grantIds'],
  'credential-revoked': ['reason', 'connector', 'notAfter', 'revokedAt', 'lagMs', 'attempts'],
  'revoke-failed': ['attempts', 'error'],
  ended: ['reason', 'endedAt'],
  expired: ['reason', 'deadline'],
  other: [],
};

/** The timeline of one request from its bundle: pure, so it is tested without a database. */
export function requestChain(bundle: RequestBundle, context: ChainContext): RequestChain {
  const created = bundle.events.find((event) => event.action === AuditAction.RequestCreated);
  const createdDigest = digestOfCreated(created);
  const steps = bundle.events.map((event) => chainStep(event, bundle.requestId, createdDigest, context));
  const requester = context.usernames.get(bundle.request.requesterId) ?? bundle.request.requesterId;
  const { policyVersion } = bundle;
  return {
    requestId: bundle.requestId,
    request: { ...bundle.request, requester },
    policyVersion: policyVersion
      ? { hash: policyVersion.hash, loadedAt: policyVersion.loadedAt, loadedBy: policyVersion.loadedBy }
      : null,
    grants: bundle.grants,
    steps,
  };
}

function chainStep(
  event: ExportedEvent,
  requestId: string,
  createdDigest: string | null,
  context: ChainContext,
): ChainStep {
  const { data } = event;
  let kind: ChainStepKind = KIND_OF[event.action] ?? 'other';
  if (event.action === AuditAction.ApprovalRecorded) kind = data.decision === 'deny' ? 'denial' : 'approval';
  // request.created carries the request's terms flat and as the subject its step-ups commit to.
  const subject = kind === 'requested' && isRecord(data.subject) ? data.subject : {};
  const source: Record<string, unknown> = { ...subject, ...data };
  const details: Record<string, unknown> = {};
  for (const field of DETAIL_FIELDS[kind]) if (source[field] !== undefined) details[field] = source[field];
  const hasEvidence = data.evidence !== undefined || event.action === AuditAction.ApprovalRecorded;
  return {
    kind,
    action: event.action,
    at: event.at,
    seq: event.seq,
    hash: event.hash,
    actor: context.usernames.get(event.actorId) ?? event.actorId,
    comment: typeof data.comment === 'string' ? data.comment : null,
    binding: hasEvidence ? checkBinding(event, requestId, createdDigest, context) : null,
    details,
  };
}

/**
 * The evidence rules of the offline verifier for one decision: the assertion is the actor's, for this
 * decision, on this request as it was filed (the request.created subject digest), and verifies.
 */
export function checkBinding(
  event: ExportedEvent,
  requestId: string,
  createdDigest: string | null,
  context: Pick<ChainContext, 'relyingParty' | 'authenticatorNames'>,
): BindingCheck {
  const evidence = parseStepUpEvidence(event.data.evidence);
  const refused = (reason: string, credentialId: string | null = null): BindingCheck => ({
    verified: false,
    reason,
    credentialId,
    authenticatorName: credentialId === null ? null : (context.authenticatorNames.get(credentialId) ?? null),
  });
  if (event.data.evidence === undefined) return refused('the event carries no step-up evidence');
  if (typeof evidence === 'string') return refused(evidence);
  const reason = bindingFailure(event, evidence, requestId, createdDigest) ?? null;
  if (reason !== null) return refused(reason, evidence.credentialId);
  const assertion = checkStepUpAssertion(evidence, context.relyingParty);
  if (assertion !== null) return refused(assertion, evidence.credentialId);
  return { ...refused('', evidence.credentialId), verified: true, reason: null };
}

function bindingFailure(
  event: ExportedEvent,
  evidence: Exclude<ReturnType<typeof parseStepUpEvidence>, string>,
  requestId: string,
  createdDigest: string | null,
): string | undefined {
  if (evidence.userId !== event.actorId) return "the assertion is not the acting person's";
  if (event.action === AuditAction.ApprovalRecorded && evidence.action !== event.data.decision) {
    return `the assertion authorises ${evidence.action}, not ${String(event.data.decision)}`;
  }
  if (evidence.action === 'break-glass') return undefined;
  if (evidence.subjectId !== requestId) return 'the assertion is for another request';
  if (createdDigest === null) return 'no request.created event to bind the assertion to';
  if (evidence.subjectDigest !== createdDigest) {
    return 'the assertion is for a request with other terms than the one filed';
  }
  return undefined;
}

function digestOfCreated(created: ExportedEvent | undefined): string | null {
  if (created?.data.subject === undefined) return null;
  try {
    return subjectDigest(created.data.subject);
  } catch {
    return null;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
