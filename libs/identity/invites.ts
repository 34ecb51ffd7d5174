import type { DataSource, EntityManager } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { AuditAction } from '../audit/audit-actions.js';
import { appendAuditEvent } from '../audit/audit-log.js';
import { databaseNow } from '../db/clock.js';
import type { EnrollmentInviteEntity, UserRole } from '../db/index.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import { unsafeFreeTextCharacter } from '../domain/free-text.js';
import { recoveryCooldownSeconds, USERNAME_PATTERN, type Policy } from '../domain/policy.js';
import {
  anotherAdminCanApprove,
  privilegeReasons,
  secondAdminRefusal,
  type EnrolledFrom,
} from '../domain/recovery-rules.js';
import type { Actor } from '../domain/actor.js';
import type { AuditedEvidence } from '../webauthn/evidence.js';
import { newSecretToken, tokenHash } from './tokens.js';

/** What invite creation needs from config; the CLI builds it without the broker's whole config. */
export interface InviteSettings {
  publicUrl: string;
  ttlSeconds: number;
}

export interface InviteInput {
  username: string;
  displayName?: string | null;
  roles: UserRole[];
}

/** The one-time link, shown once: only the token's hash is stored. */
export interface CreatedInvite {
  inviteId: string;
  token: string;
  url: string;
  expiresAt: Date;
  userId: string;
  newUser: boolean;
  /** An invite for a privileged user: the link answers 409 until another admin approves it. */
  pendingApproval: boolean;
  /** A recovery of a privileged user made usable without a second admin (PrivilegedRecovery). */
  breakGlass: boolean;
}

/**
 * What to do with a recovery of a privileged user (libs/domain/recovery-rules.ts: an admin, an approver, or a
 * requester of break-glass or self-service under the policy in force), who could otherwise be stood in for
 * by the admin holding the link:
 * `second-admin` (the default, the admin API) creates it pending another admin's approval; `break-glass`
 * (`cli invite --break-glass`, the first-admin bootstrap) makes it usable at once, flagged and alerted;
 * `refuse` refuses it (the CLI without --break-glass).
 */
export type PrivilegedRecovery = 'second-admin' | 'break-glass' | 'refuse';

/**
 * What to do with the first invite of a privileged user (new, or never enrolled), which is no recovery:
 * `second-admin-if-any` (the admin API) alerts, tells the enrolled user who created it, and waits for a
 * second admin whenever another admin independent of the creator could approve it (with none, waiting
 * would deadlock a fresh deployment); `allow` (the CLI, the bootstrap and the test harness, which hold the
 * database credentials anyway) makes it usable at once, as before.
 */
export type PrivilegedEnrollment = 'second-admin-if-any' | 'allow';

export interface InviteOptions {
  /** The admin's `invite.create` step-up, kept in the audit event (none from the CLI or bootstrap). */
  evidence?: AuditedEvidence | null;
  privilegedRecovery?: PrivilegedRecovery;
  privilegedEnrollment?: PrivilegedEnrollment;
}

/** The username of the first admin, whose invite `npm start` and `cli invite` bootstrap. */
export const FIRST_ADMIN_USERNAME = 'admin';

/**
 * Creates a one-time enrollment invite, and the user if new. An invite for an existing user adds a passkey
 * but never changes roles; any earlier unused invite of the user ends. It is a recovery invite (DESIGN §5)
 * when the user holds or held a passkey: using it ends their sessions and shows them a notice, and
 * recovering an admin or approver needs a second admin (see PrivilegedRecovery).
 */
