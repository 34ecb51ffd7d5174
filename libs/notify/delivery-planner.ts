import type { EntityManager } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { findEntitlement, membersOf, type NotificationSettings, type Policy } from '../domain/policy.js';
import { isPersonalChannel } from './channels.js';
import { renderMessage, type MessageFacts } from './messages.js';
import {
  ALWAYS_SENT,
  approverUsernames,
  breakGlassUsernames,
  channelCarries,
  NotificationKind,
  type Audience,
  type Intent,
} from './notification-kinds.js';

/** A person a message may reach. */
interface Recipient {
  id: string;
  username: string;
  email: string | null;
  preferences: { email?: boolean };
}

/** The request an intent is about, as far as a message needs it. */
export interface RequestFacts {
  id: string;
  requesterId: string;
  requester: string;
  entitlementId: string;
  state: string;
  /** A workload's request (issue 21): the group accountable for it, told what its requester would be. */
  ownerGroup: string | null;
}

/** What one plan needs: the policy in force, its notifications section, the public URL. */
export interface PlanContext {
  policy: Policy;
  settings: NotificationSettings;
  publicUrl: string;
}

/** One planned message, before it is inserted. */
interface Planned {
  kind: NotificationKind;
  channel: string;
  recipient: string;
  recipientUserId: string | null;
  requestId: string | null;
  eventSeq: string | null;
  dedupeKey: string;
  status: 'pending' | 'held';
  sendAfter: Date | null;
  body: unknown;
}

/** Loads the request facts of `requestId`, null when there is none. */
export async function requestFacts(
  manager: EntityManager,
  requestId: string | null,
): Promise<RequestFacts | null> {
  if (!requestId) return null;
  const rows = (await manager.query(
    `SELECT r.id, r.requester_id AS "requesterId", u.username AS requester, r.entitlement_id AS "entitlementId",
            r.state, r.requester_workload->>'ownerGroup' AS "ownerGroup"
       FROM elevation_requests r JOIN users u ON u.id = r.requester_id WHERE r.id = $1`,
    [requestId],
  )) as RequestFacts[];
  return rows[0] ?? null;
}

const RECIPIENT_COLUMNS = `id, username, email, notification_preferences AS preferences`;

async function usersByName(manager: EntityManager, usernames: string[]): Promise<Recipient[]> {
  if (usernames.length === 0) return [];
  return (await manager.query(
    `SELECT ${RECIPIENT_COLUMNS} FROM users WHERE status = 'active' AND username = ANY($1) ORDER BY username`,
    [usernames],
  )) as Recipient[];
}

/** The people each audience names, deduplicated. */
async function resolveAudiences(
  manager: EntityManager,
  context: PlanContext,
  intent: Intent,
  request: RequestFacts | null,
): Promise<Recipient[]> {
  const entitlement = request ? findEntitlement(context.policy, request.entitlementId) : undefined;
  const byId = new Map<string, Recipient>();
  const add = (people: Recipient[]) => people.forEach((person) => byId.set(person.id, person));
  for (const audience of intent.audiences as Audience[]) {
    if (audience === 'approvers' && request && entitlement)
      add(await usersByName(manager, approverUsernames(context.policy, entitlement, request.requester)));
    if (audience === 'break-glass-notify' && request && entitlement)
      add(await usersByName(manager, breakGlassUsernames(context.policy, entitlement, request.requester)));
    // A workload reads no messages: its owner group hears what happens to its requests instead.
    if (audience === 'requester' && request?.ownerGroup)
      add(await usersByName(manager, membersOf(context.policy, request.ownerGroup)));
    else if (audience === 'requester' && request)
      add(await usersWhere(manager, `id = $1`, [request.requesterId]));
    if (audience === 'subject-user' && intent.subjectUserId)
      add(await usersWhere(manager, `id = $1`, [intent.subjectUserId]));
    if (audience === 'admins')
      add(await usersWhere(manager, `'admin' = ANY(roles) AND status = 'active'`, []));
  }
  if (intent.kind === NotificationKind.RequestReminder && request) {
    // A reminder is for those who have not decided yet.
    const decided = (await manager.query(`SELECT approver_id AS id FROM approvals WHERE request_id = $1`, [
      request.id,
    ])) as Array<{ id: string }>;
    for (const { id } of decided) byId.delete(id);
  }
  return [...byId.values()];
}

async function usersWhere(manager: EntityManager, where: string, params: unknown[]): Promise<Recipient[]> {
  return (await manager.query(
    `SELECT ${RECIPIENT_COLUMNS} FROM users WHERE ${where}`,
    params,
  )) as Recipient[];
}

/**
 * Plans and inserts the deliveries of one intent: per personal channel one per person with an address
 * (a new request for an approver who heard of another within the digest interval is held for the digest),
 * per shared channel one naming the people. Returns the ids to send now.
 */
