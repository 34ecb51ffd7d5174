import { Inject, Injectable, Logger } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { AuditAction } from '../audit/audit-actions.js';
import { SYSTEM_ACTOR } from '../audit/audit-log.js';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { databaseNow } from '../db/clock.js';
import { ElevationRequestEntity } from '../db/index.js';
import { isAdmin, type Actor } from '../domain/actor.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import { findEntitlement, isApprover, isEligible, membersOf, type Policy } from '../domain/policy.js';
import * as rules from '../domain/request-rules.js';
import {
  Decision,
  EndReason,
  initialState,
  RequestState,
  transition,
  type Transition,
} from '../domain/request-state.js';
import { JobProducer } from '../jobs/job-producer.js';
import type { StepUpEvidence } from '../webauthn/evidence.js';
import {
  afterCommit,
  collectAfterCommit,
  enqueue,
  transactWithJobs,
  type AfterCommit,
} from './after-commit.js';
import { Metrics } from '../metrics/metrics.js';
import { assertMayRequest, isRubberStamp, lockOutAfterRepeatedDenials } from './anti-fatigue.js';
import { GrantsService, type Activation } from './grants.service.js';
import { PolicyService } from '../policy/policy.service.js';
import * as audit from './request-audit.js';
import { addSeconds, assertConfirmed, checked } from './request-checks.js';
import { RequestAnnouncer } from './request-announcer.js';
import * as store from './request-store.js';

/** What a requester asks for; an extension names the ACTIVE request whose end it moves. */
export type CreateRequestInput = rules.NewRequest;

/** Who revokes a request, and why; actorId null is the system (a suspension). */
interface Revoker {
  actorId: string | null;
  actorIsApprover: boolean;
  actorIsAdmin: boolean;
  reason: string;
  evidence: StepUpEvidence | null;
  jobs: AfterCommit;
  /** Who the audit names when actorId is null (the admin who suspended). */
  auditActorId?: string;
}

type LifecycleOutcome<Done extends string> =
  { status: Done | 'not-applicable' } | { status: 'not-due'; remainingMs: number };

/**
 * The only writer of a request's state (STYLE: one writer per aggregate). Each command loads and locks, asks
 * the pure core (request-state.ts, request-rules.ts), persists with a compare-and-set UPDATE, audits in the
 * same transaction, and enqueues its jobs after the commit. Reads live in RequestQueries.
 */
@Injectable()
export class RequestsService {
  private readonly logger = new Logger(RequestsService.name);

  constructor(
    private readonly dataSource: DataSource,
    private readonly policies: PolicyService,
    private readonly grants: GrantsService,
    private readonly jobs: JobProducer,
    private readonly announcer: RequestAnnouncer,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly metrics: Metrics,
  ) {}

  /**
   * Files a request under the policy in force: PENDING for approval, or APPROVED at once for a declared
   * self-service entitlement (activated later with the requester's own step-up). Break-glass goes through
   * breakGlass(); an extension names the ACTIVE request whose end it moves.
   */
  async create(actor: Actor, input: CreateRequestInput): Promise<ElevationRequestEntity> {
    const { hash, policy } = await this.policies.inForce();
    const entitlement = checked(rules.checkNewRequest(policy, actor, input, { breakGlass: false }));
    return this.transactWithJobs(async (manager, jobs) => {
      await store.lockUser(manager, actor.id);
      const now = await databaseNow(manager);
      const extended = input.extendsRequestId;
      const original = extended ? await store.shareLockRequest(manager, extended) : null;
      checked(rules.checkFiling(actor, input, now, original));
      const limits = this.config.antiFatigue;
      await assertMayRequest(manager, limits, actor, entitlement.id, { extension: Boolean(extended) });
      const { selfService } = entitlement;
      const notBefore = input.notBefore ?? null;
      const window = rules.activationWindowOf(entitlement);
      const row = store.requestRow(actor, entitlement, hash, input, {
        state: initialState({ breakGlass: false, selfService }),
        createdAt: now,
        breakGlass: false,
        approvalsRequired: entitlement.approval?.approvals ?? 0,
        pendingUntil: selfService ? null : addSeconds(now, entitlement.approval!.pendingTtlSeconds),
        decidedAt: selfService ? now : null,
        activateBy: selfService ? rules.activationDeadline(now, notBefore, window) : null,
      });
      const request = await store.insertRequestRow(manager, row);
      await audit.created(manager, actor, request, row, selfService);
      if (!selfService) {
        jobs.expireAt.push({ requestId: request.id, deadline: request.pendingUntil! });
        return request;
      }
      const activateBy = request.activateBy!;
      const data = { selfService: true as const, activateBy: activateBy.toISOString() };
      await audit.event(manager, actor.id, AuditAction.RequestApproved, request.id, data);
      jobs.expireAt.push({ requestId: request.id, deadline: activateBy });
      if (notBefore) jobs.startAt.push({ requestId: request.id, notBefore });
      return request;
    });
  }

