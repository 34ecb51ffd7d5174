import { Injectable, Logger } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { AuditAction, type AuditPayloads } from '../audit/audit-actions.js';
import { appendAuditEvent, SYSTEM_ACTOR } from '../audit/audit-log.js';
import type { Credential, GrantSpec } from '../connectors/connector.js';
import { ElevationRequestEntity, GrantEntity } from '../db/index.js';
import type { Actor } from '../domain/actor.js';
import type { AuditedEvidence } from '../webauthn/evidence.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import { failedRevocation, GrantState, LAST_ERROR_MAX_LENGTH } from '../domain/grant-state.js';
import type { Entitlement, Policy } from '../domain/policy.js';
import { JobProducer } from '../jobs/job-producer.js';
import { noteChanged, transactWithJobs, type AfterCommit } from './after-commit.js';
import { ConnectorRegistry } from './connector-registry.js';
import * as store from './grant-store.js';
import { PolicyService } from '../policy/policy.service.js';
import { RequestAnnouncer } from './request-announcer.js';
import { lockRequest } from './request-store.js';
import { grantRow, heldElsewhere, persistFailedUndo, type MintUndo } from './mint-compensation.js';

export type { GrantListItem } from './grant-store.js';

/** A credential minted for a request, shown once; the grant row keeps only its fingerprint. */
export interface Activation {
  request: ElevationRequestEntity;
  grant: GrantEntity;
  credential: Credential;
}

export type { MintUndo } from './mint-compensation.js';

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

/**
 * Ends the request of a grant just revoked, in the same transaction (RequestsService.endAtExpiry); the request
 * is the row the revocation locked (null when there is none).
 */
