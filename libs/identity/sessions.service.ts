import { Inject, Injectable } from '@nestjs/common';
import type { Pool } from 'pg';
import { DataSource, type EntityManager } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { AuditAction } from '../audit/audit-actions.js';
import { appendAuditEvent } from '../audit/audit-log.js';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import type { UserRole } from '../db/index.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import type { Actor } from '../domain/actor.js';
import { NOTICE_PENDING } from './recovery-notices.js';
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
  /** Whether this session's passkey has a recovery notice to see (GET /api/me then lists them). */
  noticesPending: boolean;
}

const MAX_USER_AGENT = 512;
/** A read moves a session's idle clock at most this often. */
const MAX_TOUCH_INTERVAL_SECONDS = 60;

/** A usable session `s` of user `u`, idle for less than $2 seconds: the one rule for every check. */
const SESSION_USABLE = `s.ended_at IS NULL AND u.status = 'active'
    AND s.expires_at > now() AND s.last_seen_at > now() - make_interval(secs => $2)
    AND NOT EXISTS (SELECT 1 FROM authenticators a WHERE a.id = s.authenticator_id
                      AND (a.disabled_at IS NOT NULL OR a.removed_at IS NOT NULL))`;

/** The live session behind a token hash ($1), with its user, under the idle ($2) and touch ($3) limits. */
const SESSION_LOOKUP = `SELECT s.id AS "sessionId", u.id, u.username, u.display_name AS "displayName", u.roles,
        s.last_seen_at <= now() - make_interval(secs => $3) AS stale,
        EXISTS (SELECT 1 FROM authenticators a JOIN enrollment_invites i ON ${NOTICE_PENDING}
                 WHERE a.id = s.authenticator_id) AS "noticesPending"
   FROM sessions s JOIN users u ON u.id = s.user_id
  WHERE s.token_hash = $1 AND ${SESSION_USABLE}`;

interface SessionRow {
  sessionId: string;
  id: string;
  username: string;
  displayName: string;
  roles: UserRole[];
  stale: boolean;
  noticesPending: boolean;
}

/** Opaque, hashed, server-side sessions with absolute and idle limits taken on PostgreSQL's clock. */
@Injectable()
export class SessionsService {
  /** Idle-clock updates in flight, by session id. */
  private readonly touching = new Map<string, Promise<void>>();

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
   * The signed-in actor for a cookie token; 401 when unknown, ended, idle for too long, past its absolute
   * limit, when its passkey is disabled or removed, or when the user is suspended. Every check runs on the
   * row as it is now (one indexed read, no write), so an ended session or a suspended user is refused at
   * once. The idle clock (`last_seen_at`) is moved only once it is `touchIntervalSeconds` old: a read
   * writes at most once a minute per session, and a session ends at most that much before its idle limit.
   * `touch: false` (background traffic: live-update streams, polling) checks the session without moving
   * its idle clock, so an open tab alone never keeps a session alive.
   */
  async authenticate(token: string, { touch = true }: { touch?: boolean } = {}): Promise<SessionActor> {
    const hash = tokenHash(token);
    // Named, so each pooled connection plans it once: planning took more than running it.
    const pool = (this.dataSource.driver as unknown as { master: Pool }).master;
    const {
      rows: [row],
    } = await pool.query<SessionRow>({
      name: 'session-lookup',
      text: SESSION_LOOKUP,
      values: [hash, this.config.sessions.idleSeconds, this.touchIntervalSeconds],
    });
    if (!row) return this.refuse(hash);
    const { sessionId, stale, noticesPending, ...actor } = row;
    if (stale && touch) await this.touch(sessionId);
    return { sessionId, actor, noticesPending };
  }

  /** Which of these sessions are still usable (as authenticate() judges); reading them moves no idle clock. */
  async usableSessionIds(sessionIds: string[]): Promise<Set<string>> {
    if (sessionIds.length === 0) return new Set();
    const rows = (await this.dataSource.query(
      `SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id
        WHERE s.id = ANY($1::uuid[]) AND ${SESSION_USABLE}`,
      [sessionIds, this.config.sessions.idleSeconds],
    )) as Array<{ id: string }>;
    return new Set(rows.map((row) => row.id));
  }

  /** How old `last_seen_at` may get before a call moves it: a minute, or a tenth of a shorter idle limit. */
  private get touchIntervalSeconds(): number {
    return Math.min(MAX_TOUCH_INTERVAL_SECONDS, this.config.sessions.idleSeconds / 10);
  }

  /**
   * Moves the idle clock of a live session, once for all the calls that found it stale at the same time;
   * a session that timed out meanwhile stays as it is (the next call ends it).
   */
  private touch(sessionId: string): Promise<void> {
    let pending = this.touching.get(sessionId);
    if (!pending) {
      pending = this.dataSource
        .query(
          `UPDATE sessions SET last_seen_at = now()
            WHERE id = $1 AND ended_at IS NULL AND expires_at > now()
              AND last_seen_at > now() - make_interval(secs => $2)
              AND last_seen_at <= now() - make_interval(secs => $3)`,
          [sessionId, this.config.sessions.idleSeconds, this.touchIntervalSeconds],
        )
        .then(() => undefined)
        .finally(() => this.touching.delete(sessionId));
      this.touching.set(sessionId, pending);
    }
    return pending;
  }

  /** Not usable: ends it for good if it merely timed out, so it can never come back; always throws. */
  private async refuse(hash: Buffer): Promise<never> {
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

  /**
   * Sign-in rotates the session: the live session whose token the browser presented (a planted cookie, or
   * the person's own earlier sign-in) is ended, so no token chosen or seen before the sign-in stays valid.
   */
  async endPresented(actorId: string, token: string | null): Promise<void> {
    if (!token) return;
    await this.dataSource.transaction(async (manager) => {
      const [rows] = (await manager.query(
        `UPDATE sessions SET ended_at = now(), end_reason = 'replaced-at-sign-in'
          WHERE token_hash = $1 AND ended_at IS NULL RETURNING id, user_id AS "userId"`,
        [tokenHash(token)],
      )) as [Array<{ id: string; userId: string }>, number];
      if (rows.length === 0) return;
      // Whose session it was: a planted cookie, or another person's session left in this browser.
      await appendAuditEvent(manager, {
        actorId,
        action: AuditAction.SessionEnded,
        subjectType: 'session',
        subjectId: rows[0].id,
        data: { reason: 'replaced-at-sign-in', userId: rows[0].userId },
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
