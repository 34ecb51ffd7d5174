import { Logger } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { appendAuditEvent } from '../audit/audit-log.js';
import type { Credential, GrantSpec } from '../connectors/connector.js';
import { ElevationRequestEntity, GrantEntity } from '../db/index.js';
import type { Actor } from '../domain/actor.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import { GrantState } from '../domain/grant-state.js';
import type { Entitlement, Policy } from '../domain/policy.js';
import type { ConnectorRegistry } from './connector-registry.js';

// The grant side of a request's commands: minting with undo, and asking for an early revocation. It stays
// here until a GrantsService owns grants from mint to revoked (issue 14 point 3).

const logger = new Logger('RequestGrants');

/** A credential minted for a request, shown once; the grant row keeps only its fingerprint. */
export interface Activation {
  request: ElevationRequestEntity;
  grant: GrantEntity;
  credential: Credential;
}

/** How to take back a credential minted in a transaction that did not commit. */
export interface MintUndo {
  undo?: () => Promise<void>;
  externalRef?: string;
}

/** A credential exists outside the broker once minted: if its grant does not commit, take it back. */
export async function withMintUndo<T>(work: (issued: MintUndo) => Promise<T>): Promise<T> {
  const issued: MintUndo = {};
  try {
    return await work(issued);
  } catch (error) {
    await issued.undo?.().catch((revokeError: unknown) => {
      logger.error(`Could not undo credential ${issued.externalRef}: ${String(revokeError)}`);
    });
    throw error;
  }
}

/** What a mint needs: who, for which request, under which policy version, for how long. */
export interface MintInput {
  actor: Actor;
  request: ElevationRequestEntity;
  policy: Policy;
  entitlement: Entitlement;
  now: Date;
  notAfter: Date;
}

/** Mints through the connector and inserts the grant row (its audit event is auditGrantIssued). */
export async function mintGrant(
  manager: EntityManager,
  connectors: ConnectorRegistry,
  input: MintInput,
  issued: MintUndo,
): Promise<Activation> {
  const { actor, request, policy, entitlement, now, notAfter } = input;
  const connector = connectors.get(policy, entitlement.connector);
  const grantId = uuidv7();
  const spec: GrantSpec = {
    grantId,
    requestId: request.id,
    subject: actor.username,
    entitlementId: entitlement.id,
    scope: request.scope,
    notAfter,
    sshPublicKey: request.sshPublicKey,
  };
  const value = await connector.mint(spec).catch((error: unknown) => {
    if (error instanceof DomainError && error.code !== ErrorCode.INTERNAL) throw error;
    logger.error(`Connector ${entitlement.connector} failed to mint: ${String(error)}`);
    throw new DomainError(ErrorCode.CONNECTOR_FAILED, `Connector "${entitlement.connector}" failed to mint`);
  });
  issued.externalRef = value.externalRef;
  issued.undo = () => connector.revoke(value.externalRef);
  const grant = manager.create(GrantEntity, {
    id: grantId,
    requestId: request.id,
    connector: entitlement.connector,
    connectorType: connector.type,
    externalRef: value.externalRef,
    fingerprint: value.fingerprint,
    issuedAt: now,
    notAfter,
    state: GrantState.ACTIVE,
    revokedAt: null,
    revokeAttempts: 0,
    lastError: null,
    revokeRequestedAt: null,
    revokeReason: null,
    overlapKey: connector.overlapKey?.(spec) ?? null,
  });
  await manager.insert(GrantEntity, grant);
  return { request, grant, credential: value.credential };
}

/** The grant.issued event (fingerprint and external reference, never the secret). */
export async function auditGrantIssued(
  manager: EntityManager,
  actor: Actor,
  grant: GrantEntity,
): Promise<void> {
  await appendAuditEvent(manager, {
    actorId: actor.id,
    action: 'grant.issued',
    subjectType: 'grant',
    subjectId: grant.id,
    requestId: grant.requestId,
    data: {
      connector: grant.connector,
      connectorType: grant.connectorType,
      externalRef: grant.externalRef,
      fingerprint: grant.fingerprint,
      notAfter: grant.notAfter.toISOString(),
      ...(grant.overlapKey ? { overlapKey: grant.overlapKey } : {}),
    },
  });
}

/** Row-locks the grants of requests already locked, before any audit append (request → grant → chain head). */
export async function lockGrantsOf(manager: EntityManager, requestIds: string[]): Promise<void> {
  if (requestIds.length === 0) return;
  await manager.query(`SELECT id FROM grants WHERE request_id = ANY($1) ORDER BY id FOR UPDATE`, [
    requestIds,
  ]);
}

/** Marks the request's unrevoked grants due now (an early revoke); returns their ids for the revocation job. */
export async function requestGrantRevocation(
  manager: EntityManager,
  requestId: string,
  reason: string,
): Promise<string[]> {
  const [grants] = (await manager.query(
    `UPDATE grants SET revoke_requested_at = now(), revoke_reason = $2
      WHERE request_id = $1 AND state <> $3 AND revoke_requested_at IS NULL RETURNING id`,
    [requestId, reason, GrantState.REVOKED],
  )) as [Array<{ id: string }>, number];
  return grants.map((grant) => grant.id);
}