  /**
   * Break-glass (DESIGN §3): pre-approved by policy, ACTIVE at once with the requester's step-up, capped in
   * duration, loud (an alert event naming who to notify) and queued for post-review.
   */
  async breakGlass(actor: Actor, input: CreateRequestInput, evidence: StepUpEvidence): Promise<Activation> {
    const { hash, policy } = await this.policies.inForce();
    const entitlement = checked(rules.checkNewRequest(policy, actor, input, { breakGlass: true }));
    // The step-up service checked the digest of the call's parameters; here, that it was made for this call.
    const expected = { userId: actor.id, action: 'break-glass', subjectId: entitlement.id };
    checked(rules.checkConfirmation(evidence, expected));
    const { notify, postReviewWithinSeconds } = entitlement.breakGlass!;
    const notifyUsers = [...new Set(notify.flatMap((group) => membersOf(policy, group)))].sort();
    // Its grant id is reserved before the mint, so a broker that stops mid-mint leaves it for the sweep to undo.
    const target = { policy, policyHash: hash, entitlement, subject: actor.username };
    return this.grants.withMintUndo(target, (issued) =>
      this.transactWithJobs(async (manager, jobs) => {
        await store.lockUser(manager, actor.id);
        const { now, notAfter } = await store.windowFrom(manager, input.durationSeconds);
        await store.assertNoOpenRequest(manager, actor.id, entitlement.id);
        const row = store.requestRow(actor, entitlement, hash, input, {
          state: initialState({ breakGlass: true, selfService: false }),
          createdAt: now,
          breakGlass: true,
          approvalsRequired: 0,
          decidedAt: now,
          activatedAt: now,
          endsAt: notAfter,
          reviewDueAt: addSeconds(now, postReviewWithinSeconds),
        });
        const request = await store.insertRequestRow(manager, row);
        // Mint before the first audit append: the append locks the chain head until commit, and every
        // audited write in the system would wait for the connector's network call.
        const authenticatedAt = evidence.verifiedAt;
        const mint = { actor, request, policy, entitlement, now, notAfter, authenticatedAt };
        const activation = await this.grants.mint(manager, mint, issued, jobs);
        this.logger.warn(
          `BREAK-GLASS: ${actor.username} activated "${entitlement.id}" until ${notAfter.toISOString()}; notify ${notifyUsers.join(', ')}`,
        );
        await audit.created(manager, actor, request, row, entitlement.selfService);
        const notified = { groups: notify, users: notifyUsers };
        await audit.breakGlassActivated(manager, actor, request, notified, evidence);
        await this.grants.auditIssued(manager, actor, activation.grant);
        return activation;
      }),
    );
  }

  /** Records one approver's approve or deny; the request moves on when quorum is reached or on any deny. */
  async decide(
    actor: Actor,
    requestId: string,
    decision: Decision,
    comment: string | null,
    evidence: StepUpEvidence,
  ): Promise<ElevationRequestEntity> {
    const { policy } = await this.policies.inForce();
    let flagged = false;
    const decided = await this.transactWithJobs(async (manager, jobs) => {
      const request = await store.lockVisible(manager, actor, requestId, policy);
      assertConfirmed(request, evidence, actor, decision);
      const now = await databaseNow(manager);
      const voter = { approverId: actor.id, username: actor.username, decision, at: now };
      const votes = await store.votesOn(manager, requestId, voter);
      const outcome = checked(rules.applyDecision(request, votes.mine, votes.recorded, policy));
      const approval = { requestId, approverId: actor.id, decision, comment, at: now };
      const limits = this.config.antiFatigue;
      const rubberStamp = decision === Decision.APPROVE && (await isRubberStamp(manager, limits, approval));
      flagged = rubberStamp;
      await store.insertApproval(manager, approval, evidence);
      if (rubberStamp) {
        this.logger.warn(`Rubber-stamp signal: ${actor.username} approved ${requestId} within seconds`);
      }
      const { approvals, uncounted } = outcome;
      const vote = { decision, comment, approvals, uncounted, rubberStamp };
      await audit.approvalRecorded(manager, actor, request, vote, evidence);
      if (outcome.next.state !== request.state) {
        await this.settleDecision(manager, actor, request, outcome.next, comment, jobs);
      }
      return request;
    });
    if (flagged) this.metrics.rubberStampFlags.inc();
    return decided;
  }

