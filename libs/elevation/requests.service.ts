import { Injectable, Logger } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { appendAuditEvent, SYSTEM_ACTOR } from '../audit/audit-log.js';
import type { Credential } from '../connectors/connector.js';
import { databaseNow } from '../db/clock.js';
import { ApprovalEntity, ElevationRequestEntity, GrantEntity, UserEntity } from '../db/index.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import { findEntitlement, isApprover, isEligible, type Entitlement, type Policy } from '../domain/policy.js';
import { initialState, RequestState, transition } from '../domain/request-state.js';
import { JobProducer } from '../jobs/job-producer.js';
import { evidenceForAudit, type StepUpEvidence } from '../webauthn/evidence.js';
import { requestSubject, subjectDigest } from '../webauthn/step-up-binding.js';
import type { Actor } from './actor.js';
import { ConnectorRegistry } from './connector-registry.js';
import { PolicyService } from './policy.service.js';

export interface CreateRequestInput {
  entitlementId: string;
  durationSeconds: number;
  justification: string;
  ticket?: string | null;
  notBefore?: Date | null;
}

export interface RequestListQuery {
  limit: number;
  cursor?: string | null;
  state?: RequestState | null;
}

/** What a transition may change besides the state. */
type RequestPatch = Partial<
  Pick<
    ElevationRequestEntity,
    'decidedAt' | 'activateBy' | 'activatedAt' | 'endsAt' | 'endedAt' | 'endReason'
  >
>;

/** The code a lost compare-and-set reports, by the state the loser expected. */
const CONFLICT_CODE: Partial<Record<RequestState, ErrorCode>> = {
  [RequestState.PENDING]: ErrorCode.REQUEST_NOT_PENDING,
  [RequestState.APPROVED]: ErrorCode.REQUEST_NOT_APPROVED,
  [RequestState.ACTIVE]: ErrorCode.REQUEST_NOT_ACTIVE,
};

const MILLISECONDS = 1000;

function addSeconds(date: Date, seconds: number): Date {
  return new Date(date.getTime() + seconds * MILLISECONDS);
}

/**
 * The only writer of a request's state (STYLE: one writer per aggregate). Every transition is the pure
 * `transition()`, a compare-and-set UPDATE and its audit event, in one transaction.
 */
@Injectable()
export class RequestsService {
  private readonly logger = new Logger(RequestsService.name);

  constructor(
    private readonly dataSource: DataSource,
    private readonly policies: PolicyService,
    private readonly connectors: ConnectorRegistry,
    private readonly jobs: JobProducer,
  ) {}

  /** Files a request for an entitlement under the policy in force. */
  async create(actor: Actor, input: CreateRequestInput): Promise<ElevationRequestEntity> {
    const { hash, policy } = this.policies.current();
    const entitlement = findEntitlement(policy, input.entitlementId);
    if (!entitlement) {
      throw new DomainError(ErrorCode.ENTITLEMENT_NOT_FOUND, `No entitlement "${input.entitlementId}"`);
    }
    if (!isEligible(policy, entitlement, actor.username)) {
      throw new DomainError(ErrorCode.NOT_ELIGIBLE, `You are not eligible for "${entitlement.id}"`);
    }
    if (entitlement.breakGlass || entitlement.selfService || !entitlement.approval) {
      throw new DomainError(
        ErrorCode.NOT_SUPPORTED,
        `"${entitlement.id}" is a break-glass or self-service entitlement, which this version does not grant yet`,
      );
    }
    checkRequestAgainstEntitlement(entitlement, input);
    const approval = entitlement.approval;

    return this.dataSource.transaction(async (manager) => {
      const now = await databaseNow(manager);
      if (input.notBefore && input.notBefore.getTime() <= now.getTime()) {
        throw new DomainError(ErrorCode.VALIDATION_FAILED, 'notBefore must be in the future');
      }
      const id = uuidv7();
      await manager.query(
        `INSERT INTO elevation_requests (id, requester_id, entitlement_id, policy_hash, scope, duration_seconds,
           justification, ticket, not_before, break_glass, approvals_required, state, created_at, pending_until)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, false, $10, $11, $12, $13)`,
        [
          id,
          actor.id,
          entitlement.id,
          hash,
          entitlement.scope,
          input.durationSeconds,
          input.justification,
          input.ticket ?? null,
          input.notBefore ?? null,
          approval.approvals,
          initialState({ breakGlass: false, selfService: false }),
          now,
          addSeconds(now, approval.pendingTtlSeconds),
        ],
      );
      const request = await manager.findOneByOrFail(ElevationRequestEntity, { id });
      await appendAuditEvent(manager, {
        actorId: actor.id,
        action: 'request.created',
        subjectType: 'request',
        subjectId: id,
        requestId: id,
        data: {
          // The immutable fields every step-up on this request commits to (DESIGN §5), for offline checks.
          subject: requestSubject(request),
          requester: actor.username,
          entitlementId: entitlement.id,
          policyHash: hash,
          scope: entitlement.scope,
          durationSeconds: input.durationSeconds,
          justification: input.justification,
          ticket: input.ticket ?? null,
          notBefore: input.notBefore?.toISOString() ?? null,
          approvalsRequired: approval.approvals,
        },
      });
      return request;
    });
  }

