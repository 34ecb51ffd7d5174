import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { appendAuditEvent } from '../audit/audit-log.js';
import { AuditAction } from '../audit/audit-actions.js';
import type { Actor } from '../domain/actor.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import { PolicyService } from '../policy/policy.service.js';
import { evidenceForAudit, type StepUpEvidence } from '../webauthn/evidence.js';

/** A person's notification settings as the settings page shows them. */
export interface NotificationSettingsView {
  email: string | null;
  preferences: { email: boolean };
  /** The channels of the policy in force, by name and type only (never a URL or secret). */
  channels: Array<{ name: string; type: string }>;
  digestIntervalSeconds: number | null;
}

/** One delivery as admins see it (GET /api/admin/notifications). */
export interface DeliveryView {
  id: string;
  createdAt: string;
  kind: string;
  channel: string;
  recipient: string;
  requestId: string | null;
  status: string;
  attempts: number;
  lastError: string | null;
  sentAt: string | null;
}

/** Where notifications reach a person and what they want (issue 18), and the admins' delivery log. */
@Injectable()
export class NotificationSettingsService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly policies: PolicyService,
  ) {}

  /** The caller's settings. */
  async settingsOf(userId: string): Promise<NotificationSettingsView> {
    const [row] = (await this.dataSource.query(
      `SELECT email, notification_preferences AS preferences FROM users WHERE id = $1`,
      [userId],
    )) as Array<{ email: string | null; preferences: { email?: boolean } }>;
    const { policy } = await this.policies.inForce();
    const channels = Object.entries(policy.notifications?.channels ?? {}).map(([name, config]) => ({
      name,
      type: config.type,
    }));
    return {
      email: row?.email ?? null,
      preferences: { email: row?.preferences?.email !== false },
      channels,
      digestIntervalSeconds: policy.notifications?.digestIntervalSeconds ?? null,
    };
  }

  /** Sets (or clears) a person's e-mail address, with the step-up the caller verified; audited. */
  async setEmail(
    actor: Actor,
    username: string,
    email: string | null,
    evidence: StepUpEvidence,
  ): Promise<void> {
    await this.dataSource.transaction(async (manager) => {
      const [user] = (await manager.query(`SELECT id FROM users WHERE username = $1 FOR UPDATE`, [
        username,
      ])) as Array<{ id: string }>;
      if (!user) throw new DomainError(ErrorCode.USER_NOT_FOUND, `No user "${username}"`);
      await manager.query(`UPDATE users SET email = $2 WHERE id = $1`, [user.id, email]);
      await appendAuditEvent(manager, {
        actorId: actor.id,
        action: AuditAction.UserEmailChanged,
        subjectType: 'user',
        subjectId: user.id,
        data: {
          username,
          emailSet: email !== null,
          byAdmin: actor.username !== username,
          evidence: evidenceForAudit(evidence),
        },
      });
    });
  }

  /** The caller's channel preferences (security notices are sent whatever they say). */
  async setPreferences(userId: string, preferences: { email: boolean }): Promise<void> {
    await this.dataSource.query(`UPDATE users SET notification_preferences = $2 WHERE id = $1`, [
      userId,
      JSON.stringify({ email: preferences.email }),
    ]);
  }

  /** Recent deliveries, newest first, optionally of one status; keyset by id. */
  async deliveries(filter: { status: string | null; limit: number; cursor: string | null }) {
    const rows = (await this.dataSource.query(
      `SELECT id, created_at AS "createdAt", kind, channel, recipient, request_id AS "requestId", status,
              attempts, last_error AS "lastError", sent_at AS "sentAt"
         FROM notification_deliveries
        WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR id < $2)
        ORDER BY id DESC LIMIT $3`,
      [filter.status, filter.cursor, filter.limit + 1],
    )) as Array<Omit<DeliveryView, 'createdAt' | 'sentAt'> & { createdAt: Date; sentAt: Date | null }>;
    const page = rows.slice(0, filter.limit);
    return {
      items: page.map((row): DeliveryView => ({
        ...row,
        createdAt: row.createdAt.toISOString(),
        sentAt: row.sentAt?.toISOString() ?? null,
      })),
      nextCursor: rows.length > filter.limit ? page.at(-1)!.id : null,
    };
  }

  /** Unseen work for the navigation: pending requests the caller may decide and has not opened. */
  async unseenOf(userId: string, pendingIds: string[]): Promise<number> {
    if (pendingIds.length === 0) return 0;
    const [{ seen }] = (await this.dataSource.query(
      `SELECT count(*)::int AS seen FROM request_views WHERE user_id = $1 AND request_id = ANY($2::uuid[])`,
      [userId, pendingIds],
    )) as Array<{ seen: number }>;
    return pendingIds.length - seen;
  }
}
