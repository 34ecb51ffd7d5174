import type { EntityManager } from 'typeorm';
import { AuditChainHeadEntity, AuditEventEntity } from '../db/index.js';
import { chainHash, type ChainedEvent } from './chain.js';

/** Who did what to which subject; `at` and `seq` are assigned by the append. */
export interface AuditInput {
  /** A user id, or `system` for the worker and the broker itself. */
  actorId: string;
  action: string;
  subjectType: string;
  subjectId: string;
  requestId?: string | null;
  data?: Record<string, unknown>;
}

export const SYSTEM_ACTOR = 'system';

/**
 * Appends one event to the chain inside the caller's transaction. The chain head row is locked FOR UPDATE,
 * so concurrent appends serialise and the chain stays linear; the state change and its event commit or
 * roll back together (DESIGN §4.1).
 */
export async function appendAuditEvent(manager: EntityManager, input: AuditInput): Promise<AuditEventEntity> {
  if (!manager.queryRunner?.isTransactionActive) {
    throw new Error('appendAuditEvent must run inside a transaction');
  }
  const [head] = (await manager.query(
    'SELECT seq, hash FROM audit_chain_head WHERE id = 1 FOR UPDATE',
  )) as Array<{
    seq: string;
    hash: Buffer;
  }>;
  // Read the clock once the head is locked, so `at` follows `seq` (now() would be the transaction's start).
  const [{ now }] = (await manager.query('SELECT clock_timestamp() AS now')) as Array<{ now: Date }>;
  const seq = Number(head.seq) + 1;
  // Millisecond precision: what the driver reads back must be what was hashed.
  const at = new Date(now.getTime());
  const body: ChainedEvent = {
    seq,
    at: at.toISOString(),
    actorId: input.actorId,
    action: input.action,
    subjectType: input.subjectType,
    subjectId: input.subjectId,
    requestId: input.requestId ?? null,
    data: input.data ?? {},
    prevHash: head.hash.toString('hex'),
  };
  const hash = chainHash(head.hash, body);
  await manager.query(
    `INSERT INTO audit_events (seq, at, actor_id, action, subject_type, subject_id, request_id, data, prev_hash, hash)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    [
      seq,
      at,
      body.actorId,
      body.action,
      body.subjectType,
      body.subjectId,
      body.requestId,
      body.data,
      head.hash,
      hash,
    ],
  );
  await manager.update(AuditChainHeadEntity, { id: 1 }, { seq: String(seq), hash });
  return Object.assign(new AuditEventEntity(), {
    seq: String(seq),
    at,
    actorId: body.actorId,
    action: body.action,
    subjectType: body.subjectType,
    subjectId: body.subjectId,
    requestId: body.requestId,
    data: body.data,
    prevHash: head.hash,
    hash,
  });
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
