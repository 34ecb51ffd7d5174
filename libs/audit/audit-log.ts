import type { EntityManager } from 'typeorm';
import type { AuditEventEntity } from '../db/index.js';
import type { AuditAction, AuditPayloads } from './audit-actions.js';
import { deferAuditEvent } from './audit-flush.js';
import type { ChainedEvent } from './chain.js';

export { flushAuditEvents } from './audit-flush.js';

/** Who did what to which subject; `at` and `seq` are assigned by the append. `data` is the action's payload. */
export interface AuditInput<A extends AuditAction = AuditAction> {
  /** A user id, or `system` for the worker and the broker itself. */
  actorId: string;
  action: A;
  subjectType: string;
  subjectId: string;
  requestId?: string | null;
  data: AuditPayloads[A];
}

/** An event's fields as hashed and stored: every field present, every string storable. */
export type StorableAuditInput = Pick<
  ChainedEvent,
  'actorId' | 'action' | 'subjectType' | 'subjectId' | 'requestId' | 'data'
>;

/** Any event's fields before sanitising (the sanitiser is indifferent to the contract AuditInput holds). */
type UnsanitisedInput = Omit<StorableAuditInput, 'requestId' | 'data'> & {
  requestId?: string | null;
  data?: object;
};

export const SYSTEM_ACTOR = 'system';

// U+0000 and UTF-16 surrogates without their pair: PostgreSQL text refuses the first, jsonb both (and a lone
// surrogate would be hashed as a JSON escape but stored as U+FFFD by the driver's UTF-8 encoding).
// eslint-disable-next-line no-control-regex -- finding U+0000 is the point
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** `text` with what PostgreSQL text and jsonb cannot hold (U+0000, lone surrogates) replaced by U+FFFD. */
export function storableText(text: string): string {
  return text.replace(UNSTORABLE, '\uFFFD');
}

/**
 * A JSON value with every string, object keys included, made storable by storableText; objects with a
 * toJSON (dates, buffers) are replaced by their JSON form first, as the driver and the hash would see them.
 * Keys that only differ in what was replaced would collide: the later one keeps its value under `key#2`.
 */
export function storableJson(value: unknown): unknown {
  return cleanJson(value, { replaced: false });
}

/** Set once anything was replaced, so the event can say its stored text is not what was sent. */
interface Sanitising {
  replaced: boolean;
}

function cleanText(text: string, state: Sanitising): string {
  const stored = storableText(text);
  if (stored !== text) state.replaced = true;
  return stored;
}

function cleanJson(value: unknown, state: Sanitising): unknown {
  if (typeof value === 'string') return cleanText(value, state);
  if (Array.isArray(value)) return value.map((item) => cleanJson(item, state));
  if (value === null || typeof value !== 'object') return value;
  const withJson = value as { toJSON?: () => unknown };
  if (typeof withJson.toJSON === 'function') return cleanJson(withJson.toJSON(), state);
  const entries: Array<[string, unknown]> = [];
  const taken = new Set<string>();
  for (const [key, item] of Object.entries(value)) {
    let stored = cleanText(key, state);
    // A failure audit must not lose what it records: a colliding key is renamed, never merged or refused.
    while (taken.has(stored)) stored = `${stored}#2`;
    taken.add(stored);
    entries.push([stored, cleanJson(item, state)]);
  }
  return Object.fromEntries(entries);
}

/**
 * The fields of an audit event as they are hashed and stored: every string made storable, and
 * `sanitised: true` added to the data when anything had to be replaced, so a reader knows the text differs
 * from what the client sent.
 */
export function storableAuditInput(input: UnsanitisedInput): StorableAuditInput {
  const state: Sanitising = { replaced: false };
  const stored = {
    actorId: cleanText(input.actorId, state),
    action: cleanText(input.action, state),
    subjectType: cleanText(input.subjectType, state),
    subjectId: cleanText(input.subjectId, state),
    requestId: input.requestId == null ? null : cleanText(input.requestId, state),
    data: cleanJson(input.data ?? {}, state) as Record<string, unknown>,
  };
  if (state.replaced) stored.data = { ...stored.data, sanitised: true };
  return stored;
}

/**
 * Appends one event to the chain as part of the caller's transaction: the state change and its event commit
 * or roll back together (DESIGN §4.1). The event is written into audit_pending at COMMIT, with the
 * transaction's other events, without locking anything shared, and chained by the sequencer once the
 * transaction has committed, before its caller resumes (libs/audit/audit-flush.ts). Client text (a WebAuthn
 * library's error, a hostile clientDataJSON) is made storable now, so a refusal is still recorded and the
 * stored event is exactly the hashed one. A caller that reads the event back in the same transaction calls flushAuditEvents.
 */
export async function appendAuditEvent<A extends AuditAction>(
  manager: EntityManager,
  input: AuditInput<A>,
): Promise<void> {
  deferAuditEvent(manager, storableAuditInput(input));
}

/** The exported, hash-checkable form of a stored event. */
export function toChainedEvent(event: AuditEventEntity): ChainedEvent & { hash: string } {
  return {
    seq: Number(event.seq),
    at: event.at.toISOString(),
    actorId: event.actorId,
    action: event.action,
    subjectType: event.subjectType,
    subjectId: event.subjectId,
    requestId: event.requestId,
    data: event.data,
    prevHash: event.prevHash.toString('hex'),
    hash: event.hash.toString('hex'),
  };
}
