import { Injectable, Logger } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { AuditAction, type AuditPayloads } from '../audit/audit-actions.js';
import { appendAuditEvent, SYSTEM_ACTOR } from '../audit/audit-log.js';
import type { Connector, Credential, GrantSpec } from '../connectors/connector.js';
import { databaseNow } from '../db/clock.js';
import { ElevationRequestEntity, GrantEntity } from '../db/index.js';
import type { Actor } from '../domain/actor.js';
import type { AuditedEvidence } from '../webauthn/evidence.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import { failedRevocation, GrantState, LAST_ERROR_MAX_LENGTH } from '../domain/grant-state.js';
import { findEntitlement, type Entitlement, type Policy } from '../domain/policy.js';
import { RequestState } from '../domain/request-enums.js';
import { JobProducer } from '../jobs/job-producer.js';
import { noteChanged, transactWithJobs, type AfterCommit } from './after-commit.js';
import { ConnectorRegistry } from './connector-registry.js';
import * as store from './grant-store.js';
import { PolicyService } from '../policy/policy.service.js';
import { committedEvent, RequestAnnouncer } from './request-announcer.js';
import { lockRequest } from './request-store.js';
import {
  grantRow,
  heldElsewhere,
  persistFailedUndo,
  undoRecord,
  type MintUndo,
} from './mint-compensation.js';
import { workloadFacts } from './request-audit.js';

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
  | { status: 'revoked'; lagMs: number; connectorType: string }
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

/** What a break-glass activation's reservation needs: its request does not exist before the mint. */
export interface BreakGlassTarget {
  policy: Policy;
  policyHash: string;
  entitlement: Entitlement;
  subject: string;
}

