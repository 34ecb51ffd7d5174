import { Inject, Injectable } from '@nestjs/common';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialRequestOptionsJSON,
} from '@simplewebauthn/server';
import { DataSource, type EntityManager } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { AuditAction } from '../audit/audit-actions.js';
import { appendAuditEvent, flushAuditEvents } from '../audit/audit-log.js';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import type { AuthenticatorEntity, StepUpChallengeEntity } from '../db/index.js';
import { Metrics } from '../metrics/metrics.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import type { Actor } from '../domain/actor.js';
import { authenticationOptions, verifyAssertion } from '../webauthn/ceremonies.js';
import type { StepUpEvidence } from '../webauthn/evidence.js';
import { newNonce, stepUpChallenge, subjectDigest, type StepUpAction } from '../webauthn/step-up-binding.js';
import {
  assertUsable,
  authenticatorsOf,
  known,
  lockAnsweringAuthenticator,
  recordUse,
  relyingParty,
} from './authenticator-store.js';
import { attributed, CeremonyError, recordCeremonyFailure } from './ceremony-failures.js';

/**
 * Refusals that do not count toward the step-up lockout. The lockout bounds guesses by someone without the
 * passkey or its PIN; a stale counter comes with a valid, user-verified signature of the user's own passkey
 * (two tabs, submitted out of order), so counting it would let a race lock a genuine user out.
 */
const UNCOUNTED_FAILURES: string[] = [ErrorCode.SIGN_COUNT_STALE];

/** The step-up a protected call carries in its body (DESIGN §10). */
export interface StepUpProof {
  challengeId: string;
  response: AuthenticationResponseJSON;
}

/** What a step-up must be bound to, as the protected call sees it. */
export interface StepUpExpectation {
  action: StepUpAction;
  subjectId: string;
  /** Computed by the caller from the stored subject, or from the call's parameters. */
  subjectDigest: string;
  /** An entitlement's `authenticator:` requirement (DESIGN §5: device-bound keys or an AAGUID allow-list). */
  authenticator?: { deviceBound: boolean; aaguids: string[] | null };
}

/**
 * The digest of a parameter-bound call: its body less `stepUp`, as plain JSON (DESIGN §5: what was signed
 * is what runs). The JSON round trip drops absent optional fields exactly as the client's JSON did.
 */
export function paramsDigest(params: Record<string, unknown>): string {
  const { stepUp: _stepUp, ...rest } = params;
  try {
    return subjectDigest(JSON.parse(JSON.stringify(rest)) as unknown);
  } catch (error) {
    throw new DomainError(
      ErrorCode.VALIDATION_FAILED,
      `Parameters have no canonical form: ${(error as Error).message}`,
    );
  }
}

/**
 * Request-bound WebAuthn step-up (DESIGN §5): a single-use challenge that commits to user, action and
 * subject, answered by a user-verified assertion. Every refusal is audited, spends its challenge and, but for
 * UNCOUNTED_FAILURES, counts toward a lockout.
 */
@Injectable()
export class StepUpService {
  constructor(
    private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly metrics: Metrics,
  ) {}

  /** Issues a challenge for `actor` bound to action, subject and digest; expires after STEP_UP_TTL_SECONDS. */
  async issue(
    actor: Actor,
    binding: { action: StepUpAction; subjectId: string; subjectDigest: string },
  ): Promise<{ challengeId: string; options: PublicKeyCredentialRequestOptionsJSON; expiresAt: string }> {
    return this.dataSource.transaction(async (manager) => {
      await this.assertNotLocked(manager, actor);
      const authenticators = (await authenticatorsOf(manager, actor.id)).filter((item) => !item.disabledAt);
      if (authenticators.length === 0) {
        throw new DomainError(
          ErrorCode.FORBIDDEN,
          'You have no usable passkey; ask an admin for a recovery invite',
        );
      }
      const nonce = newNonce();
      const challenge = stepUpChallenge({ nonce, userId: actor.id, ...binding }).toString('base64url');
      const id = uuidv7();
      const [{ expires_at: expiresAt }] = (await manager.query(
        `INSERT INTO step_up_challenges (id, user_id, action, subject_id, subject_digest, nonce, challenge, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now(), now() + make_interval(secs => $8)) RETURNING expires_at`,
        [
          id,
          actor.id,
          binding.action,
          binding.subjectId,
          binding.subjectDigest,
          nonce,
          challenge,
          this.config.stepUp.ttlSeconds,
        ],
      )) as Array<{ expires_at: Date }>;
      const options = await authenticationOptions({
        rp: relyingParty(this.config),
        challenge,
        allow: known(authenticators),
      });
      return { challengeId: id, options, expiresAt: expiresAt.toISOString() };
    });
  }