  /** Records one approver's approve or deny; the request moves on when quorum is reached or on any deny. */
  async decide(
    actor: Actor,
    requestId: string,
    decision: 'approve' | 'deny',
    comment: string | null,
    evidence: StepUpEvidence,
  ): Promise<ElevationRequestEntity> {
    const { policy } = this.policies.current();
    return this.dataSource.transaction(async (manager) => {
      const request = await this.lockVisible(manager, actor, requestId, policy);
      assertConfirmed(request, evidence, actor, decision);
      const now = await databaseNow(manager);
      const entitlement = findEntitlement(policy, request.entitlementId);
      const approvals = (await manager.query(
        `SELECT a.approver_id AS "approverId", a.decision, u.username
           FROM approvals a JOIN users u ON u.id = a.approver_id WHERE a.request_id = $1`,
        [requestId],
      )) as Array<{ approverId: string; decision: string; username: string }>;
      const guards = {
        actorId: actor.id,
        requesterId: request.requesterId,
        actorIsApprover: entitlement !== undefined && isApprover(policy, entitlement, actor.username),
        actorAlreadyDecided: approvals.some((approval) => approval.approverId === actor.id),
        now,
        pendingUntil: request.pendingUntil,
      };
      // Quorum counts people who are approvers at decision time (DESIGN §4.3), not whoever once was.
      const approvalsBefore = approvals.filter(
        (approval) =>
          approval.decision === 'approve' &&
          entitlement !== undefined &&
          isApprover(policy, entitlement, approval.username),
      ).length;
      const next =
        decision === 'approve'
          ? checked(
              transition(request.state as RequestState, 'approve', {
                ...guards,
                approvalsBefore,
                approvalsRequired: request.approvalsRequired,
              }),
            )
          : checked(transition(request.state as RequestState, 'deny', guards));

      await manager.insert(ApprovalEntity, {
        id: uuidv7(),
        requestId,
        approverId: actor.id,
        decision,
        comment,
        credentialId: evidence.credentialId,
        authenticatorData: evidence.authenticatorData,
        clientDataJson: evidence.clientDataJson,
        signature: evidence.signature,
        nonce: evidence.nonce,
        subjectDigest: evidence.subjectDigest,
        at: now,
      });
      await appendAuditEvent(manager, {
        actorId: actor.id,
        action: 'approval.recorded',
        subjectType: 'request',
        subjectId: requestId,
        requestId,
        data: {
          approver: actor.username,
          decision,
          comment,
          approvals: approvalsBefore + (decision === 'approve' ? 1 : 0),
          approvalsRequired: request.approvalsRequired,
          evidence: evidenceForAudit(evidence),
        },
      });
      if (next === request.state) return request;

      // The activation window opens at the scheduled start, if any, so a scheduled request can be activated.
      const windowOpens = request.notBefore && request.notBefore > now ? request.notBefore : now;
      const activationWindow = entitlement?.approval?.activationWindowSeconds ?? 0;
      await this.compareAndSet(manager, request, next, {
        decidedAt: now,
        activateBy: next === RequestState.APPROVED ? addSeconds(windowOpens, activationWindow) : null,
        ...(next === RequestState.DENIED ? { endedAt: now, endReason: 'denied' } : {}),
      });
      await appendAuditEvent(manager, {
        actorId: actor.id,
        action: next === RequestState.APPROVED ? 'request.approved' : 'request.denied',
        subjectType: 'request',
        subjectId: requestId,
        requestId,
        data:
          next === RequestState.APPROVED
            ? { activateBy: request.activateBy?.toISOString() }
            : { reason: comment },
      });
      return request;
    });
  }

