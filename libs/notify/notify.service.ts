import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { DataSource, type EntityManager } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { canonicalJson } from '../domain/canonical-json.js';
import type { NotificationChannelConfig } from '../domain/policy.js';
import { deliverJobId, JobName, QueueName, type JobPayloads } from '../jobs/jobs.js';
import { PolicyService } from '../policy/policy.service.js';
import { buildSender, type Sender } from './channels.js';
import { buildDueDigests, planIntent, requestFacts, type PlanContext } from './delivery-planner.js';
import type { Message } from './messages.js';
import { intentsOf, NotificationKind, type AuditRow, type Intent } from './notification-kinds.js';

const SCAN_BATCH = 500;
const ENDING_SOON_SECONDS = 5 * 60;

/** The outcome of one delivery attempt, for the caller's metric. */
export type DeliveryOutcome = 'sent' | 'retry' | 'failed' | 'skipped';

/**
 * Notifications (issue 18). The audit log is the outbox: `scan` reads the events after the stored cursor,
 * plans their deliveries and moves the cursor in one transaction (so nothing committed is lost or planned
 * twice), then enqueues the sends; `deliver` sends one with BullMQ's retries. Nothing here ever blocks or
 * rolls back a state change: it runs after the fact, in the worker.
 */
@Injectable()
export class NotifyService {
  private readonly logger = new Logger('Notify');
  private readonly senders = new Map<string, Sender>();

  constructor(
    private readonly dataSource: DataSource,
    private readonly policies: PolicyService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @InjectQueue(QueueName.Notify) private readonly queue: Queue,
  ) {}

  /** Plans what new audit events and the clock call for; returns how many deliveries it enqueued. */
  async scan(): Promise<number> {
    const { policy } = await this.policies.inForce();
    const settings = policy.notifications ?? null;
    const context: PlanContext | null = settings
      ? { policy, settings, publicUrl: this.config.http.publicUrl }
      : null;
    const planned = await this.dataSource.transaction(async (manager) => {
      // SKIP LOCKED: another worker scanning now covers these events.
      const [cursor] = (await manager.query(
        `SELECT seq::text AS seq FROM notification_cursor WHERE id = 1 FOR UPDATE SKIP LOCKED`,
      )) as Array<{ seq: string }>;
      if (!cursor) return [];
      const events = await this.eventsAfter(manager, cursor.seq);
      const ids: string[] = [];
      if (context) {
        for (const event of events) ids.push(...(await this.planEvent(manager, context, event)));
        ids.push(...(await this.planTimed(manager, context)));
        ids.push(...(await buildDueDigests(manager, context)));
      }
      if (events.length > 0)
        await manager.query(`UPDATE notification_cursor SET seq = $1 WHERE id = 1`, [events.at(-1)!.seq]);
      return ids;
    });
    const stale = context ? await this.stalePending() : [];
    await this.enqueue([...planned, ...stale]);
    return planned.length;
  }

  private async eventsAfter(manager: EntityManager, seq: string): Promise<AuditRow[]> {
    return (await manager.query(
      `SELECT seq::text AS seq, actor_id AS "actorId", action, subject_type AS "subjectType",
              subject_id AS "subjectId", request_id AS "requestId", data
         FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT ${SCAN_BATCH}`,
      [seq],
    )) as AuditRow[];
  }

  private async planEvent(manager: EntityManager, context: PlanContext, event: AuditRow): Promise<string[]> {
    const ids: string[] = [];
    for (const intent of intentsOf(event)) {
      const request = await requestFacts(manager, event.requestId);
      // One message per approver per request, whichever event (filing, reminder) asks first.
      const dedupeKey =
        intent.kind === NotificationKind.RequestFiled && request
          ? `request:${request.id}:filed`
          : `event:${event.seq}`;
      ids.push(...(await planIntent(manager, context, intent, { eventSeq: event.seq, dedupeKey, request })));
    }
    return ids;
  }

