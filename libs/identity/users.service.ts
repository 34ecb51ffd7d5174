import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { AuditAction } from '../audit/audit-actions.js';
import { appendAuditEvent } from '../audit/audit-log.js';
import type { UserRole, UserStatus } from '../db/index.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import type { Actor } from '../domain/actor.js';
import type { AfterCommit } from '../elevation/after-commit.js';
import { unlockEntitlement } from '../elevation/anti-fatigue.js';
import { RequestsService } from '../elevation/requests.service.js';
import { evidenceForAudit, type StepUpEvidence } from '../webauthn/evidence.js';
import { authenticatorsOf } from './authenticator-store.js';
import { personDetail, type PersonDetail } from './person-detail.js';
import { SessionsService } from './sessions.service.js';

/** The user named `username`, row-locked (one change to a person at a time); 404 USER_NOT_FOUND otherwise. */
async function lockUser(manager: EntityManager, username: string): Promise<{ id: string }> {
  const [user] = (await manager.query(`SELECT id FROM users WHERE username = $1 FOR UPDATE`, [
    username,
  ])) as Array<{ id: string }>;
  if (!user) throw new DomainError(ErrorCode.USER_NOT_FOUND, `No user "${username}"`);
  return user;
}

/** A user as admins list them. */
export interface UserListItem {
  id: string;
  username: string;
  displayName: string;
  roles: UserRole[];
  status: UserStatus;
  /** Passkeys neither removed nor disabled. */
  passkeys: number;
  /** Sessions neither ended nor expired. */
  sessions: number;
}