  /**
   * Activates an approved request: the window starts now (PostgreSQL's clock), the connector mints a
   * credential that expires on its own at notAfter, and the revocation job is scheduled after commit.
   */
  async activate(
    actor: Actor,
    requestId: string,
    evidence: StepUpEvidence,
  ): Promise<{ request: ElevationRequestEntity; grant: GrantEntity; credential: Credential }> {
    const current = this.policies.current().policy;
    // Set once a credential exists outside the broker, so a failed commit can take it back.
    const issued: { undo?: () => Promise<void>; externalRef?: string } = {};
    try {
      const result = await this.dataSource.transaction(async (manager) => {
        const request = await this.lockVisible(manager, actor, requestId, current);
        assertConfirmed(request, evidence, actor, 'activate');
        const [{ now, not_after: notAfter }] = (await manager.query(
          `SELECT now() AS now, date_trunc('second', now()) + make_interval(secs => $1) AS not_after`,
          [request.durationSeconds],
        )) as Array<{ now: Date; not_after: Date }>;
        const next = checked(
          transition(request.state as RequestState, 'activate', {
            actorId: actor.id,
            requesterId: request.requesterId,
            now,
            notBefore: request.notBefore,
            activateBy: request.activateBy,
          }),
        );
        // The policy in force must still offer this entitlement to this requester…
        const offered = findEntitlement(current, request.entitlementId);
        if (!offered || !isEligible(current, offered, actor.username)) {
          throw new DomainError(
            ErrorCode.NOT_ELIGIBLE,
            `The policy in force no longer grants "${request.entitlementId}" to you`,
          );
        }
        // …while connector settings come from the version the request was filed under.
        const policy = await this.policies.byHash(request.policyHash);
        const entitlement = findEntitlement(policy, request.entitlementId);
        if (!entitlement)
          throw new DomainError(ErrorCode.INTERNAL, 'Entitlement missing from its policy version');
        const connector = this.connectors.get(policy, entitlement.connector);
        const grantId = uuidv7();
        const value = await connector
          .mint({
            grantId,
            requestId,
            subject: actor.username,
            entitlementId: entitlement.id,
            scope: request.scope,
            notAfter,
          })
          .catch((error: unknown) => {
            this.logger.error(`Connector ${entitlement.connector} failed to mint: ${String(error)}`);
            throw new DomainError(
              ErrorCode.CONNECTOR_FAILED,
              `Connector "${entitlement.connector}" failed to mint`,
            );
          });
        issued.externalRef = value.externalRef;
        issued.undo = () => connector.revoke(value.externalRef);

        const grant = manager.create(GrantEntity, {
          id: grantId,
          requestId,
          connector: entitlement.connector,
          connectorType: connector.type,
          externalRef: value.externalRef,
          fingerprint: value.fingerprint,
          issuedAt: now,
          notAfter,
          state: 'ACTIVE',
          revokedAt: null,
          revokeAttempts: 0,
          lastError: null,
        });
        await manager.insert(GrantEntity, grant);
        await this.compareAndSet(manager, request, next, { activatedAt: now, endsAt: notAfter });
        await appendAuditEvent(manager, {
          actorId: actor.id,
          action: 'request.activated',
          subjectType: 'request',
          subjectId: requestId,
          requestId,
          data: {
            grantId,
            activatedAt: now.toISOString(),
            notAfter: notAfter.toISOString(),
            evidence: evidenceForAudit(evidence),
          },
        });
        await appendAuditEvent(manager, {
          actorId: actor.id,
          action: 'grant.issued',
          subjectType: 'grant',
          subjectId: grantId,
          requestId,
          data: {
            connector: entitlement.connector,
            connectorType: connector.type,
            externalRef: value.externalRef,
            fingerprint: value.fingerprint,
            notAfter: notAfter.toISOString(),
          },
        });
        return { request, grant, credential: value.credential };
      });
      await this.jobs.scheduleRevocation(result.grant.id, result.grant.notAfter).catch((error: unknown) => {
        // The grant is committed; the sweeper enqueues its revocation from PostgreSQL within one interval.
        this.logger.warn(`Could not enqueue revocation of grant ${result.grant.id}: ${String(error)}`);
      });
      return result;
    } catch (error) {
      // The credential exists outside but its grant did not commit: take it back now.
      await issued.undo?.().catch((revokeError: unknown) => {
        this.logger.error(`Could not undo credential ${issued.externalRef}: ${String(revokeError)}`);
      });
      throw error;
    }
  }

