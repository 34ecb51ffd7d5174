import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditAction } from '../audit/audit-actions.js';
import { appendAuditEvent } from '../audit/audit-log.js';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import type { Actor } from '../domain/actor.js';
import { evidenceForAudit, type StepUpEvidence } from '../webauthn/evidence.js';
import {
  approveInvite,
  createInvite,
  ensureFirstAdminInvite,
  openInvites,
  pendingInvites,
  revokeInvite,
  type CreatedInvite,
  type InviteInput,
  type InviteSettings,
  type OpenInvite,
  type PendingInvite,
} from './invites.js';
import { NOTICE_PENDING } from './recovery-notices.js';

/**
 * What a recovered user is told until each of their passkeys acknowledges it (issue 12); `enrollment` when
 * the invite was an admin's first invite of a privileged user (`recoveredAt` is then when it was used).
 */
export interface RecoveryNotice {
  kind: 'recovery' | 'enrollment';
  inviteId: string;
  recoveredAt: Date;
  /** The creator's username, or `cli` / `bootstrap`. */
  createdBy: string;
  approvedBy: string | null;
  approvedAt: Date | null;
  breakGlass: boolean;
}

// One admin trying to be both halves of the two-person rule: refused and worth an alert.
const SECOND_ADMIN_REFUSALS = new Set<ErrorCode>([
  ErrorCode.INVITE_SELF_APPROVAL,
  ErrorCode.INVITE_APPROVER_NOT_INDEPENDENT,
  ErrorCode.SECOND_ADMIN_TOO_RECENT,
]);

/** Admin-created one-time enrollment invites (the CLI uses the same functions in invites.ts). */
@Injectable()
export class InvitesService {
  private readonly settings: InviteSettings;

  constructor(
    private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.settings = { publicUrl: config.http.publicUrl, ttlSeconds: config.inviteTtlSeconds };
  }

  /**
   * Creates an invite on behalf of an admin whose `invite.create` step-up the caller verified; one for a
   * privileged user waits for a second admin (approve()): always for a recovery, and for a first invite
   * whenever another admin could approve it.
   */
  create(actor: Actor, input: InviteInput, evidence: StepUpEvidence): Promise<CreatedInvite> {
    return this.dataSource.transaction((manager) =>
      createInvite(manager, this.settings, actor.id, input, {
        evidence: evidenceForAudit(evidence),
        privilegedRecovery: 'second-admin',
        privilegedEnrollment: 'second-admin-if-any',
      }),
    );
  }

  /** A second admin's approval (their `invite.approve` step-up verified); an attempt on one's own is audited. */
  async approve(actor: Actor, inviteId: string, evidence: StepUpEvidence) {
    try {
      return await this.dataSource.transaction((manager) =>
        approveInvite(manager, actor, inviteId, evidenceForAudit(evidence)),
      );
    } catch (error) {
      if (error instanceof DomainError && SECOND_ADMIN_REFUSALS.has(error.code)) {
        await this.dataSource.transaction((manager) =>
          appendAuditEvent(manager, {
            actorId: actor.id,
            action: AuditAction.InviteApprovalRefused,
            subjectType: 'invite',
            subjectId: inviteId,
            data: { code: error.code, alert: true, evidence: evidenceForAudit(evidence) },
          }),
        );
      }
      throw error;
    }
  }

  /** Invites waiting for a second admin. */
  pending(): Promise<PendingInvite[]> {
    return this.dataSource.transaction((manager) => pendingInvites(manager));
  }

  /** Every unused, unexpired invite (issue 17: shown as pending, never as an active account). */
  open(): Promise<OpenInvite[]> {
    return this.dataSource.transaction((manager) => openInvites(manager));
  }

  /** Revokes an unused invite (its link then fails); audited. */
  revoke(actor: Actor, inviteId: string): Promise<{ id: string; username: string }> {
    return this.dataSource.transaction((manager) => revokeInvite(manager, actor.id, inviteId));
  }

  /**
   * The recoveries the session's passkey has not acknowledged: each passkey that existed when the account
   * was recovered (and the one the recovery enrolled) sees it, so the owner sees it even if the holder of
   * the recovery link acknowledges it first.
   */
  async noticesFor(sessionId: string): Promise<RecoveryNotice[]> {
    return (await this.dataSource.query(
      `SELECT CASE WHEN i.recovery THEN 'recovery' ELSE 'enrollment' END AS kind,
              i.id AS "inviteId", i.used_at AS "recoveredAt", coalesce(c.username, i.created_by) AS "createdBy",
              ap.username AS "approvedBy", i.approved_at AS "approvedAt", i.break_glass AS "breakGlass"
         FROM sessions s
         JOIN authenticators a ON a.id = s.authenticator_id
         JOIN enrollment_invites i ON ${NOTICE_PENDING}
         LEFT JOIN users c ON c.id::text = i.created_by
         LEFT JOIN users ap ON ap.id = i.approved_by
        WHERE s.id = $1
        ORDER BY i.used_at`,
      [sessionId],
    )) as RecoveryNotice[];
  }

  /** Records that the session's passkey has seen the recovery notice; 404 when it has no such notice. */
  async acknowledge(actor: Actor, sessionId: string, inviteId: string): Promise<void> {
    if (!(await this.noticesFor(sessionId)).some((notice) => notice.inviteId === inviteId)) {
      throw new DomainError(ErrorCode.NOT_FOUND, 'No such recovery notice for this passkey');
    }
    await this.dataSource.transaction(async (manager) => {
      const [row] = (await manager.query(
        `INSERT INTO recovery_acknowledgements (invite_id, authenticator_id, acknowledged_at)
         SELECT $2, authenticator_id, now() FROM sessions WHERE id = $1
         ON CONFLICT DO NOTHING RETURNING authenticator_id AS "authenticatorId"`,
        [sessionId, inviteId],
      )) as Array<{ authenticatorId: string }>;
      if (!row) return;
      await appendAuditEvent(manager, {
        actorId: actor.id,
        action: AuditAction.RecoveryAcknowledged,
        subjectType: 'user',
        subjectId: actor.id,
        data: { inviteId, authenticatorId: row.authenticatorId },
      });
    });
  }

  /** The first-admin link while no admin holds a passkey; null once one does. */
  firstAdminInvite(): Promise<CreatedInvite | null> {
    return ensureFirstAdminInvite(this.dataSource, this.settings);
  }
}