/** Accounts as admins see and change them; changes that reach across sessions and requests run in one transaction. */
@Injectable()
export class UsersService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly sessions: SessionsService,
    private readonly requests: RequestsService,
  ) {}

  /**
   * Suspends a user at once: sessions end, pending and approved requests are cancelled and active grants
   * revoked now (their revocation jobs run after commit). Reinstating only lets them sign in again.
   */
  async setStatus(
    admin: Actor,
    username: string,
    status: 'active' | 'suspended',
    reason: string,
    evidence: StepUpEvidence,
  ): Promise<{ status: string; sessionsEnded: number; requestsEnded: number }> {
    let suspended: AfterCommit | null = null;
    const outcome = await this.dataSource.transaction(async (manager) => {
      const [user] = (await manager.query(`SELECT id, status FROM users WHERE username = $1 FOR UPDATE`, [
        username,
      ])) as Array<{ id: string; status: string }>;
      if (!user) throw new DomainError(ErrorCode.USER_NOT_FOUND, `No user "${username}"`);
      if (user.id === admin.id)
        throw new DomainError(ErrorCode.FORBIDDEN, 'You cannot change your own status');
      if (user.status === status) return { status, sessionsEnded: 0, requestsEnded: 0 };
      await manager.query(`UPDATE users SET status = $2 WHERE id = $1`, [user.id, status]);
      const audited = () =>
        appendAuditEvent(manager, {
          actorId: admin.id,
          action: status === 'suspended' ? AuditAction.UserSuspended : AuditAction.UserReinstated,
          subjectType: 'user',
          subjectId: user.id,
          data: { username, reason, evidence: evidenceForAudit(evidence) },
        });
      if (status === 'active') {
        await audited();
        return { status, sessionsEnded: 0, requestsEnded: 0 };
      }
      // Requests and grants are locked before the first audit append (which locks the chain head), the
      // order every other path takes; the other way round deadlocks against a concurrent decision.
      const [{ open }] = (await manager.query(
        `SELECT count(*)::int AS open FROM elevation_requests
          WHERE requester_id = $1 AND state IN ('PENDING', 'APPROVED', 'ACTIVE')`,
        [user.id],
      )) as Array<{ open: number }>;
      suspended = await this.requests.endAllOfUser(manager, user.id, admin.id, 'suspended');
      await audited();
      const sessionsEnded = await this.sessions.endAllForUser(manager, admin.id, user.id, 'suspended');
      return { status, sessionsEnded, requestsEnded: open };
    });
    if (suspended) await this.requests.afterSuspension(suspended);
    return outcome;
  }

  /** Users by username with their usable passkeys and live sessions; keyset-paginated by username. */
  async list(query: {
    cursor: string | null;
    limit: number;
  }): Promise<{ items: UserListItem[]; nextCursor: string | null }> {
    const rows = (await this.dataSource.query(
      `SELECT u.id, u.username, u.display_name AS "displayName", u.roles, u.status,
              (SELECT count(*)::int FROM authenticators a
                WHERE a.user_id = u.id AND a.removed_at IS NULL AND a.disabled_at IS NULL) AS passkeys,
              (SELECT count(*)::int FROM sessions s WHERE s.user_id = u.id AND s.ended_at IS NULL
                 AND s.expires_at > now()) AS sessions
         FROM users u WHERE ($1::text IS NULL OR u.username > $1) ORDER BY u.username LIMIT $2`,
      [query.cursor, query.limit + 1],
    )) as UserListItem[];
    const items = rows.slice(0, query.limit);
    return { items, nextCursor: rows.length > query.limit ? items[items.length - 1].username : null };
  }

  /** Ends every session of a user at once (an admin, for a lost laptop); audited. Returns how many ended. */
  async endSessions(admin: Actor, username: string): Promise<number> {
    return this.dataSource.transaction(async (manager) => {
      const [user] = (await manager.query(`SELECT id FROM users WHERE username = $1`, [username])) as Array<{
        id: string;
      }>;
      if (!user) throw new DomainError(ErrorCode.USER_NOT_FOUND, `No user "${username}"`);
      return this.sessions.endAllForUser(manager, admin.id, user.id, 'ended-by-admin');
    });
  }

  /** One person with groups, roles, passkeys and live sessions (personDetail). */
  person(username: string): Promise<PersonDetail> {
    return personDetail(this.dataSource.manager, username);
  }

  /**
   * Disables one of someone else's passkeys (lost or stolen) after an `authenticator.disable` step-up: it can
   * no longer sign in or confirm anything, and the sessions it opened end. Disabling the last usable one is
   * allowed, since refusing would leave a stolen key working, but loud: `lastUsable` and an alert in the event.
   */
  async disableAuthenticator(
    admin: Actor,
    username: string,
    authenticatorId: string,
    reason: string,
    evidence: StepUpEvidence,
  ): Promise<{ disabledAt: string; sessionsEnded: number; lastUsable: boolean }> {
    return this.dataSource.transaction(async (manager) => {
      const user = await lockUser(manager, username);
      if (user.id === admin.id) {
        throw new DomainError(ErrorCode.FORBIDDEN, 'Remove your own passkeys on your Passkeys page');
      }
      const owned = await authenticatorsOf(manager, user.id);
      const target = owned.find((item) => item.id === authenticatorId);
      if (!target)
        throw new DomainError(ErrorCode.AUTHENTICATOR_NOT_FOUND, `${username} has no such passkey`);
      if (target.disabledAt) {
        throw new DomainError(ErrorCode.AUTHENTICATOR_ALREADY_DISABLED, 'This passkey is already disabled');
      }
      const lastUsable = !owned.some((item) => item.id !== authenticatorId && !item.disabledAt);
      const [[{ disabledAt }]] = (await manager.query(
        `UPDATE authenticators SET disabled_at = now(), disabled_reason = $2 WHERE id = $1
          RETURNING disabled_at AS "disabledAt"`,
        [authenticatorId, `disabled by an admin: ${reason}`],
      )) as [Array<{ disabledAt: Date }>, number];
      const [ended] = (await manager.query(
        `UPDATE sessions SET ended_at = now(), end_reason = 'authenticator-disabled'
          WHERE authenticator_id = $1 AND ended_at IS NULL RETURNING id`,
        [authenticatorId],
      )) as [Array<{ id: string }>, number];
      await appendAuditEvent(manager, {
        actorId: admin.id,
        action: AuditAction.AuthenticatorDisabled,
        subjectType: 'authenticator',
        subjectId: authenticatorId,
        data: {
          reason: 'admin',
          userId: user.id,
          credentialId: target.credentialId,
          detail: reason,
          lastUsable,
          ...(lastUsable ? { alert: true as const } : {}),
          evidence: evidenceForAudit(evidence),
        },
      });
      return { disabledAt: disabledAt.toISOString(), sessionsEnded: ended.length, lastUsable };
    });
  }

  /** Ends one session of a user (admin); audited. 404 SESSION_NOT_FOUND when it is not theirs or not live. */
  async endSession(admin: Actor, username: string, sessionId: string): Promise<void> {
    await this.dataSource.transaction(async (manager) => {
      const user = await lockUser(manager, username);
      const [ended] = (await manager.query(
        `UPDATE sessions SET ended_at = now(), end_reason = 'ended-by-admin'
          WHERE id = $1 AND user_id = $2 AND ended_at IS NULL RETURNING id`,
        [sessionId, user.id],
      )) as [Array<{ id: string }>, number];
      if (ended.length === 0) throw new DomainError(ErrorCode.SESSION_NOT_FOUND, 'No such live session');
      await appendAuditEvent(manager, {
        actorId: admin.id,
        action: AuditAction.SessionEnded,
        subjectType: 'session',
        subjectId: sessionId,
        data: { reason: 'ended-by-admin', userId: user.id },
      });
    });
  }

  /** Lifts a lockout from repeated denials (admin), audited. */
  async unlock(admin: Actor, username: string, entitlementId: string): Promise<void> {
    await this.dataSource.transaction(async (manager) => {
      const [user] = (await manager.query(`SELECT id FROM users WHERE username = $1`, [username])) as Array<{
        id: string;
      }>;
      if (!user) throw new DomainError(ErrorCode.USER_NOT_FOUND, `No user "${username}"`);
      await unlockEntitlement(manager, admin, user.id, entitlementId);
    });
  }
}