  /** Ends an ACTIVE request whose window has passed; called by the revocation of its grant. */
  async endAtExpiry(manager: EntityManager, requestId: string, now: Date): Promise<void> {
    const request = await manager.findOne(ElevationRequestEntity, {
      where: { id: requestId },
      lock: { mode: 'pessimistic_write' },
    });
    if (!request || request.state !== RequestState.ACTIVE || !request.endsAt) return;
    const next = checked(transition(RequestState.ACTIVE, 'end', { now, notAfter: request.endsAt }));
    await this.compareAndSet(manager, request, next, { endedAt: now, endReason: 'expired' });
    await appendAuditEvent(manager, {
      actorId: SYSTEM_ACTOR,
      action: 'request.ended',
      subjectType: 'request',
      subjectId: requestId,
      requestId,
      data: { reason: 'expired', endedAt: now.toISOString() },
    });
  }

  /**
   * What a step-up on a request commits to: the digest of its stored immutable fields, and the entitlement's
   * authenticator requirement (from the policy in force, else the version the request was filed under).
   */
  async stepUpBinding(
    actor: Actor,
    requestId: string,
    action: 'approve' | 'deny' | 'activate' | 'revoke',
  ): Promise<{ subjectDigest: string; authenticator: Entitlement['authenticator'] }> {
    const request = await this.get(actor, requestId);
    const { policy } = this.policies.current();
    const entitlement =
      findEntitlement(policy, request.entitlementId) ??
      findEntitlement(await this.policies.byHash(request.policyHash), request.entitlementId);
    // Refuse up front what the decision would refuse anyway, before anyone touches their passkey.
    if (action === 'approve' || action === 'deny') {
      if (request.requesterId === actor.id) {
        throw new DomainError(ErrorCode.SELF_APPROVAL, 'You cannot decide on your own request');
      }
      if (!entitlement || !isApprover(policy, entitlement, actor.username)) {
        throw new DomainError(
          ErrorCode.NOT_AN_APPROVER,
          `You are not an approver of "${request.entitlementId}"`,
        );
      }
    }
    if (action === 'activate' && request.requesterId !== actor.id) {
      throw new DomainError(ErrorCode.NOT_REQUESTER, 'Only the requester can activate a request');
    }
    return {
      subjectDigest: subjectDigest(requestSubject(request)),
      authenticator: entitlement?.authenticator ?? { deviceBound: false, aaguids: null },
    };
  }

  /** One request, if the actor may see it (requester, an approver of its entitlement, admin, auditor). */
  async get(actor: Actor, requestId: string): Promise<ElevationRequestEntity> {
    const request = await this.dataSource.getRepository(ElevationRequestEntity).findOneBy({ id: requestId });
    if (!request || !this.canSee(actor, request, this.policies.current().policy))
      throw requestNotFound(requestId);
    return request;
  }

  /** Requests the actor may see, newest first, keyset-paginated by id (UUIDv7 ids sort by time). */
  async list(
    actor: Actor,
    query: RequestListQuery,
  ): Promise<{ items: ElevationRequestEntity[]; nextCursor: string | null }> {
    const { policy } = this.policies.current();
    const builder = this.dataSource
      .getRepository(ElevationRequestEntity)
      .createQueryBuilder('request')
      .orderBy('request.id', 'DESC')
      .limit(query.limit + 1);
    if (!actor.roles.includes('admin') && !actor.roles.includes('auditor')) {
      const approvable = policy.entitlements
        .filter((entitlement) => isApprover(policy, entitlement, actor.username))
        .map((entitlement) => entitlement.id);
      builder.where('(request.requester_id = :actorId OR request.entitlement_id = ANY(:approvable))', {
        actorId: actor.id,
        approvable,
      });
    }
    if (query.cursor) builder.andWhere('request.id < :cursor', { cursor: query.cursor });
    if (query.state) builder.andWhere('request.state = :state', { state: query.state });
    const rows = await builder.getMany();
    const items = rows.slice(0, query.limit);
    return { items, nextCursor: rows.length > query.limit ? items[items.length - 1].id : null };
  }