export async function createInvite(
  manager: EntityManager,
  settings: InviteSettings,
  createdBy: string,
  input: InviteInput,
  options: InviteOptions = {},
): Promise<CreatedInvite> {
  const { evidence = null, privilegedRecovery = 'second-admin', privilegedEnrollment = 'allow' } = options;
  if (!USERNAME_PATTERN.test(input.username)) {
    throw new DomainError(ErrorCode.VALIDATION_FAILED, `"${input.username}" is not a valid username`);
  }
  // The API's DTO checks this too; the CLI reaches here directly (a NUL would otherwise fail in PostgreSQL).
  const unsafeDisplayName = input.displayName
    ? unsafeFreeTextCharacter(input.displayName, { multiLine: false })
    : null;
  if (unsafeDisplayName) {
    throw new DomainError(
      ErrorCode.VALIDATION_FAILED,
      `The display name must be plain text: it contains ${unsafeDisplayName}`,
    );
  }
  const now = await databaseNow(manager);
  const roles = [...new Set(input.roles)].sort();
  const [existing] = (await manager.query(
    `SELECT id, roles, status FROM users WHERE username = $1 FOR UPDATE`,
    [input.username],
  )) as Array<{ id: string; roles: UserRole[]; status: string }>;
  const policy = await policyInForce(manager);
  const privilege = privilegeReasons({ username: input.username, roles: existing?.roles ?? roles }, policy);
  let userId: string;
  let recovery = false;
  if (existing) {
    if (existing.status !== 'active') {
      throw new DomainError(
        ErrorCode.FORBIDDEN,
        `"${input.username}" is suspended; reinstate the account first`,
      );
    }
    if (roles.length > 0 && roles.join(',') !== [...existing.roles].sort().join(',')) {
      throw new DomainError(
        ErrorCode.ROLES_MISMATCH,
        `"${input.username}" exists with roles [${existing.roles.join(', ')}]; an invite does not change roles`,
        { roles: existing.roles },
      );
    }
    userId = existing.id;
    recovery = await hasHeldPasskey(manager, userId);
    if (recovery && privilege.length > 0 && privilegedRecovery === 'refuse') {
      throw new DomainError(
        ErrorCode.RECOVERY_NEEDS_SECOND_ADMIN,
        `"${input.username}" is privileged (${privilege.join(', ')}): create the recovery invite as an ` +
          'admin (a second admin must approve it), or pass --break-glass to create it here, loudly audited',
      );
    }
    await manager.query(
      `UPDATE enrollment_invites SET expires_at = $2 WHERE user_id = $1 AND used_at IS NULL AND expires_at > $2`,
      [userId, now],
    );
  } else {
    userId = uuidv7();
    await manager.query(`INSERT INTO users (id, username, display_name, roles) VALUES ($1, $2, $3, $4)`, [
      userId,
      input.username,
      input.displayName?.trim() || input.username,
      roles,
    ]);
    await appendAuditEvent(manager, {
      actorId: createdBy,
      action: AuditAction.UserCreated,
      subjectType: 'user',
      subjectId: userId,
      data: { username: input.username, roles },
    });
  }
  const token = newSecretToken();
  const inviteId = uuidv7();
  const expiresAt = new Date(now.getTime() + settings.ttlSeconds * 1000);
  const privileged = privilege.length > 0;
  const breakGlass = privileged && recovery && privilegedRecovery === 'break-glass';
  const enrollmentNotice = privileged && !recovery && privilegedEnrollment === 'second-admin-if-any';
  const needsSecondAdmin =
    privileged &&
    (recovery
      ? privilegedRecovery === 'second-admin'
      : enrollmentNotice && anotherAdminCanApprove(createdBy, await otherAdmins(manager, createdBy)));
  await manager.query(
    `INSERT INTO enrollment_invites (id, token_hash, user_id, created_by, created_at, expires_at, recovery,
       needs_second_admin, enrollment_notice, break_glass)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    [
      inviteId,
      tokenHash(token),
      userId,
      createdBy,
      now,
      expiresAt,
      recovery,
      needsSecondAdmin,
      enrollmentNotice,
      breakGlass,
    ],
  );
  await appendAuditEvent(manager, {
    actorId: createdBy,
    action: AuditAction.InviteCreated,
    subjectType: 'user',
    subjectId: userId,
    data: {
      inviteId,
      username: input.username,
      recovery,
      // An invite for an existing account lets whoever holds the link add a passkey to it, and one for a
      // privileged user from an admin lets whoever holds it act without anyone else's approval: loud.
      ...(existing || enrollmentNotice ? { alert: true } : {}),
      ...(privileged ? { privilege } : {}),
      ...(needsSecondAdmin ? { needsSecondAdmin } : {}),
      ...(breakGlass ? { breakGlass } : {}),
      expiresAt: expiresAt.toISOString(),
      ...(evidence ? { evidence } : {}),
    },
  });
  return {
    inviteId,
    token,
    url: `${settings.publicUrl}/enroll?invite=${token}`,
    expiresAt,
    userId,
    newUser: !existing,
    pendingApproval: needsSecondAdmin,
    breakGlass,
  };
}

/** Whether the user holds or ever held a passkey: an invite for them is then a recovery. */
async function hasHeldPasskey(manager: EntityManager, userId: string): Promise<boolean> {
  const [{ held }] = (await manager.query(
    `SELECT EXISTS (SELECT 1 FROM authenticators WHERE user_id = $1) AS held`,
    [userId],
  )) as Array<{ held: boolean }>;
  return held;
}

/**
 * The other active admins holding a usable passkey, each with the invites their account used: who might be
 * the second admin of `creatorId`'s invite.
 */
async function otherAdmins(
  manager: EntityManager,
  creatorId: string,
): Promise<Array<{ id: string; enrolledFrom: EnrolledFrom[] }>> {
  return (await manager.query(
    `SELECT u.id,
            coalesce((SELECT json_agg(json_build_object('createdBy', i.created_by, 'approvedBy', i.approved_by))
                        FROM enrollment_invites i WHERE i.user_id = u.id AND i.used_at IS NOT NULL),
                     '[]'::json) AS "enrolledFrom"
       FROM users u
      WHERE 'admin' = ANY (u.roles) AND u.status = 'active' AND u.id::text <> $1
        AND EXISTS (SELECT 1 FROM authenticators a
                     WHERE a.user_id = u.id AND a.removed_at IS NULL AND a.disabled_at IS NULL)`,
    [creatorId],
  )) as Array<{ id: string; enrolledFrom: EnrolledFrom[] }>;
}

/** The policy in force (the latest activation), read in the caller's transaction; none before the first boot. */
export async function policyInForce(manager: EntityManager): Promise<Policy> {
  const [row] = (await manager.query(
    `SELECT v.content FROM policy_activations a JOIN policy_versions v ON v.hash = a.hash
      ORDER BY a.id DESC LIMIT 1`,
  )) as Array<{ content: Policy }>;
  return row?.content ?? { groups: {}, connectors: {}, entitlements: [] };
}

/** An invite waiting for a second admin, as the admin list shows it. */
export interface PendingInvite {
  id: string;
  username: string;
  /** The creator's username (or `cli`). */
  createdBy: string;
  createdAt: Date;
  expiresAt: Date;
  /** False for a privileged user's first invite. */
  recovery: boolean;
}

/** Invites (recoveries and first invites of privileged users) still waiting for a second admin, oldest first. */
export async function pendingInvites(manager: EntityManager): Promise<PendingInvite[]> {
  return (await manager.query(
    `SELECT i.id, u.username, coalesce(c.username, i.created_by) AS "createdBy", i.created_at AS "createdAt",
            i.expires_at AS "expiresAt", i.recovery
       FROM enrollment_invites i JOIN users u ON u.id = i.user_id
       LEFT JOIN users c ON c.id::text = i.created_by
      WHERE i.needs_second_admin AND i.approved_at IS NULL AND i.used_at IS NULL AND i.expires_at > now()
      ORDER BY i.id LIMIT 500`,
  )) as PendingInvite[];
}

/**
 * A second admin's approval of an invite for a privileged user, whose `invite.approve` step-up the caller
 * verified: the link becomes usable. Who may approve is secondAdminRefusal's rule (libs/domain/recovery-rules.ts);
 * this loads its facts.
 */
export async function approveInvite(
  manager: EntityManager,
  actor: Actor,
  inviteId: string,
  evidence: AuditedEvidence,
): Promise<{ id: string; username: string; state: 'active'; expiresAt: Date }> {
  const [invite] = (await manager.query(
    `SELECT i.id, i.user_id AS "userId", u.username, i.created_by AS "createdBy",
            i.needs_second_admin AS "needsSecondAdmin", i.approved_at AS "approvedAt", i.used_at AS "usedAt",
            i.expires_at AS "expiresAt", i.expires_at <= now() AS expired
       FROM enrollment_invites i JOIN users u ON u.id = i.user_id WHERE i.id = $1 FOR UPDATE OF i`,
    [inviteId],
  )) as Array<{
    id: string;
    userId: string;
    username: string;
    createdBy: string;
    needsSecondAdmin: boolean;
    approvedAt: Date | null;
    usedAt: Date | null;
    expiresAt: Date;
    expired: boolean;
  }>;
  if (!invite) throw new DomainError(ErrorCode.INVITE_NOT_FOUND, 'No such invite');
  if (invite.usedAt) throw new DomainError(ErrorCode.INVITE_USED, 'This invite has already been used');
  if (invite.expired) throw new DomainError(ErrorCode.INVITE_EXPIRED, 'This invite has expired');
  if (!invite.needsSecondAdmin || invite.approvedAt) {
    throw new DomainError(ErrorCode.INVITE_NOT_PENDING, 'This invite is not waiting for an approval');
  }
  const [facts] = (await manager.query(
    `SELECT now() AS now,
            (SELECT min(created_at) FROM authenticators WHERE user_id = $1) AS "firstPasskeyAt",
            (SELECT max(used_at) FROM enrollment_invites WHERE user_id = $1 AND recovery) AS "lastRecoveredAt",
            coalesce((SELECT json_agg(json_build_object('createdBy', created_by, 'approvedBy', approved_by))
                        FROM enrollment_invites WHERE user_id = $1 AND used_at IS NOT NULL),
                     '[]'::json) AS "enrolledFrom"`,
    [actor.id],
  )) as Array<{
    now: Date;
    firstPasskeyAt: Date | null;
    lastRecoveredAt: Date | null;
    enrolledFrom: EnrolledFrom[];
  }>;
  const refusal = secondAdminRefusal({
    approverId: actor.id,
    invite: { createdBy: invite.createdBy, userId: invite.userId },
    approverFirstPasskeyAt: facts.firstPasskeyAt,
    approverLastRecoveredAt: facts.lastRecoveredAt,
    approverEnrolledFrom: facts.enrolledFrom,
    now: facts.now,
    recoveryCooldownSeconds: recoveryCooldownSeconds(await policyInForce(manager)),
  });
  if (refusal) throw new DomainError(refusal.code, refusal.message, { inviteId });
  await manager.query(`UPDATE enrollment_invites SET approved_by = $2, approved_at = now() WHERE id = $1`, [
    inviteId,
    actor.id,
  ]);
  await appendAuditEvent(manager, {
    actorId: actor.id,
    action: AuditAction.InviteApproved,
    subjectType: 'user',
    subjectId: invite.userId,
    data: {
      inviteId,
      username: invite.username,
      createdBy: invite.createdBy,
      alert: true,
      evidence,
    },
  });
  return { id: inviteId, username: invite.username, state: 'active', expiresAt: invite.expiresAt };
}

/**
 * The first-admin invite for a fresh installation: created when no admin holds a passkey yet, else null.
 * Runs under an advisory lock so two starts never mint two links.
 */
export async function ensureFirstAdminInvite(
  dataSource: DataSource,
  settings: InviteSettings,
): Promise<CreatedInvite | null> {
  return dataSource.transaction(async (manager) => {
    await manager.query(`SELECT pg_advisory_xact_lock($1)`, [FIRST_ADMIN_LOCK_KEY]);
    const [{ enrolled }] = (await manager.query(
      `SELECT EXISTS (
         SELECT 1 FROM users u JOIN authenticators a ON a.user_id = u.id
          WHERE 'admin' = ANY (u.roles) AND u.status = 'active'
            AND a.removed_at IS NULL AND a.disabled_at IS NULL) AS enrolled`,
    )) as Array<{ enrolled: boolean }>;
    if (enrolled) return null;
    // No admin can sign in, so none can approve: a recovery here is break-glass, flagged and alerted.
    return createInvite(
      manager,
      settings,
      'bootstrap',
      { username: FIRST_ADMIN_USERNAME, displayName: 'First administrator', roles: ['admin'] },
      { privilegedRecovery: 'break-glass' },
    );
  });
}

// An arbitrary constant: serialises first-admin bootstraps across processes.
const FIRST_ADMIN_LOCK_KEY = 7_214_003_118;

/** Locks and returns the usable invite behind a token, or throws 404/409/410 with the reason. */
export async function lockUsableInvite(
  manager: EntityManager,
  token: string,
): Promise<EnrollmentInviteEntity> {
  const [invite] = (await manager.query(
    `SELECT id, user_id AS "userId", created_by AS "createdBy", expires_at AS "expiresAt", used_at AS "usedAt",
            recovery, needs_second_admin AS "needsSecondAdmin", break_glass AS "breakGlass",
            approved_by AS "approvedBy", approved_at AS "approvedAt", now() AS now
       FROM enrollment_invites WHERE token_hash = $1 FOR UPDATE`,
    [tokenHash(token)],
  )) as Array<EnrollmentInviteEntity & { now: Date }>;
  if (!invite) throw new DomainError(ErrorCode.INVITE_NOT_FOUND, 'This enrollment link is not valid');
  if (invite.usedAt)
    throw new DomainError(ErrorCode.INVITE_USED, 'This enrollment link has already been used');
  if (invite.expiresAt <= invite.now) {
    throw new DomainError(
      ErrorCode.INVITE_EXPIRED,
      'This enrollment link has expired; ask an admin for a new one',
    );
  }
  if (invite.needsSecondAdmin && !invite.approvedAt) {
    throw new DomainError(
      ErrorCode.RECOVERY_NEEDS_SECOND_ADMIN,
      'This link works once a second admin has approved it',
    );
  }
  return invite;
}

/** An enrollment link not used yet and not expired, as the admin's People page lists it (issue 17). */
export interface OpenInvite {
  id: string;
  username: string;
  roles: string[];
  createdBy: string;
  createdAt: Date;
  expiresAt: Date;
  recovery: boolean;
  /** `pending-approval` while a second admin must approve it, else `pending` (waiting for enrollment). */
  state: 'pending-approval' | 'pending';
}

/** Every unused, unexpired invite, newest first: none of them is an "active" account yet. */
export async function openInvites(manager: EntityManager): Promise<OpenInvite[]> {
  return (await manager.query(
    `SELECT i.id, u.username, u.roles, coalesce(c.username, i.created_by) AS "createdBy",
            i.created_at AS "createdAt", i.expires_at AS "expiresAt", i.recovery,
            CASE WHEN i.needs_second_admin AND i.approved_at IS NULL THEN 'pending-approval' ELSE 'pending' END
              AS state
       FROM enrollment_invites i JOIN users u ON u.id = i.user_id
       LEFT JOIN users c ON c.id::text = i.created_by
      WHERE i.used_at IS NULL AND i.expires_at > now()
      ORDER BY i.created_at DESC LIMIT 500`,
  )) as OpenInvite[];
}

/**
 * Revokes an unused invite: it expires now, so its link fails like an expired one. Audited; an invite
 * already used or expired answers 409 / 410 and changes nothing.
 */
export async function revokeInvite(
  manager: EntityManager,
  actorId: string,
  inviteId: string,
): Promise<{ id: string; username: string }> {
  const [invite] = (await manager.query(
    `SELECT i.id, i.user_id AS "userId", u.username, i.used_at AS "usedAt", i.expires_at <= now() AS expired
       FROM enrollment_invites i JOIN users u ON u.id = i.user_id WHERE i.id = $1 FOR UPDATE OF i`,
    [inviteId],
  )) as Array<{ id: string; userId: string; username: string; usedAt: Date | null; expired: boolean }>;
  if (!invite) throw new DomainError(ErrorCode.INVITE_NOT_FOUND, 'No such invite');
  if (invite.usedAt) throw new DomainError(ErrorCode.INVITE_USED, 'This invite has already been used');
  if (invite.expired) throw new DomainError(ErrorCode.INVITE_EXPIRED, 'This invite has already expired');
  await manager.query(`UPDATE enrollment_invites SET expires_at = now() WHERE id = $1`, [inviteId]);
  await appendAuditEvent(manager, {
    actorId,
    action: AuditAction.InviteRevoked,
    subjectType: 'user',
    subjectId: invite.userId,
    data: { inviteId, username: invite.username },
  });
  return { id: inviteId, username: invite.username };
}
