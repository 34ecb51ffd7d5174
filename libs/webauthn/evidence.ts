import type { StepUpAction } from './step-up-binding.js';

/** A verified step-up: everything anyone needs to re-check it offline (DESIGN §5), kept with the decision. */
export interface StepUpEvidence {
  challengeId: string;
  userId: string;
  action: StepUpAction;
  subjectId: string;
  subjectDigest: string;
  nonce: string;
  authenticatorId: string;
  credentialId: string;
  publicKey: Buffer;
  authenticatorData: Buffer;
  clientDataJson: Buffer;
  signature: Buffer;
  /** When the broker verified the assertion (the challenge's used_at): a token's `auth_time`. */
  verifiedAt: Date;
}

/**
 * The step-up evidence a decision event carries in `data.evidence`: enough to recompute the challenge and
 * check the assertion offline (libs/audit/evidence-check.ts reads it back). Binary fields are base64url;
 * `publicKey` is the credential's COSE key as @simplewebauthn/server stores it.
 */
export type AuditedEvidence = {
  userId: string;
  action: StepUpAction;
  subjectId: string;
  subjectDigest: string;
  nonce: string;
  credentialId: string;
  authenticatorData: string;
  clientDataJSON: string;
  signature: string;
  publicKey: string;
};

/** The evidence as an audit event carries it: binary fields base64url. */
export function evidenceForAudit(evidence: StepUpEvidence): AuditedEvidence {
  return {
    userId: evidence.userId,
    action: evidence.action,
    subjectId: evidence.subjectId,
    subjectDigest: evidence.subjectDigest,
    nonce: evidence.nonce,
    credentialId: evidence.credentialId,
    authenticatorData: evidence.authenticatorData.toString('base64url'),
    clientDataJSON: evidence.clientDataJson.toString('base64url'),
    signature: evidence.signature.toString('base64url'),
    publicKey: evidence.publicKey.toString('base64url'),
  };
}
