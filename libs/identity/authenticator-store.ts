import type { EntityManager } from 'typeorm';
import type { AuthenticatorEntity } from '../db/index.js';
import { ErrorCode } from '../domain/errors.js';
import {
  signCountVerdict,
  type KnownCredential,
  type RelyingParty,
  type VerifiedAssertion,
} from '../webauthn/ceremonies.js';
import type { AppConfig } from '../config/config.js';
import { CeremonyError } from './ceremony-failures.js';

const COLUMNS = `id, user_id AS "userId", credential_id AS "credentialId", public_key AS "publicKey",
  sign_count::float8 AS "signCount", aaguid, backup_eligible AS "backupEligible", backed_up AS "backedUp",
  transports, name, enrolled_via AS "enrolledVia", created_at AS "createdAt", last_used_at AS "lastUsedAt",
  disabled_at AS "disabledAt", disabled_reason AS "disabledReason", removed_at AS "removedAt"`;

/** The relying party from config. */
export function relyingParty(config: AppConfig): RelyingParty {
  return config.webauthn;
}

/**
 * The authenticator that owns a credential id, row-locked; 401 UNKNOWN_CREDENTIAL otherwise. Whether it is
 * still usable is told only after its signature verified (assertUsable), so a probe learns nothing.
 */
export async function lockAnsweringAuthenticator(
  manager: EntityManager,
  credentialId: unknown,
): Promise<AuthenticatorEntity> {
  const id = typeof credentialId === 'string' ? credentialId : '';
  const [authenticator] = (await manager.query(
    `SELECT ${COLUMNS} FROM authenticators WHERE credential_id = $1 AND removed_at IS NULL FOR UPDATE`,
    [id],
  )) as AuthenticatorEntity[];
  if (!authenticator) {
    throw new CeremonyError(
      ErrorCode.UNKNOWN_CREDENTIAL,
      'This passkey is not registered here',
      null,
      id || null,
    );
  }
  return authenticator;
}

/** Refuses a disabled authenticator (call after its signature verified). */
export function assertUsable(authenticator: AuthenticatorEntity): void {
  if (authenticator.disabledAt) {
    throw new CeremonyError(
      ErrorCode.AUTHENTICATOR_DISABLED,
      `This passkey was disabled (${authenticator.disabledReason ?? 'by an admin'}); enroll another one`,
      authenticator.id,
      authenticator.credentialId,
    );
  }
}

/** A user's authenticators that have not been removed, oldest first. */
export async function authenticatorsOf(
  manager: EntityManager,
  userId: string,
): Promise<AuthenticatorEntity[]> {
  return (await manager.query(
    `SELECT ${COLUMNS} FROM authenticators WHERE user_id = $1 AND removed_at IS NULL ORDER BY created_at, id`,
    [userId],
  )) as AuthenticatorEntity[];
}

/** For allow- and exclude-lists. */
export function known(authenticators: AuthenticatorEntity[]): KnownCredential[] {
  return authenticators.map((authenticator) => ({
    credentialId: authenticator.credentialId,
    transports: authenticator.transports,
  }));
}

/** The challenge an assertion answered: when it was issued tells a late tab from a clone (signCountVerdict). */
export interface AnsweredChallenge {
  table: 'step_up_challenges' | 'webauthn_ceremonies';
  id: string;
}

/**
 * Records a verified use: the new counter and when (last_used_at is also when the stored counter was
 * accepted). A counter that did not go up is refused: 409 SIGN_COUNT_STALE when it is lower and its
 * challenge was issued before that moment (a race between tabs), SIGN_COUNT_REGRESSION otherwise, an equal
 * non-zero counter included (the caller then disables it; signCountVerdict).
 */
export async function recordUse(
  manager: EntityManager,
  authenticator: AuthenticatorEntity,
  assertion: VerifiedAssertion,
  challenge: AnsweredChallenge,
): Promise<void> {
  if (assertion.signCountRegressed) {
    // Compared in PostgreSQL: timestamps keep their microseconds there, not in a JS Date.
    const [{ issuedBefore }] = (await manager.query(
      `SELECT c.created_at < coalesce(a.last_used_at, a.created_at) AS "issuedBefore"
         FROM authenticators a, ${challenge.table} c WHERE a.id = $1 AND c.id = $2`,
      [authenticator.id, challenge.id],
    )) as Array<{ issuedBefore: boolean }>;
    const verdict = signCountVerdict({
      signCount: assertion.signCount,
      storedSignCount: authenticator.signCount,
      issuedBeforeStoredCount: issuedBefore,
    });
    if (verdict === 'stale') {
      throw new CeremonyError(
        ErrorCode.SIGN_COUNT_STALE,
        'This passkey confirmed something newer after this challenge was issued; request a new challenge',
        authenticator.id,
        authenticator.credentialId,
      );
    }
    throw new CeremonyError(
      ErrorCode.SIGN_COUNT_REGRESSION,
      'This passkey reported a signature counter that went backwards; it has been disabled',
      authenticator.id,
      authenticator.credentialId,
    );
  }
  await manager.query(`UPDATE authenticators SET sign_count = $2, last_used_at = now() WHERE id = $1`, [
    authenticator.id,
    assertion.signCount,
  ]);
}