type GrantRef = Pick<GrantEntity, 'id' | 'requestId'>;
// How much longer than a mint's timeout a reservation must be left before the sweep calls it abandoned: an
// activation reserves, then waits for its request's lock before it takes the reservation's row lock.
const ABANDONED_MINT_MARGIN_MS = 60_000;
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
   * The attempt's grant id is reserved first (see reserve()): by request id for an activation, by what its
   * undo needs for a break-glass activation, whose request does not exist yet.
   */
  async withMintUndo<T>(
    target: string | BreakGlassTarget,
    work: (issued: MintUndo) => Promise<T>,
  ): Promise<T> {
    const reservation =
      typeof target === 'string' ? await this.reserve(target) : await this.reserveBreakGlass(target);
    const issued: MintUndo = { reservation };
    try {
      return await work(issued);
    } catch (error) {
      if (issued.undo) {
        if (await this.endAttempt(issued)) await this.undoMint(issued);
      }
      // Nothing to take back (refused before the mint, or a connector whose failed mint applied nothing): the
      // reservation just ends, so the abandoned-mint sweep never alerts on a mint that was not sent.
      else if (reservation) await this.endAttempt({ reservation });
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
   * A break-glass activation's grant id, committed before its mint is sent with the connector, policy version
   * and overlap key an undo needs, so that the sweep takes the mint back if the broker stops mid-mint.
   * Best effort, as reserve().
   */
  private async reserveBreakGlass(target: BreakGlassTarget): Promise<MintUndo['reservation']> {
    const { policy, policyHash, entitlement, subject } = target;
    const grantId = uuidv7();
    try {
      const connector = this.connectors.get(policy, entitlement.connector);
      const spec = {
        grantId,
        requestId: grantId,
        subject,
        entitlementId: entitlement.id,
        scope: entitlement.scope,
      };
      const overlapKey = connector.overlapKey?.({ ...spec, notAfter: new Date() }) ?? null;
      const fields = { connector: entitlement.connector, policyHash, overlapKey };
      await store.reserveBreakGlassGrantId(this.dataSource.manager, grantId, fields);
      return { requestId: null, grantId };
    } catch (error) {
      this.logger.warn(`Could not reserve a grant id for a break-glass of ${subject}: ${String(error)}`);
      return undefined;
    }
  }

  /**
   * Ends a failed attempt's reservation before its undo is sent, so that no later attempt mints that grant id
   * again. False when another attempt committed the same grant id meanwhile: it is live, nothing to undo.
   */
  private async endAttempt({ reservation, grant }: MintUndo): Promise<boolean> {
    if (!reservation || (grant && reservation.grantId !== grant.id)) return true;
    try {
      const manager = this.dataSource.manager;
      if (await store.deleteReservationOf(manager, reservation.grantId)) return true;
      return (await store.findGrant(manager, reservation.grantId)) === null;
    } catch (error) {
      this.logger.warn(`Could not end the reservation of grant ${reservation.grantId}: ${String(error)}`);
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
      if (grant) await this.scheduleResend(grant, policyHash);
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

  /** Keeps an undo that went through to be sent once more after the mint timeout (store.scheduleResend). */
  private async scheduleResend(grant: GrantEntity, policyHash: string): Promise<void> {
    try {
      await this.transact(async (manager) => {
        const undo = await undoRecord(manager, grant, policyHash);
        await store.scheduleResend(manager, undo, this.connectors.mintTimeoutMs);
      });
    } catch (error) {
      this.logger.warn(`Could not schedule the re-send of the undo of grant ${grant.id}: ${String(error)}`);
    }
  }

  /**
   * Retries every undo that failed (mint_attempts), from PostgreSQL, with the grant's `revoke:<grantId>` key;
   * run by each sweep until the connector confirms, then once more after the mint timeout (a late mint may
   * have arrived after it). Returns how many are still pending.
   */
  async retryMintUndos(): Promise<number> {
    const manager = this.dataSource.manager;
    let pending = 0;
    for (const undo of await store.pendingUndos(manager)) {
      try {
        const holder = { id: undo.grantId, overlapKey: undo.overlapKey };
        const heldByOther = await this.dataSource.transaction((locked) => heldElsewhere(locked, holder));
        if (!heldByOther) {
          const policy = await this.policies.byHash(undo.policyHash);
          await this.connectors
            .get(policy, undo.connector)
            .revoke(undo.externalRef, { grantId: undo.grantId });
        }
        const done = undo.resend || heldByOther;
        if (done) await store.deleteUndo(manager, undo.grantId);
        else await store.scheduleResend(manager, undo, this.connectors.mintTimeoutMs);
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
   * Finds the activation attempts whose broker stopped mid-mint (issue 13): reservations no live activation
   * holds, without a grant, whose request is no longer APPROVED or which are older than the mint timeout plus
   * a margin. A mint the receiver may have applied is recorded as an undo (mint_attempts), which
   * retryMintUndos sends as a revoke with the attempt's `revoke:<grantId>` key; each is an alert event.
   * Returns how many were found.
   */
  async claimAbandonedReservations(): Promise<number> {
    const olderThanMs = this.connectors.mintTimeoutMs + ABANDONED_MINT_MARGIN_MS;
    return this.transact(async (manager) => {
      const abandoned = await store.lockAbandonedReservations(manager, olderThanMs);
      for (const attempt of abandoned) await this.claimAbandoned(manager, attempt);
      return abandoned.length;
    });
  }

  /** Turns one abandoned reservation into a pending undo, or ends it when its connector's mint leaves nothing. */
  private async claimAbandoned(manager: EntityManager, attempt: store.AbandonedReservation): Promise<void> {
    const { grantId, requestId, policyHash } = attempt;
    const resolved = await this.connectorOf(attempt).catch((error: unknown) => {
      // Left for a later sweep (a missing connector secret can be fixed); the lock ends with the transaction.
      this.logger.error(
        `ALERT: the abandoned mint of grant ${grantId} cannot be undone yet: ${String(error)}`,
      );
      return null;
    });
    if (!resolved) return;
    const { connector, connectorName } = resolved;
    // Only a connector whose mint can be applied remotely without its answer (a webhook) has anything to undo;
    // the others mint in one remote transaction (PostgreSQL) or locally (JWT, SSH), gone with the broker.
    const undo = connector.compensateMint ? 'revoke' : 'none';
    if (connector.compensateMint) {
      const overlapKey = attempt.requestId ? overlapKeyOf(connector, attempt) : attempt.overlapKey;
      const pending = {
        grantId,
        requestId,
        externalRef: grantId,
        connector: connectorName,
        policyHash,
        overlapKey,
      };
      await store.recordFailedUndo(manager, pending, 'the broker stopped mid-mint');
    } else {
      await store.deleteReservationOf(manager, grantId);
    }
    this.logger.error(
      `ALERT: the mint of grant ${grantId} (request ${requestId}) was abandoned; undo: ${undo}`,
    );
    await appendAuditEvent(manager, {
      actorId: SYSTEM_ACTOR,
      action: AuditAction.GrantMintAbandoned,
      subjectType: 'grant',
      subjectId: grantId,
      requestId,
      data: {
        alert: true,
        connector: connectorName,
        requestState: attempt.requestState,
        reservedAt: new Date(attempt.reservedAt).toISOString(),
        undo,
      },
    });
  }

  /**
   * The connector an activation attempt minted through: its request's entitlement in its policy version, or
   * the one a break-glass reservation names.
   */
  private async connectorOf({ policyHash, entitlementId, connector }: store.AbandonedReservation) {
    const policy = await this.policies.byHash(policyHash);
    const connectorName = connector ?? findEntitlement(policy, entitlementId ?? '')?.connector;
    if (!connectorName) throw new Error(`Entitlement ${entitlementId} is not in policy ${policyHash}`);
    return { connector: this.connectors.get(policy, connectorName), connectorName };
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
    if (issued.reservation) await store.deleteReservationOf(manager, grant.id);
    jobs.revokeAt.push({ grantId: grant.id, notAfter });
    return { request, grant, credential: value.credential };
  }

  /**
   * The reserved grant id when this attempt still holds the reservation (row-locked until it ends, so a
   * concurrent attempt waits and then finds it committed or ended); a fresh one otherwise.
   */
  private async attemptGrantId(manager: EntityManager, requestId: string, issued: MintUndo): Promise<string> {
    const reserved = issued.reservation;
    // A break-glass reservation (no request id) is this attempt's own: its request is being inserted now.
    if (reserved && (reserved.requestId ?? requestId) === requestId) {
      const claimed = await store.claimReservation(manager, reserved.requestId, reserved.grantId);
      if (claimed) return reserved.grantId;
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
        ...workloadFacts(actor),
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
    // A REVOKE_FAILED grant past notAfter ends its request too, if that never happened (a grant that failed
    // before issue 13 went ACTIVE → REVOKE_FAILED and left its request ACTIVE).
    const stuck = grant.state === GrantState.REVOKE_FAILED && remaining <= 0;
    const begins = grant.state === GrantState.ACTIVE || stuck;
    const begin = () => this.transact((manager) => this.beginRevocationIn(manager, grant, endRequest));
    // Nothing to take back outside this database: begin and end in one transaction (one chain-head append).
    if (!grant.overlapKey) {
      const local = await this.connectorFor(policyHash, grant.connector).then(
        (connector) => connector.revokesInDatabaseOnly === true,
        () => false, // looked up again below, where its error is recorded once the request has ended
      );
      if (local) return this.revokeInDatabase(grant, endRequest);
    }
    if (begins) await begin();

    // Shared external state that another live grant still holds stays; this grant alone ends.
    if (grant.overlapKey) {
      const held = await this.revokeIfHeldElsewhere(grant, grant.overlapKey, endRequest);
      if (held) return held;
    }

    const connector = await this.connectorFor(policyHash, grant.connector);
    // External state first, outside the transaction: the connector's revoke is idempotent, so a crash after
    // it and before the commit only means the next attempt revokes an already-revoked credential.
    // The grant id keeps the webhook's Idempotency-Key (`revoke:<grantId>`) the same on every attempt.
    await connector.revoke(grant.externalRef, { grantId: grant.id });

    return this.transact((manager) => this.markRevoked(manager, grant, endRequest, {}));
  }

  /**
   * Records a failed attempt and when the job tries again (`nextRetryAt`); after its last attempt (null) the
   * grant becomes REVOKE_FAILED with an alert event, and the sweep keeps retrying it (never a silent drop).
   * Returns the grant's connector kind and whether this attempt raised the alert; null when nothing was recorded.
   */
  async recordFailure(
    grantId: string,
    error: unknown,
    nextRetryAt: Date | null,
  ): Promise<{ connectorType: string; alert: boolean } | null> {
    const message = error instanceof Error ? error.message : String(error);
    return this.transact(async (manager) => {
      const grant = await store.lockGrant(manager, grantId);
      if (!grant || grant.state === GrantState.REVOKED) return null;
      const attempt = failedRevocation(grant, message, nextRetryAt);
      await store.recordAttempt(manager, grantId, attempt);
      noteChanged(manager, grant.requestId);
      const recorded = { connectorType: grant.connectorType, alert: attempt.alert };
      if (!attempt.alert) return recorded;
      this.logger.error(`ALERT: grant ${grantId} could not be revoked: ${message}`);
      await appendAuditEvent(manager, {
        actorId: SYSTEM_ACTOR,
        action: AuditAction.GrantRevokeFailed,
        subjectType: 'grant',
        subjectId: grantId,
        requestId: grant.requestId,
        data: { alert: true, attempts: attempt.revokeAttempts, error: message.slice(0, 500) },
      });
      return recorded;
    });
  }

  /**
   * Re-enqueues the revocation of every grant not yet revoked, from PostgreSQL. Deterministic job ids make
   * this a no-op for jobs that still exist; after a Redis flush or a lost enqueue it rebuilds them.
   */
  async sweep(): Promise<number> {
    const pending = await store.unrevokedGrants(this.dataSource.manager);
    // A due grant's job runs now even if a delayed one still waits (a lost promote, a skewed clock).
    for (const grant of pending) if (grant.due) await this.jobs.revokeNow(grant.id);
    const later = pending.filter((grant) => !grant.due);
    await this.jobs.scheduleRevocations(later.map(({ id, notAfter }) => ({ grantId: id, notAfter })));
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

  /**
   * Marks a due ACTIVE grant REVOKING and ends its request, under the request's lock (request → grant), in
   * the caller's transaction; a REVOKE_FAILED grant keeps its state, and its request, if still ACTIVE, ends
   * all the same.
   */
  private async beginRevocationIn(
    manager: EntityManager,
    grant: GrantRef,
    endRequest: EndRequest,
  ): Promise<void> {
    const request = await lockRequest(manager, grant.requestId);
    const now = await store.markRevoking(manager, grant.id);
    if (now) return endRequest(manager, request, now);
    if (request?.state !== RequestState.ACTIVE || !request.endsAt) return;
    const at = await databaseNow(manager);
    if (request.endsAt <= at) await endRequest(manager, request, at);
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

  /**
   * A revocation with nothing to take back outside this database, in one transaction: one statement locks the
   * request and marks the grant REVOKED (unless it already is), then the request ends and the revocation is
   * recorded. The events come in the order the two-step path writes them: the request ends, then its grant
   * is revoked. The change is announced from the rows this transaction wrote, not read back once committed.
   */
  private async revokeInDatabase(grant: GrantRef, endRequest: EndRequest): Promise<RevocationOutcome> {
    const { outcome, ended } = await transactWithJobs(this.dataSource, this.jobs, async (manager) => {
      const { request, revoked } = await store.lockRequestAndRevoke(manager, grant);
      if (!revoked?.revokedAt) return { outcome: { status: 'already-revoked' } as const, ended: null };
      await endRequest(manager, request, revoked.revokedAt);
      const data = revokedEventData(revoked, revoked.revokedAt, {});
      await appendAuditEvent(manager, {
        actorId: SYSTEM_ACTOR,
        action: AuditAction.GrantRevoked,
        subjectType: 'grant',
        subjectId: grant.id,
        requestId: revoked.requestId,
        data,
      });
      const connectorType = revoked.connectorType;
      return { outcome: { status: 'revoked', lagMs: data.lagMs, connectorType } as const, ended: request };
    });
    // A request has one grant (grants_one_per_request), now REVOKED; the request as endRequest left it.
    if (ended) await this.announcer.announceCommitted([committedEvent(ended, GrantState.REVOKED)]);
    return outcome;
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
    return { status: 'revoked', lagMs: data.lagMs, connectorType: locked.connectorType };
  }

  /** The connector a grant was minted by, from the policy it was minted under. */
  private async connectorFor(policyHash: string, name: string): Promise<Connector> {
    return this.connectors.get(await this.policies.byHash(policyHash), name);
  }

  /** A transaction whose request and grant changes are announced to live-update streams once committed. */
  private transact<T>(work: (manager: EntityManager) => Promise<T>): Promise<T> {
    return transactWithJobs(this.dataSource, this.jobs, (manager) => work(manager), this.announcer);
  }
}

/** The overlap key an abandoned activation's grant would have had (its request's subject, entitlement, scope). */
function overlapKeyOf(connector: Connector, attempt: store.AbandonedReservation): string | null {
  if (!connector.overlapKey) return null;
  return connector.overlapKey({
    grantId: attempt.grantId,
    requestId: attempt.requestId ?? attempt.grantId,
    subject: attempt.subject ?? '',
    entitlementId: attempt.entitlementId ?? '',
    scope: attempt.scope ?? {},
    notAfter: new Date(attempt.reservedAt),
  });
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