  /** Usernames by user id, for shaping responses. */
  async usernames(ids: string[]): Promise<Map<string, string>> {
    if (ids.length === 0) return new Map();
    const users = await this.dataSource
      .getRepository(UserEntity)
      .createQueryBuilder('user')
      .where('user.id = ANY(:ids)', { ids })
      .getMany();
    return new Map(users.map((user) => [user.id, user.username]));
  }

  private canSee(actor: Actor, request: ElevationRequestEntity, policy: Policy): boolean {
    if (request.requesterId === actor.id) return true;
    if (actor.roles.includes('admin') || actor.roles.includes('auditor')) return true;
    const entitlement = findEntitlement(policy, request.entitlementId);
    return entitlement !== undefined && isApprover(policy, entitlement, actor.username);
  }

  /** Loads and row-locks a request, so decisions on one request serialise; 404 when not visible. */
  private async lockVisible(
    manager: EntityManager,
    actor: Actor,
    requestId: string,
    policy: Policy,
  ): Promise<ElevationRequestEntity> {
    const request = await manager.findOne(ElevationRequestEntity, {
      where: { id: requestId },
      lock: { mode: 'pessimistic_write' },
    });
    if (!request || !this.canSee(actor, request, policy)) throw requestNotFound(requestId);
    return request;
  }

  /** `UPDATE … WHERE id = $1 AND state = $expected`; exactly one concurrent caller wins (DESIGN §4.2). */
  private async compareAndSet(
    manager: EntityManager,
    request: ElevationRequestEntity,
    next: RequestState,
    patch: RequestPatch,
  ): Promise<void> {
    const expected = request.state as RequestState;
    const result = await manager
      .createQueryBuilder()
      .update(ElevationRequestEntity)
      .set({ ...patch, state: next })
      .where('id = :id AND state = :expected', { id: request.id, expected })
      .execute();
    if (result.affected !== 1) {
      throw new DomainError(
        CONFLICT_CODE[expected] ?? ErrorCode.REQUEST_FINISHED,
        'The request changed meanwhile',
      );
    }
    Object.assign(request, patch, { state: next });
  }
}

/** Policy checks on a new request's fields (entitlement found, requester eligible). */
function checkRequestAgainstEntitlement(entitlement: Entitlement, input: CreateRequestInput): void {
  if (input.durationSeconds > entitlement.maxDurationSeconds) {
    throw new DomainError(
      ErrorCode.DURATION_TOO_LONG,
      `"${entitlement.id}" allows at most ${entitlement.maxDurationSeconds} seconds`,
      { maxDurationSeconds: entitlement.maxDurationSeconds },
    );
  }
  if (entitlement.requires.justification && input.justification.trim().length === 0) {
    throw new DomainError(ErrorCode.JUSTIFICATION_REQUIRED, 'A justification is required');
  }
  const pattern = entitlement.requires.ticketPattern;
  if (pattern) {
    if (!input.ticket)
      throw new DomainError(ErrorCode.TICKET_REQUIRED, `"${entitlement.id}" requires a ticket`);
    if (!new RegExp(pattern).test(input.ticket)) {
      throw new DomainError(ErrorCode.TICKET_INVALID, `The ticket must match ${pattern}`, { pattern });
    }
  }
}

/** The step-up was made by this actor, for this action, on this request as it stands now (DESIGN §4.4). */
function assertConfirmed(
  request: ElevationRequestEntity,
  evidence: StepUpEvidence,
  actor: Actor,
  action: StepUpEvidence['action'],
): void {
  if (evidence.userId !== actor.id || evidence.action !== action || evidence.subjectId !== request.id) {
    throw new DomainError(ErrorCode.STEP_UP_INVALID, 'The confirmation does not match this call');
  }
  if (evidence.subjectDigest !== subjectDigest(requestSubject(request))) {
    throw new DomainError(ErrorCode.STEP_UP_SUBJECT_CHANGED, 'The request changed after you confirmed it');
  }
}

function checked(outcome: RequestState | DomainError): RequestState {
  if (outcome instanceof DomainError) throw outcome;
  return outcome;
}

function requestNotFound(id: string): DomainError {
  return new DomainError(ErrorCode.REQUEST_NOT_FOUND, `No request ${id}`);
}
