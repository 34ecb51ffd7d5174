import { Inject, Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { AuditAction } from '../audit/audit-actions.js';
import { appendAuditEvent } from '../audit/audit-log.js';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import type { UserRole } from '../db/index.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import type { Actor } from '../domain/actor.js';
import { newSecretToken, tokenHash } from './tokens.js';

/** Where a request came from, recorded with sessions and failures. */
export interface ClientInfo {
  ip: string | null;
  userAgent: string | null;
}

/** A signed-in caller: the actor and the session that carries them. */
export interface SessionActor {
  actor: Actor;
  sessionId: string;
}

const MAX_USER_AGENT = 512;

/** Opaque, hashed, server-side sessions with absolute and idle limits taken on PostgreSQL's clock. */
@Injectable()
export class SessionsService {
  constructor(
    private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** Starts a session inside the caller's transaction (enrollment or sign-in); returns the cookie token. */
  async start(
    manager: EntityManager,
    userId: string,
    authenticatorId: string,
    client: ClientInfo,
  ): Promise<{ token: string; sessionId: string; expiresAt: Date }> {
    const token = newSecretToken();
    const sessionId = uuidv7();
    const [{ expires_at: expiresAt }] = (await manager.query(
      `INSERT INTO sessions (id, token_hash, user_id, authenticator_id, created_at, last_seen_at, expires_at, ip, user_agent)
       VALUES ($1, $2, $3, $4, now(), now(), now() + make_interval(secs => $5), $6, $7)
       RETURNING expires_at`,
      [
        sessionId,
        tokenHash(token),
        userId,
        authenticatorId,
        this.config.sessions.absoluteSeconds,
        client.ip,
        client.userAgent?.slice(0, MAX_USER_AGENT) ?? null,
      ],
    )) as Array<{ expires_at: Date }>;
    await appendAuditEvent(manager, {
      actorId: userId,
      action: AuditAction.SessionStarted,
      subjectType: 'session',
      subjectId: sessionId,
      data: { authenticatorId, ip: client.ip, expiresAt: expiresAt.toISOString() },
    });
    return { token, sessionId, expiresAt };
  }

  /**
   * The signed-in actor for a cookie token, touching its idle clock; 401 when unknown, ended, idle for
   * too long, past its absolute limit, or when the user is suspended.
   */
  async authenticate(token: string): Promise<SessionActor> {
    const hash = tokenHash(token);
    // TypeORM answers an UPDATE with [rows, affected].
    const [[row]] = (await this.dataSource.query(
      `UPDATE sessions s SET last_seen_at = now()
         FROM users u
        WHERE s.token_hash = $1 AND s.ended_at IS NULL AND u.id = s.user_id AND u.status = 'active'
          AND s.expires_at > now() AND s.last_seen_at > now() - make_interval(secs => $2)
          AND NOT EXISTS (SELECT 1 FROM authenticators a WHERE a.id = s.authenticator_id
                            AND (a.disabled_at IS NOT NULL OR a.removed_at IS NOT NULL))
        RETURNING s.id AS "sessionId", u.id, u.username, u.display_name AS "displayName", u.roles`,
      [hash, this.config.sessions.idleSeconds],
    )) as [
      Array<{ sessionId: string; id: string; username: string; displayName: string; roles: UserRole[] }>,
      number,
    ];
    if (row) {
      const { sessionId, ...actor } = row;
      return { sessionId, actor };
    }
    // Not usable: end it for good if it merely timed out, so it can never come back.
    const ended = (await this.dataSource.query(
      `UPDATE sessions SET ended_at = now(),
              end_reason = CASE WHEN expires_at <= now() THEN 'absolute-timeout' ELSE 'idle-timeout' END
        WHERE token_hash = $1 AND ended_at IS NULL
          AND (expires_at <= now() OR last_seen_at <= now() - make_interval(secs => $2))
        RETURNING id`,
      [hash, this.config.sessions.idleSeconds],
    )) as [Array<{ id: string }>, number];
    if (ended[0].length > 0)
      throw new DomainError(ErrorCode.SESSION_EXPIRED, 'Your session has expired; sign in again');
    throw new DomainError(ErrorCode.UNAUTHENTICATED, 'Sign in first');
  }

  /** Ends one session (logout). */
  async end(actor: Actor, sessionId: string): Promise<void> {
    await this.dataSource.transaction(async (manager) => {
      await manager.query(
        `UPDATE sessions SET ended_at = now(), end_reason = 'logout' WHERE id = $1 AND ended_at IS NULL`,
        [sessionId],
      );
      await appendAuditEvent(manager, {
        actorId: actor.id,
        action: AuditAction.SessionEnded,
        subjectType: 'session',
        subjectId: sessionId,
        data: { reason: 'logout' },
      });
    });
  }

  /** Ends every live session of a user (admin action, suspension); returns how many ended. */
  async endAllForUser(
    manager: EntityManager,
    actorId: string,
    userId: string,
    reason: string,
  ): Promise<number> {
    const [rows] = (await manager.query(
      `UPDATE sessions SET ended_at = now(), end_reason = $2 WHERE user_id = $1 AND ended_at IS NULL RETURNING id`,
      [userId, reason],
    )) as [Array<{ id: string }>, number];
    await appendAuditEvent(manager, {
      actorId,
      action: AuditAction.SessionsEnded,
      subjectType: 'user',
      subjectId: userId,
      data: { reason, count: rows.length },
    });
    return rows.length;
  }
}
