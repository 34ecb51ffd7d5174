import { Inject, Injectable, Logger } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { appendAuditEvent, SYSTEM_ACTOR } from '../audit/audit-log.js';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import type { Credential, GrantSpec } from '../connectors/connector.js';
import { databaseNow } from '../db/clock.js';
import { ApprovalEntity, ElevationRequestEntity, GrantEntity, UserEntity } from '../db/index.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import {
  DEFAULT_ACTIVATION_WINDOW_SECONDS,
  findEntitlement,
  isApprover,
  isEligible,
  membersOf,
  type Entitlement,
  type Policy,
} from '../domain/policy.js';
import { countedApprovals, whyNotCounted, type QuorumContext } from '../domain/quorum.js';
import { initialState, RequestState, transition } from '../domain/request-state.js';
import { JobProducer } from '../jobs/job-producer.js';
import { evidenceForAudit, type StepUpEvidence } from '../webauthn/evidence.js';
import { requestSubject, subjectDigest } from '../webauthn/step-up-binding.js';
import type { Actor } from './actor.js';
import { assertMayRequest, lockOutAfterRepeatedDenials } from './anti-fatigue.js';
import { ConnectorRegistry } from './connector-registry.js';
import { PolicyService } from './policy.service.js';

export interface CreateRequestInput {
  entitlementId: string;
  durationSeconds: number;
  justification: string;
  ticket?: string | null;
  notBefore?: Date | null;
  sshPublicKey?: string | null;
  /** An extension: the ACTIVE request whose end it moves (DESIGN §3 extendsRequestId). */
  extendsRequestId?: string | null;
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
    'decidedAt' | 'activateBy' | 'activatedAt' | 'endsAt' | 'endedAt' | 'endReason' | 'reviewDueAt'
  >
>;

/** A credential minted for a request, shown once; the grant row keeps only its fingerprint. */
export interface Activation {
  request: ElevationRequestEntity;
  grant: GrantEntity;
  credential: Credential;
}

/** Jobs to enqueue once the transaction has committed (never inside it: DESIGN §4). */
interface AfterCommit {
  revokeAt: Array<{ grantId: string; notAfter: Date }>;
  revokeNow: string[];
  expireAt: Array<{ requestId: string; deadline: Date }>;
  startAt: Array<{ requestId: string; notBefore: Date }>;
}

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

function afterCommit(): AfterCommit {
  return { revokeAt: [], revokeNow: [], expireAt: [], startAt: [] };
}

/**
 * The only writer of a request's state (STYLE: one writer per aggregate). Every transition is the pure
 * `transition()`, a compare-and-set UPDATE and its audit event, in one transaction; jobs follow the commit.
 */
@Injectable()
export class RequestsService {
  private readonly logger = new Logger(RequestsService.name);

