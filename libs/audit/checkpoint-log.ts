import type { DataSource } from 'typeorm';
import { auditPrivateKey, type AuditKeySource } from './audit-key.js';
import { AuditAction } from './audit-actions.js';
import { lockChainHead } from './audit-flush.js';
import { appendAuditEvent, flushAuditEvents, SYSTEM_ACTOR } from './audit-log.js';
import { signCheckpoint, type CheckpointData } from './checkpoint.js';

export type CheckpointResult =
  | { status: 'written'; checkpoint: CheckpointData; eventSeq: number }
  | { status: 'skipped'; reason: 'empty-chain' | 'head-unchanged'; headSeq: number };

/**
 * Signs the chain head with the audit key and appends an audit.checkpoint event that carries the signature.
 * The head is read under the chain lock, which the transaction keeps until its event is chained right after
 * it, so the checkpoint covers exactly the event before its own. Skipped when the chain is empty or its head is already a checkpoint (nothing new to sign),
 * which also makes two workers running it at once write one checkpoint.
 */
export async function appendCheckpoint(
  dataSource: DataSource,
  keys: AuditKeySource,
): Promise<CheckpointResult> {
  // Loaded (and created on first use) before the head is locked: appends never wait on key storage.
  const key = await keys.currentKey('audit');
  const privateKey = auditPrivateKey(key);
  return dataSource.transaction(async (manager): Promise<CheckpointResult> => {
    // Locked as every chain writer locks it, every event already accepted chained first (issue 22).
    const head = await lockChainHead(manager);
    const headSeq = Number(head.seq);
    if (headSeq === 0) return { status: 'skipped', reason: 'empty-chain', headSeq };
    const [last] = (await manager.query('SELECT action FROM audit_events WHERE seq = $1', [
      head.seq,
    ])) as Array<{
      action: string;
    }>;
    if (last?.action === AuditAction.AuditCheckpoint)
      return { status: 'skipped', reason: 'head-unchanged', headSeq };
    const [{ now }] = (await manager.query('SELECT clock_timestamp() AS now')) as Array<{ now: Date }>;
    const checkpoint = signCheckpoint(
      { seq: headSeq, hash: head.hash.toString('hex'), at: new Date(now.getTime()).toISOString() },
      key.kid,
      privateKey,
    );
    await appendAuditEvent(manager, {
      actorId: SYSTEM_ACTOR,
      action: AuditAction.AuditCheckpoint,
      subjectType: 'audit',
      subjectId: 'audit',
      data: { ...checkpoint },
    });
    const [event] = await flushAuditEvents(manager);
    return { status: 'written', checkpoint, eventSeq: Number(event.seq) };
  });
}
