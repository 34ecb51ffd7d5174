import type { EntityManager } from 'typeorm';
import { AuditAction } from '../audit/audit-actions.js';
import { appendAuditEvent, SYSTEM_ACTOR } from '../audit/audit-log.js';
import type { Connector, GrantSpec, Minted } from '../connectors/connector.js';
import { ElevationRequestEntity, GrantEntity } from '../db/index.js';
import { GrantState, LAST_ERROR_MAX_LENGTH } from '../domain/grant-state.js';
import * as store from './grant-store.js';

// Taking back a mint whose grant did not commit (issue 13 point 2): GrantsService runs the undo before the
// activation's error reaches the client; these are its pure parts and its SQL-backed records.

/** How to take back a mint whose transaction did not commit, and the grant it was for. */
export interface MintUndo {
  undo?: () => Promise<void>;
  externalRef?: string;
  /** The grant as it would have been stored: what a failed undo records in mint_attempts to retry it. */
  grant?: GrantEntity;
  /** The grant id reserved for this activation attempt (mint_attempts), while this attempt holds it. */
  reservation?: { requestId: string | null; grantId: string };
  /** The policy version the connector's settings come from, for a retried undo. */
  policyHash?: string;
}

/** The grant row of a mint, before (minted = null: the connector failed or timed out) or after its answer. */
export function grantRow(
  manager: EntityManager,
  connector: Connector,
  spec: GrantSpec,
  fields: { connector: string; issuedAt: Date },
  minted: Minted | null,
): GrantEntity {
  return manager.create(GrantEntity, {
    id: spec.grantId,
    requestId: spec.requestId,
    connector: fields.connector,
    connectorType: connector.type,
    // A mint whose answer never came is known by the grant id, which is also what a mint defaults to.
    externalRef: minted?.externalRef ?? spec.grantId,
    fingerprint: minted?.fingerprint ?? '',
    issuedAt: fields.issuedAt,
    notAfter: spec.notAfter,
    state: GrantState.ACTIVE,
    revokedAt: null,
    revokeAttempts: 0,
    lastError: null,
    nextRetryAt: null,
    revokeRequestedAt: null,
    revokeReason: null,
    overlapKey: connector.overlapKey?.(spec) ?? null,
  });
}

/**
 * Whether another live grant holds the external state of `grant` (its overlap key): then that state predates
 * this mint, and taking it back would take it from the other grant too.
 */
export async function heldElsewhere(
  manager: EntityManager,
  grant: Pick<GrantEntity, 'id' | 'overlapKey'>,
): Promise<boolean> {
  if (!grant.overlapKey) return false;
  return (await store.lockOverlapHolder(manager, grant.overlapKey, grant.id)) !== null;
}

/** What mint_attempts keeps of an undo: the grant's references (a request that did not commit is null). */
export async function undoRecord(manager: EntityManager, grant: GrantEntity, policyHash: string) {
  const requestExists = await manager.existsBy(ElevationRequestEntity, { id: grant.requestId });
  const { id: grantId, externalRef, connector, overlapKey } = grant;
  return {
    grantId,
    requestId: requestExists ? grant.requestId : null,
    externalRef,
    connector,
    policyHash,
    overlapKey,
  };
}

/**
 * After a failed undo: records it in mint_attempts for the sweep to retry with the same Idempotency-Key, and
 * appends a `grant.revoke_failed` alert. A break-glass request that did not commit is not referenced.
 */
export async function persistFailedUndo(
  manager: EntityManager,
  grant: GrantEntity,
  policyHash: string,
  error: string,
): Promise<void> {
  const lastError = error.slice(0, LAST_ERROR_MAX_LENGTH);
  const undo = await undoRecord(manager, grant, policyHash);
  const { grantId, requestId } = undo;
  await store.recordFailedUndo(manager, undo, lastError);
  await appendAuditEvent(manager, {
    actorId: SYSTEM_ACTOR,
    action: AuditAction.GrantRevokeFailed,
    subjectType: 'grant',
    subjectId: grantId,
    requestId,
    data: { alert: true, attempts: 1, error: `undo of a mint not committed: ${lastError.slice(0, 450)}` },
  });
}