  constructor(
    private readonly dataSource: DataSource,
    private readonly policies: PolicyService,
    private readonly connectors: ConnectorRegistry,
    private readonly jobs: JobProducer,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /**
   * Files a request under the policy in force: PENDING for approval, or APPROVED at once for a declared
   * self-service entitlement (activated later with the requester's own step-up). Break-glass goes through
   * breakGlass(); an extension names the ACTIVE request whose end it moves.
   */
  async create(actor: Actor, input: CreateRequestInput): Promise<ElevationRequestEntity> {
    const { hash, policy } = await this.policies.inForce();
    const entitlement = this.requestable(policy, actor, input.entitlementId);
    if (entitlement.breakGlass) {
      throw new DomainError(
        ErrorCode.STEP_UP_REQUIRED,
        `"${entitlement.id}" is break-glass: it activates at once with a "break-glass" step-up in the body`,
      );
    }
    checkRequestAgainstEntitlement(entitlement, input);
    return this.transactWithJobs(async (manager, jobs) => {
      await lockUser(manager, actor.id);
      const now = await databaseNow(manager);
      if (input.notBefore && input.notBefore.getTime() <= now.getTime()) {
        throw new DomainError(ErrorCode.VALIDATION_FAILED, 'notBefore must be in the future');
      }
      if (input.extendsRequestId) await this.checkExtendable(manager, actor, input);
      await assertMayRequest(manager, this.config.antiFatigue, actor, entitlement.id, {
        extension: Boolean(input.extendsRequestId),
      });
      const selfService = entitlement.selfService;
      const state = initialState({ breakGlass: false, selfService });
      const windowOpens = input.notBefore ?? now;
      const activationWindow =
        entitlement.approval?.activationWindowSeconds ?? DEFAULT_ACTIVATION_WINDOW_SECONDS;
      const request = await this.insertRequest(manager, actor, entitlement, hash, input, {
        state,
        now,
        breakGlass: false,
        approvalsRequired: entitlement.approval?.approvals ?? 0,
        pendingUntil: selfService ? null : addSeconds(now, entitlement.approval!.pendingTtlSeconds),
        decidedAt: selfService ? now : null,
        activateBy: selfService ? addSeconds(windowOpens, activationWindow) : null,
      });
      if (selfService) {
        await appendAuditEvent(manager, {
          actorId: actor.id,
          action: 'request.approved',
          subjectType: 'request',
          subjectId: request.id,
          requestId: request.id,
          data: { selfService: true, activateBy: request.activateBy!.toISOString() },
        });
        jobs.expireAt.push({ requestId: request.id, deadline: request.activateBy! });
        if (input.notBefore) jobs.startAt.push({ requestId: request.id, notBefore: input.notBefore });
      } else {
        jobs.expireAt.push({ requestId: request.id, deadline: request.pendingUntil! });
      }
      return request;
    });
  }

  /**
   * Break-glass (DESIGN §3): pre-approved by policy, ACTIVE at once with the requester's step-up, capped in
   * duration, loud (an alert event naming who to notify) and queued for post-review.
   */
  async breakGlass(actor: Actor, input: CreateRequestInput, evidence: StepUpEvidence): Promise<Activation> {
    const { hash, policy } = await this.policies.inForce();
    const entitlement = this.requestable(policy, actor, input.entitlementId);
    if (!entitlement.breakGlass) {
      throw new DomainError(
        ErrorCode.VALIDATION_FAILED,
        `"${entitlement.id}" is not a break-glass entitlement`,
      );
    }
    if (input.notBefore || input.extendsRequestId) {
      throw new DomainError(
        ErrorCode.VALIDATION_FAILED,
        'Break-glass starts now and cannot extend a request',
      );
    }
    if (!input.justification.trim()) {
      throw new DomainError(ErrorCode.JUSTIFICATION_REQUIRED, 'Break-glass always needs a justification');
    }
    checkRequestAgainstEntitlement(entitlement, input);
    if (
      evidence.userId !== actor.id ||
      evidence.action !== 'break-glass' ||
      evidence.subjectId !== entitlement.id
    ) {
      throw new DomainError(ErrorCode.STEP_UP_INVALID, 'The confirmation does not match this call');
    }
    const { notify, postReviewWithinSeconds } = entitlement.breakGlass;
    return this.withMintUndo((issued) =>
      this.transactWithJobs(async (manager, jobs) => {
        await lockUser(manager, actor.id);
        const { now, notAfter } = await windowFrom(manager, input.durationSeconds);
        const [{ open }] = (await manager.query(
          `SELECT count(*)::int AS open FROM elevation_requests
            WHERE requester_id = $1 AND entitlement_id = $2 AND state IN ('PENDING', 'APPROVED', 'ACTIVE')`,
          [actor.id, entitlement.id],
        )) as Array<{ open: number }>;
        if (open > 0) {
          throw new DomainError(
            ErrorCode.OPEN_REQUEST_EXISTS,
            `You already hold or await "${entitlement.id}"`,
          );
        }
        const { request, auditCreated } = await this.insertRequestRow(
          manager,
          actor,
          entitlement,
          hash,
          input,
          {
            state: initialState({ breakGlass: true, selfService: false }),
            now,
            breakGlass: true,
            approvalsRequired: 0,
            pendingUntil: null,
            decidedAt: now,
            activateBy: null,
            activatedAt: now,
            endsAt: notAfter,
            reviewDueAt: addSeconds(now, postReviewWithinSeconds),
          },
        );
        // Mint before the first audit append: the append locks the chain head until commit, and every
        // audited write in the system would wait for the connector's network call.
        const activation = await this.mintGrant(
          manager,
          actor,
          request,
          policy,
          entitlement,
          now,
          notAfter,
          issued,
        );
        const notifyUsers = [...new Set(notify.flatMap((group) => membersOf(policy, group)))].sort();
        this.logger.warn(
          `BREAK-GLASS: ${actor.username} activated "${entitlement.id}" until ${notAfter.toISOString()}; notify ${notifyUsers.join(', ')}`,
        );
        await auditCreated();
        await appendAuditEvent(manager, {
          actorId: actor.id,
          action: 'break-glass.activated',
          subjectType: 'request',
          subjectId: request.id,
          requestId: request.id,
          data: {
            alert: true,
            entitlementId: entitlement.id,
            justification: input.justification,
            notifyGroups: notify,
            notifyUsers,
            reviewDueAt: request.reviewDueAt!.toISOString(),
            evidence: evidenceForAudit(evidence),
          },
        });
        await this.auditGrantIssued(manager, actor, activation.grant);
        jobs.revokeAt.push({ grantId: activation.grant.id, notAfter });
        return activation;
      }),
    );
  }

  /** Records one approver's approve or deny; the request moves on when quorum is reached or on any deny. */
  async decide(
    actor: Actor,
    requestId: string,
    decision: 'approve' | 'deny',
    comment: string | null,
    evidence: StepUpEvidence,
  ): Promise<ElevationRequestEntity> {
    const { policy } = await this.policies.inForce();
    return this.transactWithJobs(async (manager, jobs) => {
      const request = await this.lockVisible(manager, actor, requestId, policy);
      assertConfirmed(request, evidence, actor, decision);
      const now = await databaseNow(manager);
      const entitlement = findEntitlement(policy, request.entitlementId);
      const approvals = (await manager.query(
        `SELECT a.approver_id AS "approverId", a.decision, u.username, u.status = 'active' AS active, a.at
           FROM approvals a JOIN users u ON u.id = a.approver_id WHERE a.request_id = $1`,
        [requestId],
      )) as Array<{
        approverId: string;
        decision: 'approve' | 'deny';
        username: string;
        active: boolean;
        at: Date;
      }>;
      const guards = {
        actorId: actor.id,
        requesterId: request.requesterId,
        actorIsApprover: entitlement !== undefined && isApprover(policy, entitlement, actor.username),
        actorAlreadyDecided: approvals.some((approval) => approval.approverId === actor.id),
        now,
        pendingUntil: request.pendingUntil,
      };
      const quorum: QuorumContext = {
        policy,
        entitlement,
        recoveries: await recoveriesOf(manager, [actor.id, ...approvals.map((item) => item.approverId)]),
      };
      const approvalsBefore = countedApprovals(approvals, quorum);
      const uncounted =
        decision === 'approve'
          ? whyNotCounted(
              { approverId: actor.id, username: actor.username, decision, active: true, at: now },
              quorum,
            )
          : null;
      const recoveryCooldown = uncounted === 'recovery-cooldown';
      const next =
        decision === 'approve'
          ? checked(
              transition(request.state as RequestState, 'approve', {
                ...guards,
                approvalsBefore,
                approvalsRequired: request.approvalsRequired,
                actorCounts: uncounted === null,
              }),
            )
          : checked(transition(request.state as RequestState, 'deny', guards));

      const rubberStamp =
        decision === 'approve' && (await this.rubberStamped(manager, requestId, actor.id, now));
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
      if (rubberStamp)
        this.logger.warn(`Rubber-stamp signal: ${actor.username} approved ${requestId} within seconds`);
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
          approvals: approvalsBefore + (decision === 'approve' && uncounted === null ? 1 : 0),
          approvalsRequired: request.approvalsRequired,
          ...(decision === 'approve' ? { rubberStamp } : {}),
          // Recorded, but not toward quorum: the approver's account was recovered too recently.
          ...(recoveryCooldown ? { recoveryCooldown: true, alert: true } : {}),
          evidence: evidenceForAudit(evidence),
        },
      });
      if (next === request.state) return request;

      // The activation window opens at the scheduled start, if any, so a scheduled request can be activated.
      const windowOpens = request.notBefore && request.notBefore > now ? request.notBefore : now;
      const activationWindow =
        entitlement?.approval?.activationWindowSeconds ?? DEFAULT_ACTIVATION_WINDOW_SECONDS;
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
      if (next === RequestState.APPROVED) {
        jobs.expireAt.push({ requestId, deadline: request.activateBy! });
        if (request.notBefore && request.notBefore > now) {
          jobs.startAt.push({ requestId, notBefore: request.notBefore });
        }
      } else {
        await lockOutAfterRepeatedDenials(
          manager,
          this.config.antiFatigue,
          request.requesterId,
          request.entitlementId,
          actor.id,
        );
      }
      return request;
    });
  }

  /**
   * Activates an approved request: the window starts now (PostgreSQL's clock), the connector mints a
   * credential that expires on its own at notAfter, and the revocation job is scheduled after commit.
   * An extension's credential runs to its original's end plus its own duration, never longer than the cap.
   */
  async activate(actor: Actor, requestId: string, evidence: StepUpEvidence): Promise<Activation> {
    const current = (await this.policies.inForce()).policy;
    // Load the request's policy version before the row lock: inside it, a cache miss would need a second
    // pooled connection while this one holds the lock, and enough parallel activations exhaust the pool.
    const filed = await this.dataSource.getRepository(ElevationRequestEntity).findOneBy({ id: requestId });
    if (filed) await this.policies.byHash(filed.policyHash);
    return this.withMintUndo((issued) =>
      this.transactWithJobs(async (manager, jobs) => {
        // An extension's original is locked first, as suspension and revocation lock them (older id first).
        if (filed?.extendsRequestId) {
          await manager.query(`SELECT 1 FROM elevation_requests WHERE id = $1 FOR SHARE`, [
            filed.extendsRequestId,
          ]);
        }
        const request = await this.lockVisible(manager, actor, requestId, current);
        assertConfirmed(request, evidence, actor, 'activate');
        const window = await windowFrom(manager, request.durationSeconds);
        const now = window.now;
        let notAfter = window.notAfter;
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
        if (request.extendsRequestId) {
          notAfter = await extendedEnd(manager, request, entitlement, now, notAfter);
        }
        await this.compareAndSet(manager, request, next, { activatedAt: now, endsAt: notAfter });
        // Mint before the first audit append (see breakGlass).
        const activation = await this.mintGrant(
          manager,
          actor,
          request,
          policy,
          entitlement,
          now,
          notAfter,
          issued,
        );
        await appendAuditEvent(manager, {
          actorId: actor.id,
          action: 'request.activated',
          subjectType: 'request',
          subjectId: requestId,
          requestId,
          data: {
            activatedAt: now.toISOString(),
            notAfter: notAfter.toISOString(),
            ...(request.extendsRequestId ? { extendsRequestId: request.extendsRequestId } : {}),
            evidence: evidenceForAudit(evidence),
          },
        });
        await this.auditGrantIssued(manager, actor, activation.grant);
        jobs.revokeAt.push({ grantId: activation.grant.id, notAfter });
        return activation;
      }),
    );
  }

  /** Cancels a PENDING or APPROVED request (requester or admin); audited. */
  async cancel(actor: Actor, requestId: string, reason: string | null): Promise<ElevationRequestEntity> {
    const { policy } = await this.policies.inForce();
    return this.dataSource.transaction(async (manager) => {
      const request = await this.lockVisible(manager, actor, requestId, policy);
      const next = checked(
        transition(request.state as RequestState, 'cancel', {
          actorId: actor.id,
          requesterId: request.requesterId,
          actorIsAdmin: actor.roles.includes('admin'),
        }),
      );
      await this.cancelLocked(manager, request, next, { actorId: actor.id, endReason: 'cancelled', reason });
      return request;
    });
  }

  /**
   * Early revoke by the requester, an approver or an admin, with a `revoke` step-up: the request becomes
   * REVOKED and its grant's revocation job runs at once instead of at notAfter.
   */
  async revoke(
    actor: Actor,
    requestId: string,
    reason: string,
    evidence: StepUpEvidence,
  ): Promise<ElevationRequestEntity> {
    const { policy } = await this.policies.inForce();
    return this.transactWithJobs(async (manager, jobs) => {
      const request = await this.lockVisible(manager, actor, requestId, policy);
      assertConfirmed(request, evidence, actor, 'revoke');
      const entitlement = findEntitlement(policy, request.entitlementId);
      // Its extensions end with it: an active one would otherwise keep the access running.
      const extensions = (await manager.query(
        `SELECT id FROM elevation_requests WHERE extends_request_id = $1
            AND state IN ('PENDING', 'APPROVED', 'ACTIVE') ORDER BY id FOR UPDATE`,
        [requestId],
      )) as Array<{ id: string }>;
      await lockGrantsOf(manager, [requestId, ...extensions.map(({ id }) => id)]);
      const who = {
        actorId: actor.id,
        actorIsApprover: entitlement !== undefined && isApprover(policy, entitlement, actor.username),
        actorIsAdmin: actor.roles.includes('admin'),
        reason,
        evidence,
        jobs,
      };
      await this.revokeLocked(manager, request, who);
      for (const { id } of extensions) {
        const extension = await manager.findOneByOrFail(ElevationRequestEntity, { id });
        if (extension.state === RequestState.ACTIVE) {
          await this.revokeLocked(manager, extension, {
            ...who,
            reason: `${reason} (extended request revoked)`,
          });
          continue;
        }
        await this.cancelLocked(manager, extension, RequestState.CANCELLED, {
          actorId: actor.id,
          endReason: 'cancelled',
          reason: 'the request it extends was revoked',
        });
      }
      return request;
    });
  }

  /**
   * Suspension (inside the caller's transaction): every PENDING or APPROVED request of the user is
   * cancelled and every ACTIVE one revoked at once. Returns the grants whose revocation must run now.
   */
  async endAllOfUser(
    manager: EntityManager,
    userId: string,
    actorId: string,
    reason: string,
  ): Promise<string[]> {
    const open = (await manager.query(
      `SELECT id FROM elevation_requests WHERE requester_id = $1 AND state IN ('PENDING', 'APPROVED', 'ACTIVE')
        ORDER BY id FOR UPDATE`,
      [userId],
    )) as Array<{ id: string }>;
    await lockGrantsOf(
      manager,
      open.map(({ id }) => id),
    );
    const jobs = afterCommit();
    for (const { id } of open) {
      const request = await manager.findOneByOrFail(ElevationRequestEntity, { id });
      if (request.state === RequestState.ACTIVE) {
        await this.revokeLocked(manager, request, {
          actorId: null,
          actorIsApprover: false,
          actorIsAdmin: false,
          reason,
          evidence: null,
          jobs,
          auditActorId: actorId,
        });
        continue;
      }
      await this.cancelLocked(manager, request, RequestState.CANCELLED, {
        actorId,
        endReason: reason,
        reason,
      });
    }
    return jobs.revokeNow;
  }

  /** Runs the revocation of grants once a suspension has committed. */
  async revokeGrantsNow(grantIds: string[]): Promise<void> {
    await this.enqueue({ ...afterCommit(), revokeNow: grantIds });
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
   * The lifecycle job: expires a PENDING request past its pending TTL, or an APPROVED one past its
   * activation window. Acts on PostgreSQL's state and clock; reports how long to wait when early.
   */
  async expireIfDue(
    requestId: string,
  ): Promise<{ status: 'expired' | 'not-applicable' } | { status: 'not-due'; remainingMs: number }> {
    return this.dataSource.transaction(async (manager) => {
      const request = await manager.findOne(ElevationRequestEntity, {
        where: { id: requestId },
        lock: { mode: 'pessimistic_write' },
      });
      if (!request) return { status: 'not-applicable' } as const;
      const deadline =
        request.state === RequestState.PENDING
          ? request.pendingUntil
          : request.state === RequestState.APPROVED
            ? request.activateBy
            : null;
      if (!deadline) return { status: 'not-applicable' } as const;
      const now = await databaseNow(manager);
      const outcome = transition(request.state as RequestState, 'expire', { now, deadline });
      if (outcome instanceof DomainError) {
        return { status: 'not-due', remainingMs: Math.max(1, deadline.getTime() - now.getTime()) } as const;
      }
      const reason = request.state === RequestState.PENDING ? 'pending-ttl' : 'activation-window';
      await this.compareAndSet(manager, request, outcome, { endedAt: now, endReason: reason });
      await appendAuditEvent(manager, {
        actorId: SYSTEM_ACTOR,
        action: 'request.expired',
        subjectType: 'request',
        subjectId: requestId,
        requestId,
        data: { reason, deadline: deadline.toISOString() },
      });
      return { status: 'expired' } as const;
    });
  }

  /**
   * The lifecycle job at notBefore: the activation window of an approved scheduled request opens; the
   * requester activates it with their own step-up (the credential is shown once, to them), audited here.
   */
  async openScheduledWindow(
    requestId: string,
  ): Promise<{ status: 'opened' | 'not-applicable' } | { status: 'not-due'; remainingMs: number }> {
    return this.dataSource.transaction(async (manager) => {
      const request = await manager.findOne(ElevationRequestEntity, {
        where: { id: requestId },
        lock: { mode: 'pessimistic_write' },
      });
      if (!request?.notBefore || request.state !== RequestState.APPROVED)
        return { status: 'not-applicable' } as const;
      // Once per request: the sweeper may enqueue the job again after it ran.
      const [opened] = (await manager.query(
        `SELECT 1 FROM audit_events WHERE request_id = $1 AND action = 'request.window-opened' LIMIT 1`,
        [requestId],
      )) as unknown[];
      if (opened) return { status: 'not-applicable' } as const;
      const now = await databaseNow(manager);
      if (now < request.notBefore) {
        return { status: 'not-due', remainingMs: request.notBefore.getTime() - now.getTime() } as const;
      }
      await appendAuditEvent(manager, {
        actorId: SYSTEM_ACTOR,
        action: 'request.window-opened',
        subjectType: 'request',
        subjectId: requestId,
        requestId,
        data: {
          notBefore: request.notBefore.toISOString(),
          activateBy: request.activateBy?.toISOString() ?? null,
        },
      });
      return { status: 'opened' } as const;
    });
  }

  /** Re-enqueues lifecycle jobs of every open request from PostgreSQL (the sweeper; DESIGN §8). */
  async sweepLifecycle(): Promise<number> {
    const open = (await this.dataSource.query(
      `SELECT r.id, r.state, r.pending_until AS "pendingUntil", r.activate_by AS "activateBy",
              r.not_before AS "notBefore",
              NOT EXISTS (SELECT 1 FROM audit_events e
                           WHERE e.request_id = r.id AND e.action = 'request.window-opened') AS "awaitsStart"
         FROM elevation_requests r WHERE r.state IN ('PENDING', 'APPROVED')`,
    )) as Array<{
      id: string;
      state: string;
      pendingUntil: Date | null;
      activateBy: Date | null;
      notBefore: Date | null;
      awaitsStart: boolean;
    }>;
    for (const request of open) {
      const deadline = request.state === RequestState.PENDING ? request.pendingUntil : request.activateBy;
      if (deadline) await this.jobs.scheduleExpiry(request.id, deadline);
      if (request.state === RequestState.APPROVED && request.notBefore && request.awaitsStart) {
        await this.jobs.scheduleStart(request.id, request.notBefore);
      }
    }
    return open.length;
  }

  /** Marks a break-glass request reviewed (an approver of a notified group, an auditor or an admin). */
  async review(actor: Actor, requestId: string, comment: string): Promise<ElevationRequestEntity> {
    const { policy } = await this.policies.inForce();
    return this.dataSource.transaction(async (manager) => {
      const request = await this.lockVisible(manager, actor, requestId, policy);
      if (!request.breakGlass || request.reviewedAt) {
        throw new DomainError(ErrorCode.REVIEW_NOT_PENDING, 'This request awaits no post-review');
      }
      if (!this.mayReview(actor, request, policy)) {
        throw new DomainError(
          ErrorCode.FORBIDDEN,
          'Only a notified approver, an auditor or an admin can review',
        );
      }
      if (request.requesterId === actor.id) {
        throw new DomainError(ErrorCode.SELF_APPROVAL, 'You cannot review your own break-glass access');
      }
      const [[reviewed]] = (await manager.query(
        `UPDATE elevation_requests SET reviewed_at = now(), reviewed_by = $2, review_comment = $3
          WHERE id = $1 AND reviewed_at IS NULL RETURNING reviewed_at AS "reviewedAt"`,
        [requestId, actor.id, comment],
      )) as [Array<{ reviewedAt: Date }>, number];
      Object.assign(request, {
        reviewedAt: reviewed.reviewedAt,
        reviewedBy: actor.id,
        reviewComment: comment,
      });
      await appendAuditEvent(manager, {
        actorId: actor.id,
        action: 'break-glass.reviewed',
        subjectType: 'request',
        subjectId: requestId,
        requestId,
        data: {
          comment,
          reviewDueAt: request.reviewDueAt?.toISOString() ?? null,
          late: request.reviewDueAt !== null && reviewed.reviewedAt > request.reviewDueAt,
        },
      });
      return request;
    });
  }

  /** Break-glass requests awaiting post-review that the actor may review, most overdue first. */
  async reviewQueue(actor: Actor): Promise<Array<ElevationRequestEntity & { overdue: boolean }>> {
    const { policy } = await this.policies.inForce();
    const rows = (await this.dataSource.query(
      `SELECT id, review_due_at < now() AS overdue FROM elevation_requests
        WHERE break_glass AND reviewed_at IS NULL ORDER BY review_due_at, id`,
    )) as Array<{ id: string; overdue: boolean }>;
    if (rows.length === 0) return [];
    const requests = await this.dataSource
      .getRepository(ElevationRequestEntity)
      .createQueryBuilder('request')
      .where('request.id = ANY(:ids)', { ids: rows.map((row) => row.id) })
      .getMany();
    const byId = new Map(requests.map((request) => [request.id, request]));
    return rows
      .map((row) => ({ request: byId.get(row.id)!, overdue: row.overdue }))
      .filter(
        ({ request }) =>
          request && request.requesterId !== actor.id && this.mayReview(actor, request, policy),
      )
      .map(({ request, overdue }) => Object.assign(request, { overdue }));
  }

  /** Audits each break-glass review that became overdue, once (the sweeper). */
  async reportOverdueReviews(): Promise<number> {
    return this.dataSource.transaction(async (manager) => {
      const [overdue] = (await manager.query(
        `UPDATE elevation_requests SET review_overdue_at = now()
          WHERE break_glass AND reviewed_at IS NULL AND review_overdue_at IS NULL AND review_due_at < now()
          RETURNING id, requester_id AS "requesterId", entitlement_id AS "entitlementId", review_due_at AS "reviewDueAt"`,
      )) as [Array<{ id: string; requesterId: string; entitlementId: string; reviewDueAt: Date }>, number];
      for (const request of overdue) {
        this.logger.warn(`Break-glass request ${request.id} is overdue for post-review`);
        await appendAuditEvent(manager, {
          actorId: SYSTEM_ACTOR,
          action: 'break-glass.review-overdue',
          subjectType: 'request',
          subjectId: request.id,
          requestId: request.id,
          data: {
            alert: true,
            entitlementId: request.entitlementId,
            reviewDueAt: request.reviewDueAt.toISOString(),
          },
        });
      }
      return overdue.length;
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
    const { policy } = await this.policies.inForce();
    const request = await this.visible(actor, requestId, policy);
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

  /** The break-glass entitlement's authenticator requirement, for the step-up that creates it. */
  async breakGlassRequirement(entitlementId: string): Promise<Entitlement['authenticator']> {
    const { policy } = await this.policies.inForce();
    return findEntitlement(policy, entitlementId)?.authenticator ?? { deviceBound: false, aaguids: null };
  }

  /** One request, if the actor may see it; an approver's first look is recorded (the rubber-stamp signal). */
  async get(actor: Actor, requestId: string): Promise<ElevationRequestEntity> {
    return this.visible(actor, requestId, (await this.policies.inForce()).policy);
  }

  /** The request if the actor may see it under `policy`, else 404 (no lock). */
  private async visible(actor: Actor, requestId: string, policy: Policy): Promise<ElevationRequestEntity> {
    const request = await this.dataSource.getRepository(ElevationRequestEntity).findOneBy({ id: requestId });
    if (!request || !this.canSee(actor, request, policy)) throw requestNotFound(requestId);
    return request;
  }

  /** Records that an approver opened a request (first time only), for the rubber-stamp signal. */
  async recordView(actor: Actor, request: ElevationRequestEntity): Promise<void> {
    if (request.requesterId === actor.id || request.state !== RequestState.PENDING) return;
    await this.dataSource.query(
      `INSERT INTO request_views (request_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
      [request.id, actor.id],
    );
  }

  /** Requests the actor may see, newest first, keyset-paginated by id (UUIDv7 ids sort by time). */
  async list(
    actor: Actor,
    query: RequestListQuery,
  ): Promise<{ items: ElevationRequestEntity[]; nextCursor: string | null }> {
    const { policy } = await this.policies.inForce();
    const builder = this.dataSource
      .getRepository(ElevationRequestEntity)
      .createQueryBuilder('request')
      .orderBy('request.id', 'DESC')
      .limit(query.limit + 1);
    if (!actor.roles.includes('admin') && !actor.roles.includes('auditor')) {
      builder.where('(request.requester_id = :actorId OR request.entitlement_id = ANY(:approvable))', {
        actorId: actor.id,
        approvable: approvableBy(policy, actor),
      });
    }
    if (query.cursor) builder.andWhere('request.id < :cursor', { cursor: query.cursor });
    if (query.state) builder.andWhere('request.state = :state', { state: query.state });
    const rows = await builder.getMany();
    const items = rows.slice(0, query.limit);
    return { items, nextCursor: rows.length > query.limit ? items[items.length - 1].id : null };
  }

  /** Pending requests the actor may decide now: a current approver, not the requester, not yet decided. */
  async inbox(
    actor: Actor,
    query: RequestListQuery,
  ): Promise<{ items: ElevationRequestEntity[]; nextCursor: string | null }> {
    const { policy } = await this.policies.inForce();
    const builder = this.dataSource
      .getRepository(ElevationRequestEntity)
      .createQueryBuilder('request')
      .where(`request.state = 'PENDING' AND request.pending_until > now()`)
      .andWhere('request.entitlement_id = ANY(:approvable)', { approvable: approvableBy(policy, actor) })
      .andWhere('request.requester_id <> :actorId', { actorId: actor.id })
      .andWhere(
        'NOT EXISTS (SELECT 1 FROM approvals a WHERE a.request_id = request.id AND a.approver_id = :actorId)',
        { actorId: actor.id },
      )
      .orderBy('request.id', 'DESC')
      .limit(query.limit + 1);
    if (query.cursor) builder.andWhere('request.id < :cursor', { cursor: query.cursor });
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

  private requestable(policy: Policy, actor: Actor, entitlementId: string): Entitlement {
    const entitlement = findEntitlement(policy, entitlementId);
    if (!entitlement) {
      throw new DomainError(ErrorCode.ENTITLEMENT_NOT_FOUND, `No entitlement "${entitlementId}"`);
    }
    if (!isEligible(policy, entitlement, actor.username)) {
      throw new DomainError(ErrorCode.NOT_ELIGIBLE, `You are not eligible for "${entitlement.id}"`);
    }
    return entitlement;
  }

  private async checkExtendable(
    manager: EntityManager,
    actor: Actor,
    input: CreateRequestInput,
  ): Promise<void> {
    const original = await manager.findOne(ElevationRequestEntity, {
      where: { id: input.extendsRequestId! },
      lock: { mode: 'pessimistic_read' },
    });
    if (!original || original.requesterId !== actor.id) throw requestNotFound(input.extendsRequestId!);
    if (original.state !== RequestState.ACTIVE || original.breakGlass || original.extendsRequestId) {
      throw new DomainError(
        ErrorCode.NOT_EXTENDABLE,
        'Only an active, non-break-glass request that is not itself an extension can be extended',
      );
    }
    if (original.entitlementId !== input.entitlementId) {
      throw new DomainError(ErrorCode.VALIDATION_FAILED, 'An extension is for the same entitlement');
    }
    if (input.notBefore)
      throw new DomainError(ErrorCode.VALIDATION_FAILED, 'An extension cannot be scheduled');
  }

  /** Inserts the request and appends its request.created event. */
  private async insertRequest(
    ...args: Parameters<RequestsService['insertRequestRow']>
  ): Promise<ElevationRequestEntity> {
    const { request, auditCreated } = await this.insertRequestRow(...args);
    await auditCreated();
    return request;
  }

  /** Inserts the request row; its request.created event is appended when the caller runs auditCreated. */
  private async insertRequestRow(
    manager: EntityManager,
    actor: Actor,
    entitlement: Entitlement,
    policyHash: string,
    input: CreateRequestInput,
    fields: {
      state: RequestState;
      now: Date;
      breakGlass: boolean;
      approvalsRequired: number;
      pendingUntil: Date | null;
      decidedAt: Date | null;
      activateBy: Date | null;
      activatedAt?: Date;
      endsAt?: Date;
      reviewDueAt?: Date;
    },
  ): Promise<{ request: ElevationRequestEntity; auditCreated: () => Promise<unknown> }> {
    const id = uuidv7();
    await manager.query(
      `INSERT INTO elevation_requests (id, requester_id, entitlement_id, policy_hash, scope, duration_seconds,
         justification, ticket, not_before, break_glass, extends_request_id, ssh_public_key, approvals_required,
         state, created_at, pending_until, decided_at, activate_by, activated_at, ends_at, review_due_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)`,
      [
        id,
        actor.id,
        entitlement.id,
        policyHash,
        entitlement.scope,
        input.durationSeconds,
        input.justification,
        input.ticket ?? null,
        input.notBefore ?? null,
        fields.breakGlass,
        input.extendsRequestId ?? null,
        input.sshPublicKey ?? null,
        fields.approvalsRequired,
        fields.state,
        fields.now,
        fields.pendingUntil,
        fields.decidedAt,
        fields.activateBy,
        fields.activatedAt ?? null,
        fields.endsAt ?? null,
        fields.reviewDueAt ?? null,
      ],
    );
    const request = await manager.findOneByOrFail(ElevationRequestEntity, { id });
    const auditCreated = () =>
      appendAuditEvent(manager, {
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
          policyHash,
          scope: entitlement.scope,
          durationSeconds: input.durationSeconds,
          justification: input.justification,
          ticket: input.ticket ?? null,
          notBefore: input.notBefore?.toISOString() ?? null,
          approvalsRequired: fields.approvalsRequired,
          breakGlass: fields.breakGlass,
          selfService: entitlement.selfService,
          extendsRequestId: input.extendsRequestId ?? null,
          sshPublicKey: input.sshPublicKey ?? null,
        },
      });
    return { request, auditCreated };
  }

  /** Mints through the connector and inserts the grant row (its audit event is auditGrantIssued). */
  private async mintGrant(
    manager: EntityManager,
    actor: Actor,
    request: ElevationRequestEntity,
    policy: Policy,
    entitlement: Entitlement,
    now: Date,
    notAfter: Date,
    issued: MintUndo,
  ): Promise<Activation> {
    const connector = this.connectors.get(policy, entitlement.connector);
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
      requestId: request.id,
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
      revokeRequestedAt: null,
      revokeReason: null,
      overlapKey: connector.overlapKey?.(spec) ?? null,
    });
    await manager.insert(GrantEntity, grant);
    return { request, grant, credential: value.credential };
  }

  /** The grant.issued event (fingerprint and external reference, never the secret). */
  private async auditGrantIssued(manager: EntityManager, actor: Actor, grant: GrantEntity): Promise<void> {
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

  /** A credential exists outside the broker once minted: if its grant does not commit, take it back. */
  private async withMintUndo<T>(work: (issued: MintUndo) => Promise<T>): Promise<T> {
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

  /** Ends a locked PENDING or APPROVED request as CANCELLED, with its audit event. */
  private async cancelLocked(
    manager: EntityManager,
    request: ElevationRequestEntity,
    next: RequestState,
    how: { actorId: string; endReason: string; reason: string | null },
  ): Promise<void> {
    const now = await databaseNow(manager);
    await this.compareAndSet(manager, request, next, { endedAt: now, endReason: how.endReason });
    await appendAuditEvent(manager, {
      actorId: how.actorId,
      action: 'request.cancelled',
      subjectType: 'request',
      subjectId: request.id,
      requestId: request.id,
      data: { reason: how.reason },
    });
  }

  private async revokeLocked(
    manager: EntityManager,
    request: ElevationRequestEntity,
    who: {
      actorId: string | null;
      actorIsApprover: boolean;
      actorIsAdmin: boolean;
      reason: string;
      evidence: StepUpEvidence | null;
      jobs: AfterCommit;
      auditActorId?: string;
    },
  ): Promise<void> {
    const next = checked(
      transition(request.state as RequestState, 'revoke', {
        actorId: who.actorId,
        requesterId: request.requesterId,
        actorIsApprover: who.actorIsApprover,
        actorIsAdmin: who.actorIsAdmin,
      }),
    );
    const now = await databaseNow(manager);
    await this.compareAndSet(manager, request, next, { endedAt: now, endReason: 'revoked' });
    const [grants] = (await manager.query(
      `UPDATE grants SET revoke_requested_at = now(), revoke_reason = $2
        WHERE request_id = $1 AND state <> 'REVOKED' AND revoke_requested_at IS NULL RETURNING id`,
      [request.id, who.reason],
    )) as [Array<{ id: string }>, number];
    await appendAuditEvent(manager, {
      actorId: who.auditActorId ?? who.actorId ?? SYSTEM_ACTOR,
      action: 'request.revoked',
      subjectType: 'request',
      subjectId: request.id,
      requestId: request.id,
      data: {
        reason: who.reason,
        grantIds: grants.map((grant) => grant.id),
        ...(who.evidence ? { evidence: evidenceForAudit(who.evidence) } : {}),
      },
    });
    who.jobs.revokeNow.push(...grants.map((grant) => grant.id));
  }

  /** True when the approver had not opened the request, or approves within seconds of first opening it. */
  private async rubberStamped(
    manager: EntityManager,
    requestId: string,
    userId: string,
    now: Date,
  ): Promise<boolean> {
    const [view] = (await manager.query(
      `SELECT first_viewed_at AS "firstViewedAt" FROM request_views WHERE request_id = $1 AND user_id = $2`,
      [requestId, userId],
    )) as Array<{ firstViewedAt: Date }>;
    if (!view) return true;
    return (
      now.getTime() - view.firstViewedAt.getTime() < this.config.antiFatigue.rubberStampSeconds * MILLISECONDS
    );
  }

  /** A transaction whose collected jobs are enqueued once it has committed (never inside it: DESIGN §4). */
  private async transactWithJobs<T>(
    work: (manager: EntityManager, jobs: AfterCommit) => Promise<T>,
  ): Promise<T> {
    const jobs = afterCommit();
    const result = await this.dataSource.transaction((manager) => work(manager, jobs));
    await this.enqueue(jobs);
    return result;
  }

  private async enqueue(jobs: AfterCommit): Promise<void> {
    const attempts: Array<Promise<void>> = [
      ...jobs.revokeAt.map(({ grantId, notAfter }) => this.jobs.scheduleRevocation(grantId, notAfter)),
      ...jobs.revokeNow.map((grantId) => this.jobs.revokeNow(grantId)),
      ...jobs.expireAt.map(({ requestId, deadline }) => this.jobs.scheduleExpiry(requestId, deadline)),
      ...jobs.startAt.map(({ requestId, notBefore }) => this.jobs.scheduleStart(requestId, notBefore)),
    ];
    for (const outcome of await Promise.allSettled(attempts)) {
      // Committed already; the sweeper enqueues the same work from PostgreSQL within one interval.
      if (outcome.status === 'rejected')
        this.logger.warn(`Could not enqueue a job: ${String(outcome.reason)}`);
    }
  }

  private mayReview(actor: Actor, request: ElevationRequestEntity, policy: Policy): boolean {
    if (actor.roles.includes('admin') || actor.roles.includes('auditor')) return true;
    const entitlement = findEntitlement(policy, request.entitlementId);
    const notified = entitlement?.breakGlass?.notify ?? [];
    return notified.some((group) => membersOf(policy, group).includes(actor.username));
  }

  private canSee(actor: Actor, request: ElevationRequestEntity, policy: Policy): boolean {
    if (request.requesterId === actor.id) return true;
    if (actor.roles.includes('admin') || actor.roles.includes('auditor')) return true;
    const entitlement = findEntitlement(policy, request.entitlementId);
    if (!entitlement) return false;
    if (isApprover(policy, entitlement, actor.username)) return true;
    return request.breakGlass && this.mayReview(actor, request, policy);
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

interface MintUndo {
  undo?: () => Promise<void>;
  externalRef?: string;
}

/** Row-locks the grants of requests already locked, before any audit append (request → grant → chain head). */
async function lockGrantsOf(manager: EntityManager, requestIds: string[]): Promise<void> {
  if (requestIds.length === 0) return;
  await manager.query(`SELECT id FROM grants WHERE request_id = ANY($1) ORDER BY id FOR UPDATE`, [
    requestIds,
  ]);
}

/** Serialises a user's own filings, so limits on open requests hold under concurrency. */
async function lockUser(manager: EntityManager, userId: string): Promise<void> {
  const [user] = (await manager.query(`SELECT status FROM users WHERE id = $1 FOR UPDATE`, [
    userId,
  ])) as Array<{
    status: string;
  }>;
  if (user?.status !== 'active') throw new DomainError(ErrorCode.USER_SUSPENDED, 'This account is suspended');
}

/** now and now + duration on PostgreSQL's clock; notAfter in whole seconds (JWT `exp` has no fraction). */
async function windowFrom(
  manager: EntityManager,
  durationSeconds: number,
): Promise<{ now: Date; notAfter: Date }> {
  const [{ now, not_after: notAfter }] = (await manager.query(
    `SELECT t AS now, date_trunc('second', t) + make_interval(secs => $1) AS not_after
       FROM clock_timestamp() AS t`,
    [durationSeconds],
  )) as Array<{ now: Date; not_after: Date }>;
  return { now, notAfter };
}

/**
 * An extension's end: its original's end plus its own duration, so access continues without a gap, yet no
 * single credential lives longer than the entitlement's maxDuration from its activation.
 */
async function extendedEnd(
  manager: EntityManager,
  request: ElevationRequestEntity,
  entitlement: Entitlement,
  now: Date,
  ownEnd: Date,
): Promise<Date> {
  const original = await manager.findOne(ElevationRequestEntity, {
    where: { id: request.extendsRequestId! },
    lock: { mode: 'pessimistic_read' },
  });
  if (!original || original.state !== RequestState.ACTIVE || !original.endsAt || original.endsAt <= now) {
    throw new DomainError(ErrorCode.NOT_EXTENDABLE, 'The request this extends is no longer active');
  }
  const continued = addSeconds(original.endsAt, request.durationSeconds);
  const cap = new Date(Math.floor(addSeconds(now, entitlement.maxDurationSeconds).getTime() / 1000) * 1000);
  const end = continued < cap ? continued : cap;
  return end > ownEnd ? end : ownEnd;
}

function approvableBy(policy: Policy, actor: Actor): string[] {
  return policy.entitlements
    .filter((entitlement) => isApprover(policy, entitlement, actor.username))
    .map((entitlement) => entitlement.id);
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

/** When the recovery invites of these users were used, for the quorum cool-down (quorum.ts). */
async function recoveriesOf(manager: EntityManager, userIds: string[]): Promise<QuorumContext['recoveries']> {
  return (await manager.query(
    `SELECT user_id AS "userId", used_at AS at FROM enrollment_invites
      WHERE user_id = ANY ($1::uuid[]) AND recovery AND used_at IS NOT NULL`,
    [userIds],
  )) as QuorumContext['recoveries'];
}
