import { Injectable, Logger } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { AuditAction, type AuditPayloads } from '../audit/audit-actions.js';
import { appendAuditEvent, SYSTEM_ACTOR } from '../audit/audit-log.js';
import type { Credential, GrantSpec } from '../connectors/connector.js';
import { databaseNow } from '../db/clock.js';
import { ElevationRequestEntity, GrantEntity } from '../db/index.js';
import type { Actor } from '../domain/actor.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import { GrantState } from '../domain/grant-state.js';
import type { Entitlement, Policy } from '../domain/policy.js';
import { JobProducer } from '../jobs/job-producer.js';
import type { AfterCommit } from './after-commit.js';
import { ConnectorRegistry } from './connector-registry.js';
import * as store from './grant-store.js';
import { PolicyService } from '../policy/policy.service.js';
import { lockRequest } from './request-store.js';

export type { GrantListItem } from './grant-store.js';

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

/** What a mint needs: who, for which request, under which policy version, for how long. */
export interface MintInput {
  actor: Actor;
  request: ElevationRequestEntity;
  policy: Policy;
  entitlement: Entitlement;
  now: Date;
  notAfter: Date;
  /** When the requester's step-up for this activation was verified: the token's `auth_time`. */
  authenticatedAt?: Date;
}

export type RevocationOutcome =
  | { status: 'revoked'; lagMs: number }
  | { status: 'already-revoked' }
  | { status: 'not-due'; remainingMs: number }
  | { status: 'unknown-grant' };

/** Ends the request of a grant just revoked, in the same transaction (RequestsService.endAtExpiry). */
export type EndRequest = (manager: EntityManager, requestId: string, at: Date) => Promise<void>;

type GrantRef = Pick<GrantEntity, 'id' | 'requestId'>;
type RevokedEvent = AuditPayloads[AuditAction.GrantRevoked];
/** What a revocation without the connector adds to its event: which grant still holds the external state. */
type HeldElsewhere = Pick<RevokedEvent, 'externalRevokeSkipped' | 'heldBy'>;

/**
 * The one writer of grants, from mint to revoked (Vault's expiration manager owns every lease): mints with
 * undo, marks an early revoke, revokes when due, records failures, and restores revocation jobs from
 * PostgreSQL. Revocation is idempotent: it acts on what PostgreSQL says, never on a job's view of it, so a
 * duplicate or late job is harmless (DESIGN §4.6). RequestsService asks it; nothing else writes `grants`.
 */
@Injectable()
export class GrantsService {
  private readonly logger = new Logger(GrantsService.name);

  constructor(
    private readonly dataSource: DataSource,
    private readonly policies: PolicyService,
    private readonly connectors: ConnectorRegistry,
    private readonly jobs: JobProducer,
  ) {}

  /** A credential exists outside the broker once minted: if its grant does not commit, take it back. */
  async withMintUndo<T>(work: (issued: MintUndo) => Promise<T>): Promise<T> {
    const issued: MintUndo = {};
    try {
      return await work(issued);
    } catch (error) {
      await issued.undo?.().catch((revokeError: unknown) => {
        this.logger.error(`Could not undo credential ${issued.externalRef}: ${String(revokeError)}`);
      });
      throw error;
    }
  }