export type EndRequest = (
  manager: EntityManager,
  request: ElevationRequestEntity | null,
  at: Date,
) => Promise<void>;

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
    private readonly announcer: RequestAnnouncer,
  ) {}

  /**
   * A credential exists outside the broker once minted, and may exist once a mint was sent even when it
   * failed or timed out: if its grant does not commit, take it back before the caller's error is answered.
   * With a `requestId` (an activation, not a break-glass), the grant id is reserved first: see reserve().
   */
  async withMintUndo<T>(requestId: string | null, work: (issued: MintUndo) => Promise<T>): Promise<T> {
    const issued: MintUndo = { reservation: requestId ? await this.reserve(requestId) : undefined };
    try {
      return await work(issued);
    } catch (error) {
      if (issued.undo && (await this.endAttempt(issued))) await this.undoMint(issued);
      throw error;
    }
  }

  /**
   * The grant id of the request's activation attempt, committed before its mint is sent, so that an attempt
   * the broker never concluded (it stopped mid-mint) is retried with the same grant id and Idempotency-Key.
   * Best effort: without one (request not APPROVED, a race, an error) the mint gets a fresh id.
   */
  private async reserve(requestId: string): Promise<MintUndo['reservation']> {
    const grantId = await store
      .reserveGrantId(this.dataSource.manager, requestId, uuidv7())
      .catch((error: unknown) => {
        this.logger.warn(`Could not reserve a grant id for request ${requestId}: ${String(error)}`);
        return null;
      });
    return grantId ? { requestId, grantId } : undefined;
  }

  /**
   * Ends a failed attempt's reservation before its undo is sent, so that no later attempt mints that grant id
   * again. False when another attempt committed the same grant id meanwhile: it is live, nothing to undo.
   */
  private async endAttempt({ reservation, grant }: MintUndo): Promise<boolean> {
    if (!reservation || reservation.grantId !== grant?.id) return true;
    try {
      const manager = this.dataSource.manager;
      if (await store.deleteReservation(manager, reservation.requestId, reservation.grantId)) return true;
      return (await store.findGrant(manager, reservation.grantId)) === null;
    } catch (error) {
      this.logger.warn(`Could not end the reservation of grant ${grant.id}: ${String(error)}`);
      return true;
    }
  }

  /**
   * Sends the undo (a revoke with the grant's `revoke:<grantId>` key) unless another live grant holds the
   * same external state. If it fails: ALERT log, a `grant.revoke_failed` event, and the undo recorded in
   * mint_attempts, which every sweep retries (retryMintUndos) until the connector confirms.
   */
  private async undoMint({ undo, externalRef, grant, policyHash = '' }: MintUndo): Promise<void> {
    try {
      if (grant && (await this.transact((manager) => heldElsewhere(manager, grant)))) {
        this.logger.warn(`Did not take back grant ${grant.id}: another live grant holds ${grant.overlapKey}`);
        return;
      }
      await undo!();
      this.logger.warn(`Took back credential ${externalRef} of grant ${grant?.id}: its grant did not commit`);
    } catch (undoError) {
      this.logger.error(`ALERT: could not undo credential ${externalRef}: ${String(undoError)}`);
      if (!grant) return;
      try {
        const failure = String(undoError);
        await this.transact((manager) => persistFailedUndo(manager, grant, policyHash, failure));
      } catch (storeError) {
        this.logger.error(`ALERT: could not record the undo of grant ${grant.id}: ${String(storeError)}`);
      }
    }
  }

  /**
   * Retries every undo that failed (mint_attempts), from PostgreSQL, with the grant's `revoke:<grantId>` key;
   * run by each sweep until the connector confirms. Returns how many are still pending.
   */
  async retryMintUndos(): Promise<number> {
    const manager = this.dataSource.manager;
    let pending = 0;
    for (const undo of await store.pendingUndos(manager)) {
      try {
        const holder = { id: undo.grantId, overlapKey: undo.overlapKey };
        if (!(await this.dataSource.transaction((locked) => heldElsewhere(locked, holder)))) {
          const policy = await this.policies.byHash(undo.policyHash);
          await this.connectors
            .get(policy, undo.connector)
            .revoke(undo.externalRef, { grantId: undo.grantId });
        }
        await store.deleteUndo(manager, undo.grantId);
        this.logger.warn(`Took back credential ${undo.externalRef} of grant ${undo.grantId} on a retry`);
      } catch (error) {
        pending += 1;
        // The alert was raised at the first failure; each sweep tries again.
        this.logger.warn(`The undo of grant ${undo.grantId} failed again: ${String(error)}`);
        await store.recordFailedUndo(manager, undo, String(error).slice(0, LAST_ERROR_MAX_LENGTH));
      }
    }
    return pending;
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
      grantId: await this.attemptGrantId(manager, request.id, issued),
      requestId: request.id,
      subject: actor.username,
      entitlementId: entitlement.id,
      scope: request.scope,
      notAfter,
      sshPublicKey: request.sshPublicKey,
      authenticatedAt: input.authenticatedAt,
    };
    const row = { connector: entitlement.connector, issuedAt: now };
    issued.policyHash = request.policyHash;
    const value = await connector.mint(spec).catch((error: unknown) => {
      // It may have been applied although its answer never came (a timeout): withMintUndo compensates.
      if (connector.compensateMint) {
        Object.assign(issued, { undo: () => connector.compensateMint!(spec), externalRef: spec.grantId });
        issued.grant = grantRow(manager, connector, spec, row, null);
      }
      if (error instanceof DomainError && error.code !== ErrorCode.INTERNAL) throw error;
      this.logger.error(`Connector ${entitlement.connector} failed to mint: ${String(error)}`);
      throw new DomainError(
        ErrorCode.CONNECTOR_FAILED,
        `Connector "${entitlement.connector}" failed to mint`,
      );
    });
    const grant = grantRow(manager, connector, spec, row, value);
    issued.externalRef = value.externalRef;
    issued.undo = () => connector.revoke(value.externalRef, { grantId: spec.grantId });
    issued.grant = grant;
    await store.insertGrant(manager, grant);
    await store.deleteReservation(manager, request.id);
    jobs.revokeAt.push({ grantId: grant.id, notAfter });
    return { request, grant, credential: value.credential };
  }

  /**
   * The reserved grant id when this attempt still holds the reservation (row-locked until it ends, so a
   * concurrent attempt waits and then finds it committed or ended); a fresh one otherwise.
   */
  private async attemptGrantId(manager: EntityManager, requestId: string, issued: MintUndo): Promise<string> {
    const reserved = issued.reservation;
    if (reserved?.requestId === requestId) {
      if (await store.claimReservation(manager, requestId, reserved.grantId)) return reserved.grantId;
    }
    issued.reservation = undefined;
    return uuidv7();
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
   * revoke was asked for. A grant due at notAfter turns REVOKING and ends its request (`endRequest`) before
   * the connector is called; it is REVOKED once the connector confirms.
   */
  async revoke(grantId: string, endRequest: EndRequest): Promise<RevocationOutcome> {
    const found = await store.findForRevocation(this.dataSource.manager, grantId);
    if (!found) return { status: 'unknown-grant' };
    const { grant, remainingMs: remaining, policyHash } = found;
    if (grant.state === GrantState.REVOKED) return { status: 'already-revoked' };
    if (remaining > 0 && !grant.revokeRequestedAt)
      return { status: 'not-due', remainingMs: Math.ceil(remaining) };
    // Due at notAfter: the request ends now, and its grant is REVOKING until the connector confirms (an
    // early revoke did both in its own transaction).
    if (grant.state === GrantState.ACTIVE) await this.beginRevocation(grant, endRequest);

    // Shared external state that another live grant still holds stays; this grant alone ends.
    if (grant.overlapKey) {
      const held = await this.revokeIfHeldElsewhere(grant, grant.overlapKey, endRequest);
      if (held) return held;
    }

    const policy = await this.policies.byHash(policyHash);
    // External state first, outside the transaction: the connector's revoke is idempotent, so a crash after
    // it and before the commit only means the next attempt revokes an already-revoked credential.
    // The grant id keeps the webhook's Idempotency-Key (`revoke:<grantId>`) the same on every attempt.
    await this.connectors.get(policy, grant.connector).revoke(grant.externalRef, { grantId: grant.id });

    return this.transact((manager) => this.markRevoked(manager, grant, endRequest, {}));
  }

  /**
   * Records a failed attempt and when the job tries again (`nextRetryAt`); after its last attempt (null) the
   * grant becomes REVOKE_FAILED with an alert event, and the sweep keeps retrying it (never a silent drop).
   */
  async recordFailure(grantId: string, error: unknown, nextRetryAt: Date | null): Promise<void> {
    const message = error instanceof Error ? error.message : String(error);
    await this.transact(async (manager) => {
      const grant = await store.lockGrant(manager, grantId);
      if (!grant || grant.state === GrantState.REVOKED) return;
      const attempt = failedRevocation(grant, message, nextRetryAt);
      await store.recordAttempt(manager, grantId, attempt);
      noteChanged(manager, grant.requestId);
      if (!attempt.alert) return;
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

  /**
   * An admin's retry of a stuck revocation (REVOKE_FAILED, or due and not revoked): audited with the admin's
   * step-up, then the grant's revocation job runs now (the same job the sweep would enqueue).
   */
  async retryRevocation(actor: Actor, grantId: string, evidence: AuditedEvidence): Promise<GrantState> {
    const state = await this.transact(async (manager) => {
      const grant = await store.lockGrant(manager, grantId);
      if (!grant) throw new DomainError(ErrorCode.NOT_FOUND, 'No such grant');
      if (grant.state === GrantState.REVOKED)
        throw new DomainError(ErrorCode.GRANT_ALREADY_REVOKED, 'This grant is already revoked');
      await appendAuditEvent(manager, {
        actorId: actor.id,
        action: AuditAction.GrantRevokeRetried,
        subjectType: 'grant',
        subjectId: grantId,
        requestId: grant.requestId,
        data: { state: grant.state, attempts: grant.revokeAttempts, evidence },
      });
      return grant.state;
    });
    await this.jobs.revokeNow(grantId);
    return state;
  }

  /** Grants newest first, optionally in one state; keyset-paginated by id (`cursor` is the last id seen). */
  list(query: {
    state: GrantState | null;
    cursor: string | null;
    limit: number;
  }): Promise<{ items: store.GrantListItem[]; nextCursor: string | null }> {
    return store.listGrants(this.dataSource.manager, query);
  }

  /** Marks a due ACTIVE grant REVOKING and ends its request, under the request's lock (request → grant). */
  private async beginRevocation(grant: GrantRef, endRequest: EndRequest): Promise<void> {
    await this.transact(async (manager) => {
      const request = await lockRequest(manager, grant.requestId);
      const now = await store.markRevoking(manager, grant.id);
      if (now) await endRequest(manager, request, now);
    });
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
    return this.transact(async (manager) => {
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
    const request = await lockRequest(manager, requestId);
    const locked = await store.lockGrant(manager, grantId);
    if (!locked || locked.state === GrantState.REVOKED) return { status: 'already-revoked' };
    const now = await store.markRevoked(manager, grantId);
    const data = revokedEventData(locked, now, extra);
    noteChanged(manager, requestId);
    await appendAuditEvent(manager, {
      actorId: SYSTEM_ACTOR,
      action: AuditAction.GrantRevoked,
      subjectType: 'grant',
      subjectId: grantId,
      requestId: locked.requestId,
      data,
    });
    await endRequest(manager, request, now);
    return { status: 'revoked', lagMs: data.lagMs };
  }

  /** A transaction whose request and grant changes are announced to live-update streams once committed. */
  private transact<T>(work: (manager: EntityManager) => Promise<T>): Promise<T> {
    return transactWithJobs(this.dataSource, this.jobs, (manager) => work(manager), this.announcer);
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