  /**
   * Verifies and consumes a step-up in its own transaction; the evidence is then stored with the decision.
   * Missing → 401 STEP_UP_REQUIRED; otherwise each mismatch has its own code and an audit event.
   */
  async verify(
    actor: Actor,
    proof: StepUpProof | undefined,
    expected: StepUpExpectation,
  ): Promise<StepUpEvidence> {
    if (!proof) {
      throw new DomainError(
        ErrorCode.STEP_UP_REQUIRED,
        `This action needs a fresh passkey confirmation: request a "${expected.action}" challenge first`,
      );
    }
    const outcome = await this.dataSource.transaction(async (manager) => {
      // One step-up of a user at a time: the failure count and the lock below stay exact under concurrency.
      await manager.query(`SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, [actor.id]);
      await this.assertNotLocked(manager, actor);
      await manager.query('SAVEPOINT step_up');
      try {
        return { evidence: await this.check(manager, actor, proof, expected) };
      } catch (error) {
        if (!(error instanceof DomainError)) throw error;
        // Undo the attempt, keep the user lock, and record the refusal in this same transaction.
        await manager.query('ROLLBACK TO SAVEPOINT step_up');
        await this.recordFailure(manager, actor, proof, expected, error);
        return { error };
      }
    });
    if (outcome.error) {
      // Counted once its audit event committed: the counter and the audit log agree.
      this.metrics.stepUpFailures.inc({ code: outcome.error.code });
      throw outcome.error;
    }
    return outcome.evidence;
  }

  /**
   * Verifies the `stepUp` of a call bound to its parameters: `action` on `subjectId`, with the digest of
   * `body` less `stepUp` (computed first, so parameters without a canonical form are a 400 that spends nothing).
   */
  async verifyFor<Body extends { stepUp?: StepUpProof }>(
    actor: Actor,
    action: StepUpAction,
    subjectId: string,
    body: Body,
    authenticator?: StepUpExpectation['authenticator'],
  ): Promise<StepUpEvidence> {
    const { stepUp, ...params } = body;
    const digest = paramsDigest(params);
    return this.verify(actor, stepUp, { action, subjectId, subjectDigest: digest, authenticator });
  }

  /** Checks binding, credential, requirement and assertion, and spends the challenge. */
  private async check(
    manager: EntityManager,
    actor: Actor,
    proof: StepUpProof,
    expected: StepUpExpectation,
  ): Promise<StepUpEvidence> {
    const challenge = await this.lockChallenge(manager, actor, proof.challengeId);
    checkBinding(challenge, expected);
    const authenticator = await lockAnsweringAuthenticator(manager, proof.response?.id);
    try {
      if (authenticator.userId !== actor.id) {
        throw new DomainError(ErrorCode.CREDENTIAL_NOT_YOURS, 'This passkey belongs to someone else');
      }
      checkAuthenticatorRequirement(authenticator, expected.authenticator);
      const assertion = await verifyAssertion(proof.response, {
        rp: relyingParty(this.config),
        challenge: challenge.challenge,
        publicKey: authenticator.publicKey,
        storedSignCount: authenticator.signCount,
      });
      assertUsable(authenticator);
      await recordUse(manager, authenticator, assertion, { table: 'step_up_challenges', id: challenge.id });
      const [[spent]] = (await manager.query(
        `UPDATE step_up_challenges SET used_at = now() WHERE id = $1 RETURNING used_at AS "usedAt"`,
        [challenge.id],
      )) as [Array<{ usedAt: Date }>, number];
      return {
        challengeId: challenge.id,
        userId: actor.id,
        action: expected.action,
        subjectId: challenge.subjectId,
        subjectDigest: challenge.subjectDigest,
        nonce: challenge.nonce,
        authenticatorId: authenticator.id,
        credentialId: authenticator.credentialId,
        publicKey: authenticator.publicKey,
        authenticatorData: assertion.authenticatorData,
        clientDataJson: assertion.clientDataJson,
        signature: assertion.signature,
        verifiedAt: spent.usedAt,
      };
    } catch (error) {
      throw attributed(error, authenticator.id, authenticator.credentialId);
    }
  }

  private async assertNotLocked(manager: EntityManager, actor: Actor): Promise<void> {
    const [row] = (await manager.query(
      `SELECT step_up_locked_until AS "lockedUntil" FROM users WHERE id = $1 AND step_up_locked_until > now()`,
      [actor.id],
    )) as Array<{ lockedUntil: Date }>;
    if (row) {
      throw new DomainError(
        ErrorCode.STEP_UP_LOCKED,
        `Too many failed confirmations: passkey step-up is locked until ${row.lockedUntil.toISOString()}`,
        { lockedUntil: row.lockedUntil.toISOString() },
      );
    }
  }

  private async lockChallenge(
    manager: EntityManager,
    actor: Actor,
    challengeId: string,
  ): Promise<StepUpChallengeEntity & { expired: boolean }> {
    const [challenge] = (await manager.query(
      `SELECT id, user_id AS "userId", action, subject_id AS "subjectId", subject_digest AS "subjectDigest",
              nonce, challenge, expires_at AS "expiresAt", used_at AS "usedAt", expires_at <= now() AS expired
         FROM step_up_challenges WHERE id = $1 AND user_id = $2 FOR UPDATE`,
      [challengeId, actor.id],
    )) as Array<StepUpChallengeEntity & { expired: boolean }>;
    if (!challenge) throw new DomainError(ErrorCode.STEP_UP_INVALID, 'No such step-up challenge for you');
    if (challenge.usedAt)
      throw new DomainError(ErrorCode.STEP_UP_REPLAYED, 'This step-up challenge was already used');
    if (challenge.expired)
      throw new DomainError(ErrorCode.STEP_UP_EXPIRED, 'This step-up challenge has expired');
    return challenge;
  }

  /** Audits the refusal, burns the challenge, and locks step-up after too many failures in the window. */
  private async recordFailure(
    manager: EntityManager,
    actor: Actor,
    proof: StepUpProof,
    expected: StepUpExpectation,
    error: DomainError,
  ): Promise<void> {
    const { maxFailures, failureWindowSeconds, lockSeconds } = this.config.stepUp;
    await manager.query(
      `UPDATE step_up_challenges SET used_at = now() WHERE id = $1 AND user_id = $2 AND used_at IS NULL`,
      [proof.challengeId, actor.id],
    );
    await recordCeremonyFailure(manager, {
      kind: 'step-up',
      actorId: actor.id,
      error,
      subjectType: 'user',
      subjectId: actor.id,
      data: { action: expected.action, subjectId: expected.subjectId, challengeId: proof.challengeId },
    });
    if (UNCOUNTED_FAILURES.includes(error.code)) return;
    // Written now, under the chain head lock: the count includes this failure and concurrent ones serialise.
    await flushAuditEvents(manager);
    const [{ failures }] = (await manager.query(
      `SELECT count(*)::int AS failures FROM audit_events
        WHERE actor_id = $1 AND action = $4 AND at > now() - make_interval(secs => $2)
          AND coalesce(data->>'code', '') <> ALL ($3)
          AND at > coalesce((SELECT max(at) FROM audit_events
                              WHERE actor_id = $1 AND action = $5), '-infinity')`,
      [
        actor.id,
        failureWindowSeconds,
        UNCOUNTED_FAILURES,
        AuditAction.StepUpFailed,
        AuditAction.StepUpLocked,
      ],
    )) as Array<{ failures: number }>;
    if (failures < maxFailures) return;
    const [[locked]] = (await manager.query(
      `UPDATE users SET step_up_locked_until = now() + make_interval(secs => $2) WHERE id = $1
       RETURNING step_up_locked_until AS "lockedUntil"`,
      [actor.id, lockSeconds],
    )) as [Array<{ lockedUntil: Date }>, number];
    await appendAuditEvent(manager, {
      actorId: actor.id,
      action: AuditAction.StepUpLocked,
      subjectType: 'user',
      subjectId: actor.id,
      data: {
        alert: true,
        failures,
        windowSeconds: failureWindowSeconds,
        lockedUntil: locked.lockedUntil.toISOString(),
      },
    });
  }
}

function checkBinding(challenge: StepUpChallengeEntity, expected: StepUpExpectation): void {
  if (challenge.action !== expected.action) {
    throw new DomainError(
      ErrorCode.STEP_UP_ACTION_MISMATCH,
      `This step-up was issued for "${challenge.action}", not "${expected.action}"`,
    );
  }
  if (challenge.subjectId !== expected.subjectId) {
    throw new DomainError(ErrorCode.STEP_UP_SUBJECT_MISMATCH, 'This step-up was issued for another subject');
  }
  if (challenge.subjectDigest !== expected.subjectDigest) {
    throw new DomainError(
      ErrorCode.STEP_UP_SUBJECT_CHANGED,
      'What you confirmed differs from what this call would do; request a new challenge',
    );
  }
}

function checkAuthenticatorRequirement(
  authenticator: AuthenticatorEntity,
  requirement: StepUpExpectation['authenticator'],
): void {
  if (!requirement) return;
  if (requirement.deviceBound && authenticator.backupEligible) {
    throw new CeremonyError(
      ErrorCode.AUTHENTICATOR_NOT_ALLOWED,
      'This entitlement needs a device-bound passkey (not synced or backed up)',
      authenticator.id,
      authenticator.credentialId,
    );
  }
  if (requirement.aaguids && !requirement.aaguids.includes(authenticator.aaguid.toLowerCase())) {
    throw new CeremonyError(
      ErrorCode.AUTHENTICATOR_NOT_ALLOWED,
      'This entitlement needs a passkey from an approved authenticator model',
      authenticator.id,
      authenticator.credentialId,
    );
  }
}