  /**
   * Activates an approved request: the window starts now (PostgreSQL's clock), the connector mints a
   * credential that expires on its own at notAfter, and the revocation job is scheduled after commit.
   * An extension's credential runs to its original's end plus its own duration, never longer than the cap.
   */
  async activate(actor: Actor, requestId: string, evidence: StepUpEvidence | null): Promise<Activation> {
    // A person proves each activation with a step-up; a workload (issue 21) with the token it called with.
    if (!evidence && !actor.workload)
      throw new DomainError(ErrorCode.STEP_UP_REQUIRED, 'Activation needs a step-up');
    const current = (await this.policies.inForce()).policy;
    // Load the request's policy version before the row lock: inside it, a cache miss would need a second
    // pooled connection while this one holds the lock, and enough parallel activations exhaust the pool.
    const filed = await this.dataSource.getRepository(ElevationRequestEntity).findOneBy({ id: requestId });
    if (filed) await this.policies.byHash(filed.policyHash);
    return this.grants.withMintUndo(requestId, (issued) =>
      this.transactWithJobs(async (manager, jobs) => {
        // An extension's original is locked first, as suspension and revocation lock them (older id first).
        if (filed?.extendsRequestId) await store.shareLockRequest(manager, filed.extendsRequestId);
        const request = await store.lockVisible(manager, actor, requestId, current);
        if (evidence) assertConfirmed(request, evidence, actor, 'activate');
        const { now, notAfter: ownEnd } = await store.windowFrom(manager, request.durationSeconds);
        const next = checked(
          transition(request.state as RequestState, 'activate', {
            actorId: actor.id,
            requesterId: request.requesterId,
            now,
            notBefore: request.notBefore,
            activateBy: request.activateBy,
          }),
        );
        const { policy, entitlement } = await this.activationPolicy(actor, request, current);
        let notAfter = ownEnd;
        if (request.extendsRequestId) {
          const original = await store.shareLockRequest(manager, request.extendsRequestId);
          const { durationSeconds } = request;
          const limits = { durationSeconds, maxDurationSeconds: entitlement.maxDurationSeconds };
          notAfter = checked(rules.extensionEnd(original, limits, now, ownEnd));
        }
        await store.compareAndSet(manager, request, next, { endsAt: notAfter });
        // Mint before the first audit append (see breakGlass).
        const authenticatedAt = evidence?.verifiedAt;
        const mint = { actor, request, policy, entitlement, now, notAfter, authenticatedAt };
        const activation = await this.grants.mint(manager, mint, issued, jobs);
        await audit.activated(manager, actor, request, evidence);
        await this.grants.auditIssued(manager, actor, activation.grant);
        return activation;
      }),
    );
  }

  /** Cancels a PENDING or APPROVED request (requester or admin); audited. */
  async cancel(actor: Actor, requestId: string, reason: string | null): Promise<ElevationRequestEntity> {
    const { policy } = await this.policies.inForce();
    return this.transactWithJobs(async (manager) => {
      const request = await store.lockVisible(manager, actor, requestId, policy);
      const now = await databaseNow(manager);
      const next = checked(
        transition(request.state as RequestState, 'cancel', {
          actorId: actor.id,
          requesterId: request.requesterId,
          actorIsAdmin: isAdmin(actor),
          now,
          endReason: EndReason.CANCELLED,
        }),
      );
      await store.compareAndSet(manager, request, next);
      const data = { reason, ...audit.workloadFacts(actor) };
      await audit.event(manager, actor.id, AuditAction.RequestCancelled, request.id, data);
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
      const request = await store.lockVisible(manager, actor, requestId, policy);
      assertConfirmed(request, evidence, actor, 'revoke');
      const entitlement = findEntitlement(policy, request.entitlementId);
      // Its extensions end with it: an active one would otherwise keep the access running.
      const extensions = await store.lockOpenRequests(manager, { extendsRequestId: requestId });
      await this.grants.lockGrantsOf(manager, [requestId, ...extensions.map(({ id }) => id)]);
      const revoker: Revoker = {
        actorId: actor.id,
        actorIsApprover: entitlement !== undefined && isApprover(policy, entitlement, actor.username),
        actorIsAdmin: isAdmin(actor),
        reason,
        evidence,
        jobs,
      };
      await this.revokeLocked(manager, request, revoker);
      for (const extension of extensions) {
        if (extension.state === RequestState.ACTIVE) {
          const extended = `${reason} (extended request revoked)`;
          await this.revokeLocked(manager, extension, { ...revoker, reason: extended });
        } else {
          const why = 'the request it extends was revoked';
          await this.cancelBySystem(manager, extension, actor.id, EndReason.CANCELLED, why);
        }
      }
      return request;
    });
  }

