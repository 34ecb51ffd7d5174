import type { DataSource, EntityManager } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { appendAuditEvent } from '../audit/audit-log.js';
import { databaseNow } from '../db/clock.js';
import type { EnrollmentInviteEntity, UserRole } from '../db/index.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import { USERNAME_PATTERN } from '../domain/policy.js';
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
  token: string;
  url: string;
  expiresAt: Date;
  userId: string;
  newUser: boolean;
}

/** The username of the first admin, whose invite `npm start` and `cli invite` bootstrap. */
export const FIRST_ADMIN_USERNAME = 'admin';

/**
 * Creates a one-time enrollment invite, and the user if new. An invite for an existing user is a recovery
 * invite (DESIGN §5): it adds a passkey but never changes roles; any earlier unused invite of the user ends.
 */
export async function createInvite(
  manager: EntityManager,
  settings: InviteSettings,
  createdBy: string,
  input: InviteInput,
  /** The admin's `invite.create` step-up, kept in the audit event (none from the CLI or bootstrap). */
  evidence: Record<string, string> | null = null,
): Promise<CreatedInvite> {
  if (!USERNAME_PATTERN.test(input.username)) {
    throw new DomainError(ErrorCode.VALIDATION_FAILED, `"${input.username}" is not a valid username`);
  }
  const now = await databaseNow(manager);
  const roles = [...new Set(input.roles)].sort();
  const [existing] = (await manager.query(
    `SELECT id, roles, status FROM users WHERE username = $1 FOR UPDATE`,
    [input.username],
  )) as Array<{ id: string; roles: UserRole[]; status: string }>;
  let userId: string;
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
      action: 'user.created',
      subjectType: 'user',
      subjectId: userId,
      data: { username: input.username, roles },
    });
  }
  const token = newSecretToken();
  const inviteId = uuidv7();
  const expiresAt = new Date(now.getTime() + settings.ttlSeconds * 1000);
  await manager.query(
    `INSERT INTO enrollment_invites (id, token_hash, user_id, created_by, created_at, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6)`,
    [inviteId, tokenHash(token), userId, createdBy, now, expiresAt],
  );
  await appendAuditEvent(manager, {
    actorId: createdBy,
    action: 'invite.created',
    subjectType: 'user',
    subjectId: userId,
    data: {
      inviteId,
      username: input.username,
      recovery: Boolean(existing),
      // A recovery invite lets whoever holds the link add a passkey to an existing account: loud.
      ...(existing ? { alert: true } : {}),
      expiresAt: expiresAt.toISOString(),
      ...(evidence ? { evidence } : {}),
    },
  });
  return {
    token,
    url: `${settings.publicUrl}/enroll?invite=${token}`,
    expiresAt,
    userId,
    newUser: !existing,
  };
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
    return createInvite(manager, settings, 'bootstrap', {
      username: FIRST_ADMIN_USERNAME,
      displayName: 'First administrator',
      roles: ['admin'],
    });
  });
}

// An arbitrary constant: serialises first-admin bootstraps across processes.
const FIRST_ADMIN_LOCK_KEY = 7_214_003_118;

/** Locks and returns the usable invite behind a token, or throws 404/410 with the reason. */
export async function lockUsableInvite(
  manager: EntityManager,
  token: string,
): Promise<EnrollmentInviteEntity> {
  const [invite] = (await manager.query(
    `SELECT id, user_id AS "userId", expires_at AS "expiresAt", used_at AS "usedAt", now() AS now
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
  return invite;
}