  /** Clock-driven messages: access ending within 5 min, one reminder near a pending deadline. */
  private async planTimed(manager: EntityManager, context: PlanContext): Promise<string[]> {
    const ids: string[] = [];
    const ending = (await manager.query(
      `SELECT id FROM elevation_requests
        WHERE state = 'ACTIVE' AND ends_at > clock_timestamp()
          AND ends_at <= clock_timestamp() + make_interval(secs => $1)
          AND ends_at - activated_at > make_interval(secs => $1)`,
      [ENDING_SOON_SECONDS],
    )) as Array<{ id: string }>;
    for (const { id } of ending) {
      const intent = timedIntent(NotificationKind.RequestEndingSoon, 'requester');
      const request = await requestFacts(manager, id);
      ids.push(
        ...(await planIntent(manager, context, intent, {
          eventSeq: null,
          dedupeKey: `request:${id}:ending-soon`,
          request,
        })),
      );
    }
    const nearDeadline = (await manager.query(
      `SELECT id FROM elevation_requests
        WHERE state = 'PENDING' AND pending_until > clock_timestamp()
          AND pending_until <= clock_timestamp() + make_interval(secs => $1)
          AND pending_until - created_at > make_interval(secs => $1 * 2)`,
      [context.settings.reminderBeforeSeconds],
    )) as Array<{ id: string }>;
    for (const { id } of nearDeadline) {
      const intent = timedIntent(NotificationKind.RequestReminder, 'approvers');
      const request = await requestFacts(manager, id);
      ids.push(
        ...(await planIntent(manager, context, intent, {
          eventSeq: null,
          dedupeKey: `request:${id}:reminder`,
          request,
        })),
      );
    }
    return ids;
  }

  /** Pending deliveries whose job Redis may have lost (older than a minute, never tried): sent again. */
  private async stalePending(): Promise<string[]> {
    const rows = (await this.dataSource.query(
      `SELECT id FROM notification_deliveries
        WHERE status = 'pending' AND attempts = 0 AND created_at < clock_timestamp() - interval '1 minute'
        ORDER BY created_at LIMIT 100`,
    )) as Array<{ id: string }>;
    return rows.map((row) => row.id);
  }

  private async enqueue(ids: string[]): Promise<void> {
    const payload = (deliveryId: string): JobPayloads[JobName.DeliverNotification] => ({ deliveryId });
    await Promise.all(
      ids.map((id) =>
        this.queue.add(JobName.DeliverNotification, payload(id), {
          jobId: deliverJobId(id),
          attempts: this.config.notify.attempts,
          backoff: { type: 'exponential', delay: this.config.notify.backoffMs, jitter: 0.5 },
          removeOnComplete: true,
          removeOnFail: true,
        }),
      ),
    );
  }

  /**
   * Sends one delivery; records the attempt. A failed attempt with attempts left answers `retry` with its
   * error (the caller throws it, so BullMQ retries with backoff); the last failed attempt marks it failed.
   */
  async deliver(
    deliveryId: string,
    attempt: number,
  ): Promise<{ channel: string; outcome: DeliveryOutcome; error?: unknown }> {
    const [row] = (await this.dataSource.query(
      `SELECT channel, recipient, status, body FROM notification_deliveries WHERE id = $1`,
      [deliveryId],
    )) as Array<{ channel: string; recipient: string; status: string; body: Message }>;
    if (!row || row.status !== 'pending') return { channel: row?.channel ?? '', outcome: 'skipped' };
    const final = attempt >= this.config.notify.attempts;
    try {
      const sender = await this.senderFor(row.channel);
      await sender({ deliveryId, recipient: row.recipient, message: row.body });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      await this.dataSource.query(
        `UPDATE notification_deliveries SET attempts = attempts + 1, last_error = $2,
                status = CASE WHEN $3 THEN 'failed' ELSE status END
          WHERE id = $1 AND status = 'pending'`,
        [deliveryId, message.slice(0, 1000), final],
      );
      if (final) {
        this.logger.warn(
          `Notification ${deliveryId} on ${row.channel} failed after ${attempt} attempts: ${message}`,
        );
        return { channel: row.channel, outcome: 'failed' };
      }
      return { channel: row.channel, outcome: 'retry', error };
    }
    await this.dataSource.query(
      `UPDATE notification_deliveries SET attempts = attempts + 1, status = 'sent', sent_at = clock_timestamp(),
              last_error = NULL
        WHERE id = $1 AND status = 'pending'`,
      [deliveryId],
    );
    return { channel: row.channel, outcome: 'sent' };
  }

  private async senderFor(channel: string): Promise<Sender> {
    const { policy } = await this.policies.inForce();
    const config: NotificationChannelConfig | undefined = policy.notifications?.channels[channel];
    if (!config) throw new Error(`Channel "${channel}" is no longer in the policy in force`);
    const key = `${channel}:${canonicalJson(config)}`;
    let sender = this.senders.get(key);
    if (!sender) {
      sender = buildSender(
        channel,
        config,
        (name) => this.config.connectorSecret(name),
        this.config.webhookTimeoutMs,
      );
      this.senders.set(key, sender);
    }
    return sender;
  }
}

function timedIntent(kind: NotificationKind, audience: 'requester' | 'approvers'): Intent {
  return { kind, audiences: [audience], subjectUserId: null, detail: null };
}