export async function planIntent(
  manager: EntityManager,
  context: PlanContext,
  intent: Intent,
  source: {
    eventSeq: string | null;
    dedupeKey: string;
    request: RequestFacts | null;
    username?: string | null;
  },
): Promise<string[]> {
  const { request } = source;
  const recipients = await resolveAudiences(manager, context, intent, request);
  const subjectName =
    source.username ?? recipients.find((person) => person.id === intent.subjectUserId)?.username ?? null;
  const facts: MessageFacts = {
    kind: intent.kind,
    requestId: request?.id ?? null,
    entitlement: request
      ? (findEntitlement(context.policy, request.entitlementId)?.title ?? request.entitlementId)
      : null,
    requester: request?.requester ?? null,
    username: subjectName,
    detail: intent.detail,
  };
  const body = renderMessage(facts, context.publicUrl);
  const planned: Planned[] = [];
  const base = { kind: intent.kind, requestId: request?.id ?? null, eventSeq: source.eventSeq, body };
  for (const [channel, config] of Object.entries(context.settings.channels)) {
    if (!channelCarries(config.events, intent.kind)) continue;
    if (!isPersonalChannel(config)) {
      if (recipients.length === 0) continue;
      const recipient = `#${channel}`;
      planned.push({
        ...base,
        channel,
        recipient,
        recipientUserId: null,
        dedupeKey: source.dedupeKey,
        status: 'pending',
        sendAfter: null,
      });
      continue;
    }
    for (const person of recipients) {
      if (!person.email) continue;
      if (person.preferences?.email === false && !ALWAYS_SENT.has(intent.kind)) continue;
      const held =
        intent.kind === NotificationKind.RequestFiled
          ? await digestDue(manager, channel, person.email, context.settings.digestIntervalSeconds)
          : null;
      planned.push({
        ...base,
        channel,
        recipient: person.email,
        recipientUserId: person.id,
        dedupeKey: source.dedupeKey,
        status: held ? 'held' : 'pending',
        sendAfter: held,
      });
    }
  }
  return insertPlanned(manager, planned);
}

/**
 * When `recipient` already heard of a new request within the interval, the time its digest is due;
 * null when a message may go now.
 */
async function digestDue(
  manager: EntityManager,
  channel: string,
  recipient: string,
  intervalSeconds: number,
): Promise<Date | null> {
  const rows = (await manager.query(
    `SELECT created_at + make_interval(secs => $3) AS due FROM notification_deliveries
      WHERE channel = $1 AND recipient = $2 AND kind IN ('request.filed', 'request.digest')
        AND status <> 'held' AND status <> 'digested' AND status <> 'dropped'
        AND created_at > clock_timestamp() - make_interval(secs => $3)
      ORDER BY created_at DESC LIMIT 1`,
    [channel, recipient, intervalSeconds],
  )) as Array<{ due: Date }>;
  return rows[0]?.due ?? null;
}

async function insertPlanned(manager: EntityManager, planned: Planned[]): Promise<string[]> {
  const toSend: string[] = [];
  for (const item of planned) {
    const rows = (await manager.query(
      `INSERT INTO notification_deliveries
         (id, kind, channel, recipient, recipient_user_id, request_id, event_seq, dedupe_key, status, send_after, body)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
       ON CONFLICT (channel, recipient, dedupe_key) DO NOTHING RETURNING id, status`,
      [
        uuidv7(),
        item.kind,
        item.channel,
        item.recipient,
        item.recipientUserId,
        item.requestId,
        item.eventSeq,
        item.dedupeKey,
        item.status,
        item.sendAfter,
        JSON.stringify(item.body),
      ],
    )) as Array<{ id: string; status: string }>;
    for (const row of rows) if (row.status === 'pending') toSend.push(row.id);
  }
  return toSend;
}

/**
 * Turns the held new-request messages whose digest is due into one digest per recipient and channel,
 * listing the requests still pending; the others are dropped. Returns the digests to send.
 */
export async function buildDueDigests(manager: EntityManager, context: PlanContext): Promise<string[]> {
  const held = (await manager.query(
    `SELECT d.id, d.channel, d.recipient, d.recipient_user_id AS "userId", d.request_id AS "requestId",
            r.state, r.entitlement_id AS "entitlementId", u.username AS requester
       FROM notification_deliveries d
       LEFT JOIN elevation_requests r ON r.id = d.request_id
       LEFT JOIN users u ON u.id = r.requester_id
      WHERE d.status = 'held' AND d.send_after <= clock_timestamp()
      ORDER BY d.created_at
      FOR UPDATE OF d`,
  )) as Array<{
    id: string;
    channel: string;
    recipient: string;
    userId: string | null;
    requestId: string;
    state: string | null;
    entitlementId: string;
    requester: string;
  }>;
  const groups = new Map<string, typeof held>();
  for (const row of held) {
    const key = `${row.channel}\u0000${row.recipient}`;
    groups.set(key, [...(groups.get(key) ?? []), row]);
  }
  const toSend: string[] = [];
  for (const rows of groups.values()) {
    const pending = rows.filter((row) => row.state === 'PENDING');
    const dropped = rows.filter((row) => row.state !== 'PENDING').map((row) => row.id);
    if (dropped.length > 0)
      await manager.query(`UPDATE notification_deliveries SET status = 'dropped' WHERE id = ANY($1)`, [
        dropped,
      ]);
    if (pending.length === 0) continue;
    const digestId = uuidv7();
    const body = renderMessage(
      {
        kind: NotificationKind.RequestDigest,
        requestId: null,
        entitlement: null,
        requester: null,
        username: null,
        detail: `${pending.length} request(s) wait for your decision`,
        items: pending.map((row) => ({
          requestId: row.requestId,
          entitlement: findEntitlement(context.policy, row.entitlementId)?.title ?? row.entitlementId,
          requester: row.requester,
        })),
      },
      context.publicUrl,
    );
    await manager.query(
      `INSERT INTO notification_deliveries (id, kind, channel, recipient, recipient_user_id, dedupe_key, status, body)
       VALUES ($1, 'request.digest', $2, $3, $4, $5, 'pending', $6)`,
      [
        digestId,
        rows[0].channel,
        rows[0].recipient,
        rows[0].userId,
        `digest:${digestId}`,
        JSON.stringify(body),
      ],
    );
    await manager.query(
      `UPDATE notification_deliveries SET status = 'digested', digest_id = $2 WHERE id = ANY($1)`,
      [pending.map((row) => row.id), digestId],
    );
    toSend.push(digestId);
  }
  return toSend;
}
