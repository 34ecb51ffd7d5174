import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditAction } from '../audit/audit-actions.js';
import { appendAuditEvent } from '../audit/audit-log.js';
import type { AuthenticatorEntity } from '../db/index.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import { recoveryCooldownSeconds } from '../domain/policy.js';
import { passkeyRemovalAllowed } from '../domain/recovery-rules.js';
import type { Actor } from '../domain/actor.js';
import { authenticatorsOf } from './authenticator-store.js';
import { policyInForce } from './invites.js';
import { evidenceForAudit, type StepUpEvidence } from '../webauthn/evidence.js';

/** A passkey as its owner sees it: never the key material. */
export function toAuthenticatorView(authenticator: AuthenticatorEntity) {
  const iso = (date: Date | null) => date?.toISOString() ?? null;
  return {
    id: authenticator.id,
    name: authenticator.name,
    credentialId: authenticator.credentialId,
    aaguid: authenticator.aaguid,
    backupEligible: authenticator.backupEligible,
    backedUp: authenticator.backedUp,
    transports: authenticator.transports,
    enrolledVia: authenticator.enrolledVia,
    createdAt: iso(authenticator.createdAt),
    lastUsedAt: iso(authenticator.lastUsedAt),
    disabledAt: iso(authenticator.disabledAt),
    disabledReason: authenticator.disabledReason,
  };
}

/** A user's passkeys: listing and removal (adding is a ceremony, in PasskeysService). */
@Injectable()
export class AuthenticatorsService {
  constructor(private readonly dataSource: DataSource) {}

  /** The actor's passkeys, including disabled ones (so the user sees why one stopped working). */
  list(actor: Actor): Promise<AuthenticatorEntity[]> {
    return authenticatorsOf(this.dataSource.manager, actor.id);
  }

  /**
   * Removes one of the actor's passkeys after an `authenticator.remove` step-up; never the last usable one,
   * nor, within the recovery cool-down, one older than the account's last recovery (passkeyRemovalAllowed).
   */
  async remove(actor: Actor, authenticatorId: string, evidence: StepUpEvidence): Promise<void> {
    await this.dataSource.transaction(async (manager) => {
      await manager.query(`SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, [actor.id]);
      const owned = await authenticatorsOf(manager, actor.id);
      const target = owned.find((item) => item.id === authenticatorId);
      if (!target) throw new DomainError(ErrorCode.AUTHENTICATOR_NOT_FOUND, 'You have no such passkey');
      const [recovered] = (await manager.query(
        `SELECT now() AS now, (SELECT max(used_at) FROM enrollment_invites WHERE user_id = $1 AND recovery) AS "at"`,
        [actor.id],
      )) as Array<{ now: Date; at: Date | null }>;
      const allowed = passkeyRemovalAllowed({
        passkeyCreatedAt: target.createdAt,
        lastRecoveredAt: recovered.at,
        now: recovered.now,
        recoveryCooldownSeconds: recoveryCooldownSeconds(await policyInForce(manager)),
      });
      if (!allowed) {
        throw new DomainError(
          ErrorCode.PASSKEY_KEPT_AFTER_RECOVERY,
          'This account was recovered recently: passkeys older than the recovery cannot be removed until the ' +
            'recovery cool-down ends (ask an admin to end the sessions or suspend the account instead)',
          { recoveredAt: recovered.at?.toISOString() },
        );
      }
      const usableAfter = owned.filter((item) => item.id !== authenticatorId && !item.disabledAt);
      if (usableAfter.length === 0) {
        throw new DomainError(ErrorCode.LAST_AUTHENTICATOR, 'You cannot remove your last usable passkey');
      }
      await manager.query(`UPDATE authenticators SET removed_at = now() WHERE id = $1`, [authenticatorId]);
      await manager.query(
        `UPDATE sessions SET ended_at = now(), end_reason = 'authenticator-removed'
          WHERE authenticator_id = $1 AND ended_at IS NULL`,
        [authenticatorId],
      );
      await appendAuditEvent(manager, {
        actorId: actor.id,
        action: AuditAction.AuthenticatorRemoved,
        subjectType: 'authenticator',
        subjectId: authenticatorId,
        data: { userId: actor.id, credentialId: target.credentialId, evidence: evidenceForAudit(evidence) },
      });
    });
  }
}