  /**
   * Suspension (inside the caller's transaction): every PENDING or APPROVED request of the user is
   * cancelled and every ACTIVE one revoked at once. Returns the work for afterSuspension once committed.
   */
  async endAllOfUser(
    manager: EntityManager,
    userId: string,
    actorId: string,
    reason: string,
  ): Promise<AfterCommit> {
    const open = await store.lockOpenRequests(manager, { requesterId: userId });
    const requestIds = open.map(({ id }) => id);
    await this.grants.lockGrantsOf(manager, requestIds);
    const jobs = afterCommit();
    collectAfterCommit(manager, jobs);
    const system = { actorId: null, actorIsApprover: false, actorIsAdmin: false, evidence: null };
    for (const request of open) {
      if (request.state === RequestState.ACTIVE) {
        await this.revokeLocked(manager, request, { ...system, reason, jobs, auditActorId: actorId });
      } else {
        await this.cancelBySystem(manager, request, actorId, EndReason.SUSPENDED, reason);
      }
    }
    return jobs;
  }

  /** Runs the revocation of grants and announces the ended requests once a suspension has committed. */
  async afterSuspension(jobs: AfterCommit): Promise<void> {
    await enqueue(this.jobs, jobs);
    await this.announcer.announce(jobs.changed);
  }

  /** Ends an ACTIVE request whose window has passed; called by the revocation of its grant, which locked it. */
  async endAtExpiry(
    manager: EntityManager,
    request: ElevationRequestEntity | null,
    now: Date,
  ): Promise<void> {
    if (!request || request.state !== RequestState.ACTIVE || !request.endsAt) return;
    const next = checked(transition(RequestState.ACTIVE, 'end', { now, notAfter: request.endsAt }));
    await store.compareAndSet(manager, request, next);
    const data = { reason: next.changes.endReason, endedAt: now.toISOString() };
    await audit.event(manager, SYSTEM_ACTOR, AuditAction.RequestEnded, request.id, data);
  }

  /**
   * The lifecycle job: expires a PENDING request past its pending TTL, or an APPROVED one past its
   * activation window. Acts on PostgreSQL's state and clock; reports how long to wait when early.
   */
  async expireIfDue(requestId: string): Promise<LifecycleOutcome<'expired'>> {
    return this.transactWithJobs(async (manager) => {
      const request = await store.lockRequest(manager, requestId);
      const deadline =
        request?.state === RequestState.PENDING
          ? request.pendingUntil
          : request?.state === RequestState.APPROVED
            ? request.activateBy
            : null;
      if (!request || !deadline) return { status: 'not-applicable' } as const;
      const now = await databaseNow(manager);
      const outcome = transition(request.state as RequestState, 'expire', { now, deadline });
      if (outcome instanceof DomainError) {
        return { status: 'not-due', remainingMs: Math.max(1, deadline.getTime() - now.getTime()) } as const;
      }
      await store.compareAndSet(manager, request, outcome);
      const data = { reason: outcome.changes.endReason, deadline: deadline.toISOString() };
      await audit.event(manager, SYSTEM_ACTOR, AuditAction.RequestExpired, requestId, data);
      return { status: 'expired' } as const;
    });
  }

  /**
   * The lifecycle job at notBefore: the activation window of an approved scheduled request opens; the
   * requester activates it with their own step-up (the credential is shown once, to them), audited here.
   */
  async openScheduledWindow(requestId: string): Promise<LifecycleOutcome<'opened'>> {
    return this.transactWithJobs(async (manager) => {
      const request = await store.lockRequest(manager, requestId);
      const scheduled = request?.notBefore && request.state === RequestState.APPROVED;
      // Once per request: the sweeper may enqueue the job again after it ran.
      if (!scheduled || request.windowOpenedAt) return { status: 'not-applicable' } as const;
      const notBefore = request.notBefore!;
      const now = await databaseNow(manager);
      if (now < notBefore)
        return { status: 'not-due', remainingMs: notBefore.getTime() - now.getTime() } as const;
      await store.markWindowOpened(manager, requestId, now);
      await audit.windowOpened(manager, request);
      return { status: 'opened' } as const;
    });
  }

