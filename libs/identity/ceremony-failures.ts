import type { EntityManager } from 'typeorm';
import { AuditAction, type StepUpFailureContext } from '../audit/audit-actions.js';
import { appendAuditEvent, SYSTEM_ACTOR } from '../audit/audit-log.js';
import { DomainError, ErrorCode } from '../domain/errors.js';

/** A refused ceremony, with what the failure handler needs beyond the client-facing code. */
export class CeremonyError extends DomainError {
  constructor(
    code: ErrorCode,
    message: string,
    /** The authenticator that answered, when known: a sign-count regression disables it. */
    readonly authenticatorId: string | null = null,
    readonly credentialId: string | null = null,
  ) {
    super(code, message);
    this.name = 'CeremonyError';
  }
}

/** Rebrands an error raised while verifying, so the failure handler knows which authenticator answered. */
export function attributed(
  error: unknown,
  authenticatorId: string | null,
  credentialId: string | null,
): unknown {
  if (error instanceof DomainError && !(error instanceof CeremonyError)) {
    return new CeremonyError(error.code, error.message, authenticatorId, credentialId);
  }
  return error;
}

/** The most UTF-8 bytes of `reason` a failure event keeps: library errors may quote what a hostile client sent. */
export const MAX_FAILURE_REASON_BYTES = 1024;

const CUT_MARK = '… (cut)';

/** `message` as a failure event's reason: at most MAX_FAILURE_REASON_BYTES of UTF-8, marked when cut. */
export function ceremonyFailureReason(message: string): string {
  if (Buffer.byteLength(message) <= MAX_FAILURE_REASON_BYTES) return message;
  let budget = MAX_FAILURE_REASON_BYTES - Buffer.byteLength(CUT_MARK);
  let kept = '';
  // By code point, so a surrogate pair is never cut in half.
  for (const character of message) {
    budget -= Buffer.byteLength(character);
    if (budget < 0) break;
    kept += character;
  }
  return `${kept}${CUT_MARK}`;
}

/** The `<kind>.failed` action of each ceremony kind. */
export const CEREMONY_FAILURE_ACTIONS = {
  login: AuditAction.LoginFailed,
  enroll: AuditAction.EnrollFailed,
  register: AuditAction.RegisterFailed,
  'step-up': AuditAction.StepUpFailed,
} as const;

/**
 * Writes what a refused ceremony leaves behind, in its own transaction (the ceremony's rolled back): the
 * `<kind>.failed` audit event, and for a sign-count regression the disabled authenticator with an alert.
 */
export async function recordCeremonyFailure(
  manager: EntityManager,
  failure: {
    kind: keyof typeof CEREMONY_FAILURE_ACTIONS;
    actorId: string | null;
    error: DomainError;
    subjectType: string;
    subjectId: string;
    /** A refused step-up's binding. */
    data?: StepUpFailureContext;
  },
): Promise<void> {
  const { error } = failure;
  const authenticatorId = error instanceof CeremonyError ? error.authenticatorId : null;
  const credentialId = error instanceof CeremonyError ? error.credentialId : null;
  await appendAuditEvent(manager, {
    actorId: failure.actorId ?? SYSTEM_ACTOR,
    action: CEREMONY_FAILURE_ACTIONS[failure.kind],
    subjectType: failure.subjectType,
    subjectId: failure.subjectId,
    data: { code: error.code, reason: ceremonyFailureReason(error.message), credentialId, ...failure.data },
  });
  if (error.code === ErrorCode.SIGN_COUNT_REGRESSION && authenticatorId) {
    const [rows] = (await manager.query(
      `UPDATE authenticators SET disabled_at = now(), disabled_reason = 'sign-count-regression'
        WHERE id = $1 AND disabled_at IS NULL RETURNING user_id AS "userId"`,
      [authenticatorId],
    )) as [Array<{ userId: string }>, number];
    if (rows.length > 0) {
      // A session signed in with a possibly cloned key must not outlive the discovery.
      await manager.query(
        `UPDATE sessions SET ended_at = now(), end_reason = 'authenticator-disabled'
          WHERE authenticator_id = $1 AND ended_at IS NULL`,
        [authenticatorId],
      );
      await appendAuditEvent(manager, {
        actorId: SYSTEM_ACTOR,
        action: AuditAction.AuthenticatorDisabled,
        subjectType: 'authenticator',
        subjectId: authenticatorId,
        data: {
          alert: true,
          reason: 'sign-count-regression',
          userId: rows[0].userId,
          credentialId,
          detail: 'The signature counter went backwards: the authenticator may have been cloned',
        },
      });
    }
  }
}
