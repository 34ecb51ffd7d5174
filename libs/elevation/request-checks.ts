import type { ElevationRequestEntity } from '../db/index.js';
import type { Actor } from '../domain/actor.js';
import { DomainError } from '../domain/errors.js';
import * as rules from '../domain/request-rules.js';
import type { StepUpEvidence } from '../webauthn/evidence.js';
import { requestSubject, subjectDigest } from '../webauthn/step-up-binding.js';

// Small helpers of RequestsService's commands.

const MILLISECONDS = 1000;

/** A refusal from the pure core is thrown here, at the edge of the command. */
export function checked<T>(outcome: T | DomainError): T {
  if (outcome instanceof DomainError) throw outcome;
  return outcome;
}

export function addSeconds(date: Date, seconds: number): Date {
  return new Date(date.getTime() + seconds * MILLISECONDS);
}

/** The step-up was made by this actor, for this action, on this request as it stands now (DESIGN §4.4). */
export function assertConfirmed(
  request: ElevationRequestEntity,
  evidence: StepUpEvidence,
  actor: Actor,
  action: StepUpEvidence['action'],
): void {
  const digest = subjectDigest(requestSubject(request));
  const expected = { userId: actor.id, action, subjectId: request.id, subjectDigest: digest };
  checked(rules.checkConfirmation(evidence, expected));
}