  /** Marks a break-glass request reviewed (an approver of a notified group, an auditor or an admin). */
  async review(actor: Actor, requestId: string, comment: string): Promise<ElevationRequestEntity> {
    const { policy } = await this.policies.inForce();
    return this.transactWithJobs(async (manager) => {
      const request = await store.lockVisible(manager, actor, requestId, policy);
      const refusal = rules.checkReview(actor, request, policy);
      if (refusal) throw refusal;
      const reviewedAt = await store.markReviewed(manager, requestId, actor.id, comment);
      Object.assign(request, { reviewedAt, reviewedBy: actor.id, reviewComment: comment });
      await audit.reviewed(manager, actor, request, comment);
      return request;
    });
  }

  /** Moves a decided request to APPROVED (its activation jobs follow) or DENIED (and counts the denials). */
  private async settleDecision(
    manager: EntityManager,
    actor: Actor,
    request: ElevationRequestEntity,
    next: Transition,
    comment: string | null,
    jobs: AfterCommit,
  ): Promise<void> {
    const now = next.changes.decidedAt!;
    await store.compareAndSet(manager, request, next);
    if (next.state === RequestState.DENIED) {
      await audit.event(manager, actor.id, AuditAction.RequestDenied, request.id, { reason: comment });
      const { requesterId, entitlementId } = request;
      const limits = this.config.antiFatigue;
      await lockOutAfterRepeatedDenials(manager, limits, requesterId, entitlementId, actor.id);
      return;
    }
    const data = { activateBy: request.activateBy?.toISOString() };
    await audit.event(manager, actor.id, AuditAction.RequestApproved, request.id, data);
    jobs.expireAt.push({ requestId: request.id, deadline: request.activateBy! });
    if (request.notBefore && request.notBefore > now) {
      jobs.startAt.push({ requestId: request.id, notBefore: request.notBefore });
    }
  }

  /**
   * The policy an activation runs under: the one in force must still offer the entitlement to the
   * requester, while connector settings come from the version the request was filed under.
   */
  private async activationPolicy(actor: Actor, request: ElevationRequestEntity, current: Policy) {
    const offered = findEntitlement(current, request.entitlementId);
    if (!offered || !isEligible(current, offered, actor.username)) {
      const message = `The policy in force no longer grants "${request.entitlementId}" to you`;
      throw new DomainError(ErrorCode.NOT_ELIGIBLE, message);
    }
    const policy = await this.policies.byHash(request.policyHash);
    const entitlement = findEntitlement(policy, request.entitlementId);
    if (!entitlement)
      throw new DomainError(ErrorCode.INTERNAL, 'Entitlement missing from its policy version');
    return { policy, entitlement };
  }

  /** Ends a locked PENDING or APPROVED request as CANCELLED on the system's behalf, with its audit event. */
  private async cancelBySystem(
    manager: EntityManager,
    request: ElevationRequestEntity,
    auditActorId: string,
    endReason: EndReason.CANCELLED | EndReason.SUSPENDED,
    reason: string,
  ): Promise<void> {
    const now = await databaseNow(manager);
    const context = { actorId: null, requesterId: request.requesterId, actorIsAdmin: false, now, endReason };
    const next = checked(transition(request.state as RequestState, 'cancel', context));
    await store.compareAndSet(manager, request, next);
    await audit.event(manager, auditActorId, AuditAction.RequestCancelled, request.id, { reason });
  }

  /** Revokes a locked ACTIVE request: its grants become due now, revoked once the transaction commits. */
  private async revokeLocked(manager: EntityManager, request: ElevationRequestEntity, who: Revoker) {
    const now = await databaseNow(manager);
    const next = checked(
      transition(request.state as RequestState, 'revoke', {
        actorId: who.actorId,
        requesterId: request.requesterId,
        actorIsApprover: who.actorIsApprover,
        actorIsAdmin: who.actorIsAdmin,
        now,
      }),
    );
    await store.compareAndSet(manager, request, next);
    const grantIds = await this.grants.requestRevoke(manager, request.id, who.reason, who.jobs);
    const auditActorId = who.auditActorId ?? who.actorId ?? SYSTEM_ACTOR;
    const revocation = { reason: who.reason, grantIds, evidence: who.evidence };
    await audit.revoked(manager, auditActorId, request, revocation);
  }

  private transactWithJobs<T>(work: (manager: EntityManager, jobs: AfterCommit) => Promise<T>): Promise<T> {
    return transactWithJobs(this.dataSource, this.jobs, work, this.announcer);
  }
}