  /**
   * Mints through the connector and inserts the grant row; its revocation is scheduled at notAfter once the
   * transaction commits. Its audit event is auditIssued, after the request's own.
   */
  async mint(
    manager: EntityManager,
    input: MintInput,
    issued: MintUndo,
    jobs: AfterCommit,
  ): Promise<Activation> {
    const { actor, request, policy, entitlement, now, notAfter } = input;
    const connector = this.connectors.get(policy, entitlement.connector);
    const spec: GrantSpec = {
      grantId: uuidv7(),
      requestId: request.id,
      subject: actor.username,
      entitlementId: entitlement.id,
      scope: request.scope,
      notAfter,
      sshPublicKey: request.sshPublicKey,
      authenticatedAt: input.authenticatedAt,
    };
    const value = await connector.mint(spec).catch((error: unknown) => {
      if (error instanceof DomainError && error.code !== ErrorCode.INTERNAL) throw error;
      this.logger.error(`Connector ${entitlement.connector} failed to mint: ${String(error)}`);
      throw new DomainError(
        ErrorCode.CONNECTOR_FAILED,
        `Connector "${entitlement.connector}" failed to mint`,
      );
    });
    issued.externalRef = value.externalRef;
    issued.undo = () => connector.revoke(value.externalRef);
    const grant = manager.create(GrantEntity, {
      id: spec.grantId,
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
    await store.insertGrant(manager, grant);
    jobs.revokeAt.push({ grantId: grant.id, notAfter });
    return { request, grant, credential: value.credential };
  }

  /** The grant.issued event (fingerprint and external reference, never the secret). */
  async auditIssued(manager: EntityManager, actor: Actor, grant: GrantEntity): Promise<void> {
    await appendAuditEvent(manager, {
      actorId: actor.id,
      action: AuditAction.GrantIssued,
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
  lockGrantsOf(manager: EntityManager, requestIds: string[]): Promise<void> {
    return store.lockGrantsOf(manager, requestIds);
  }

  /**
   * An early revoke: marks the request's unrevoked grants due now and has their revocation run once the
   * transaction commits. Returns their ids.
   */
  async requestRevoke(
    manager: EntityManager,
    requestId: string,
    reason: string,
    jobs: AfterCommit,
  ): Promise<string[]> {
    const grantIds = await store.markRevokeRequested(manager, requestId, reason);
    jobs.revokeNow.push(...grantIds);
    return grantIds;
  }

  /**
   * The revocation job: revokes a grant whose notAfter has passed (by PostgreSQL's clock), or whose early
   * revoke was asked for, and ends its request through `endRequest` in the same transaction.
   */
  async revoke(grantId: string, endRequest: EndRequest): Promise<RevocationOutcome> {
    const grant = await store.findGrant(this.dataSource.manager, grantId);
    if (!grant) return { status: 'unknown-grant' };
    if (grant.state === GrantState.REVOKED) return { status: 'already-revoked' };
    const remaining = await store.remainingMs(this.dataSource.manager, grant.notAfter);
    if (remaining > 0 && !grant.revokeRequestedAt)
      return { status: 'not-due', remainingMs: Math.ceil(remaining) };

    // Shared external state that another live grant still holds stays; this grant alone ends.
    if (grant.overlapKey) {
      const held = await this.revokeIfHeldElsewhere(grant, grant.overlapKey, endRequest);
      if (held) return held;
    }

    const request = await this.dataSource
      .getRepository(ElevationRequestEntity)
      .findOneByOrFail({ id: grant.requestId });
    const policy = await this.policies.byHash(request.policyHash);
    // External state first, outside the transaction: the connector's revoke is idempotent, so a crash after
    // it and before the commit only means the next attempt revokes an already-revoked credential.
    await this.connectors.get(policy, grant.connector).revoke(grant.externalRef);

    return this.dataSource.transaction((manager) => this.markRevoked(manager, grant, endRequest, {}));
  }

  /**
   * Records a failed attempt; after the last one the grant becomes REVOKE_FAILED with an alert event,
   * and the sweep keeps retrying it (never a silent drop).
   */
  async recordFailure(grantId: string, error: unknown, finalAttempt: boolean): Promise<void> {
    const message = error instanceof Error ? error.message : String(error);
    await this.dataSource.transaction(async (manager) => {
      const grant = await store.lockGrant(manager, grantId);
      if (!grant || grant.state === GrantState.REVOKED) return;
      const attempt = failedAttempt(grant, message, finalAttempt);
      await store.recordAttempt(manager, grantId, attempt);
      if (attempt.state !== GrantState.REVOKE_FAILED) return;
      this.logger.error(`ALERT: grant ${grantId} could not be revoked: ${message}`);
      await appendAuditEvent(manager, {
        actorId: SYSTEM_ACTOR,
        action: AuditAction.GrantRevokeFailed,
        subjectType: 'grant',
        subjectId: grantId,
        requestId: grant.requestId,
        data: { alert: true, attempts: attempt.revokeAttempts, error: message.slice(0, 500) },
      });
    });
  }

  /**
   * Re-enqueues the revocation of every grant not yet revoked, from PostgreSQL. Deterministic job ids make
   * this a no-op for jobs that still exist; after a Redis flush or a lost enqueue it rebuilds them.
   */
  async sweep(): Promise<number> {
    const pending = await store.unrevokedGrants(this.dataSource.manager);
    for (const grant of pending) {
      // A due grant's job runs now even if a delayed one still waits (a lost promote, a skewed clock).
      if (grant.due) await this.jobs.revokeNow(grant.id);
      else await this.jobs.scheduleRevocation(grant.id, grant.notAfter);
    }
    if (pending.length > 0) this.logger.debug(`Sweep scheduled ${pending.length} unrevoked grant(s)`);
    return pending.length;
  }

  /** Grants newest first, optionally in one state; keyset-paginated by id (`cursor` is the last id seen). */
  list(query: {
    state: GrantState | null;
    cursor: string | null;
    limit: number;
  }): Promise<{ items: store.GrantListItem[]; nextCursor: string | null }> {
    return store.listGrants(this.dataSource.manager, query);
  }

  /**
   * When another grant with the same overlap key is ACTIVE and not yet due, marks this one REVOKED without
   * the connector (the audit event says who holds the state) and returns the outcome; null otherwise.
   * Check and mark run under a transaction-scoped advisory lock on the key, so of the last two holders
   * revoked at once, one waits, then finds the other REVOKED and takes the external state back.
   */
  private async revokeIfHeldElsewhere(
    grant: GrantRef,
    overlapKey: string,
    endRequest: EndRequest,
  ): Promise<RevocationOutcome | null> {
    return this.dataSource.transaction(async (manager) => {
      const heldBy = await store.lockOverlapHolder(manager, overlapKey, grant.id);
      if (!heldBy) return null;
      return this.markRevoked(manager, grant, endRequest, { externalRevokeSkipped: true, heldBy });
    });
  }

  /** Marks a grant REVOKED with its audit event and ends its request, in the caller's transaction. */
  private async markRevoked(
    manager: EntityManager,
    { id: grantId, requestId }: GrantRef,
    endRequest: EndRequest,
    extra: HeldElsewhere,
  ): Promise<RevocationOutcome> {
    // Lock order request → grant → audit chain head, as on every other path, so no two paths deadlock.
    await lockRequest(manager, requestId);
    const locked = await store.lockGrant(manager, grantId);
    if (!locked || locked.state === GrantState.REVOKED) return { status: 'already-revoked' };
    const now = await databaseNow(manager);
    const data = revokedEventData(locked, now, extra);
    await store.markRevoked(manager, grantId, now);
    await appendAuditEvent(manager, {
      actorId: SYSTEM_ACTOR,
      action: AuditAction.GrantRevoked,
      subjectType: 'grant',
      subjectId: grantId,
      requestId: locked.requestId,
      data,
    });
    await endRequest(manager, locked.requestId, now);
    return { status: 'revoked', lagMs: data.lagMs };
  }
}

/** When a grant's revocation became due: notAfter, or the early revoke if that came first. */
export function revocationDueAt(grant: Pick<GrantEntity, 'notAfter' | 'revokeRequestedAt'>): Date {
  const requested = grant.revokeRequestedAt;
  return requested && requested < grant.notAfter ? requested : grant.notAfter;
}

/** The grant.revoked event: why, when, the lag from when it became due, and how many attempts it took. */
export function revokedEventData(
  grant: Pick<
    GrantEntity,
    'connector' | 'externalRef' | 'notAfter' | 'revokeRequestedAt' | 'revokeReason' | 'revokeAttempts'
  >,
  now: Date,
  extra: HeldElsewhere,
): RevokedEvent {
  return {
    reason: grant.revokeRequestedAt ? (grant.revokeReason ?? 'revoked') : 'expired',
    connector: grant.connector,
    externalRef: grant.externalRef,
    notAfter: grant.notAfter.toISOString(),
    revokedAt: now.toISOString(),
    lagMs: now.getTime() - revocationDueAt(grant).getTime(),
    attempts: grant.revokeAttempts + 1,
    ...extra,
  };
}

/** One more failed attempt; the last one turns an ACTIVE grant REVOKE_FAILED (the sweep retries it). */
export function failedAttempt(
  grant: Pick<GrantEntity, 'state' | 'revokeAttempts'>,
  message: string,
  finalAttempt: boolean,
): store.FailedAttempt {
  const becomesFailed = finalAttempt && grant.state === GrantState.ACTIVE;
  return {
    revokeAttempts: grant.revokeAttempts + 1,
    lastError: message.slice(0, 2000),
    ...(becomesFailed ? { state: GrantState.REVOKE_FAILED } : {}),
  };
}
