import { Body, Controller, Get, Header, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import type { Response } from 'express';
import type { ElevationRequestEntity } from '../../../libs/db/index.js';
import type { Actor } from '../../../libs/domain/actor.js';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import { GrantState } from '../../../libs/domain/grant-state.js';
import { RequestQueries, type RequestPage } from '../../../libs/elevation/request-queries.js';
import { RequestsService, type CreateRequestInput } from '../../../libs/elevation/requests.service.js';
import { StepUpService, type StepUpProof } from '../../../libs/identity/step-up.service.js';
import { Metrics } from '../../../libs/metrics/metrics.js';
import type { StepUpEvidence } from '../../../libs/webauthn/evidence.js';
import { CurrentActor } from '../auth/current-actor.decorator.js';
import { Background, WorkloadAllowed } from '../auth/public.decorator.js';
import { StepUpOnlyDto } from '../auth/webauthn.dto.js';
import { UuidPipe } from '../errors/validation.js';
import {
  ApproveDto,
  CancelDto,
  CreateRequestDto,
  DEFAULT_PAGE_SIZE,
  DenyDto,
  ExtendRequestDto,
  ListRequestsQuery,
  ReviewDto,
  RevokeDto,
  toRequestView,
  WaitQuery,
} from './requests.dto.js';
import { RequestWaits } from './request-waits.js';

/** How long GET /api/requests/:id/wait holds the call when `timeout` is not given, in seconds. */
const DEFAULT_WAIT_SECONDS = 30;

/** Elevation requests (DESIGN §10): thin; RequestsService decides and the step-up service confirms. */
@Controller('api/requests')
export class RequestsController {
  constructor(
    private readonly requests: RequestsService,
    private readonly queries: RequestQueries,
    private readonly stepUp: StepUpService,
    private readonly metrics: Metrics,
    private readonly waits: RequestWaits,
  ) {}

  /**
   * Files a request (201 with the request). A break-glass entitlement activates at once with a
   * `break-glass` step-up (subject: the entitlement id; params: this body less stepUp) and answers
   * `{ request, credential }`.
   */
  @Post()
  @WorkloadAllowed()
  async create(
    @CurrentActor() actor: Actor,
    @Body() body: CreateRequestDto,
    @Res({ passthrough: true }) response: Response,
  ) {
    if (actor.workload && body.stepUp)
      throw new DomainError(ErrorCode.WORKLOAD_FORBIDDEN, 'A workload can never use break-glass');
    const input: CreateRequestInput = {
      entitlementId: body.entitlementId,
      durationSeconds: body.durationSeconds,
      justification: body.justification ?? '',
      ticket: body.ticket ?? null,
      notBefore: body.notBefore ? new Date(body.notBefore) : null,
      sshPublicKey: body.sshPublicKey ?? null,
    };
    if (body.stepUp) {
      const evidence = await this.stepUp.verifyFor(
        actor,
        'break-glass',
        body.entitlementId,
        body,
        await this.queries.breakGlassRequirement(body.entitlementId),
      );
      const { request, credential } = await this.requests.breakGlass(actor, input, evidence);
      response.setHeader('Cache-Control', 'no-store');
      return { request: await this.view(request), credential };
    }
    return this.view(await this.requests.create(actor, input));
  }

  @Get()
  async list(@CurrentActor() actor: Actor, @Query() query: ListRequestsQuery) {
    const page = await this.queries.list(actor, {
      limit: query.limit ?? DEFAULT_PAGE_SIZE,
      cursor: query.cursor ?? null,
      state: query.state ?? null,
      entitlementId: query.entitlementId ?? null,
      requester: query.requester ?? null,
    });
    return this.page(page);
  }

  /**
   * Long-poll (issue 21): answers `{ request, changed }` as soon as the request leaves `state` (default
   * PENDING), or when `timeout` seconds (1–60, default 30) pass without that; at once when it is not in
   * `state` when asked. Holds no database connection while it waits.
   */
  @Get(':id/wait')
  @WorkloadAllowed()
  @Background()
  async wait(
    @CurrentActor() actor: Actor,
    @Param('id', UuidPipe) id: string,
    @Query() query: WaitQuery,
    @Res({ passthrough: true }) response: Response,
  ) {
    const waitingIn = query.state ?? 'PENDING';
    const deadline = Date.now() + (query.timeout ?? DEFAULT_WAIT_SECONDS) * 1000;
    const closed = new AbortController();
    // The response's 'close' (not the request's, which comes once its empty body is read): the client left.
    response.on('close', () => closed.abort());
    let request = await this.queries.get(actor, id);
    while (request.state === waitingIn && Date.now() < deadline && !closed.signal.aborted) {
      // Counted per person, and per token of a workload: its CI jobs share one users row.
      const waiter = actor.workload
        ? `${actor.id}:${actor.workload.jti ?? actor.workload.subject}`
        : actor.id;
      await this.waits.until(waiter, id, deadline - Date.now(), closed.signal);
      request = await this.queries.get(actor, id);
    }
    return { request: await this.view(request), changed: request.state !== waitingIn };
  }

  @Get(':id')
  @WorkloadAllowed()
  async get(@CurrentActor() actor: Actor, @Param('id', UuidPipe) id: string) {
    const request = await this.queries.get(actor, id);
    await this.queries.recordView(actor, request);
    // Only the single view lists the decisions (with the deny reason): lists stay one query per fact.
    return { ...(await this.view(request)), decisions: await this.queries.decisions(id) };
  }

  @Post(':id/approve')
  @HttpCode(200)
  async approve(@CurrentActor() actor: Actor, @Param('id', UuidPipe) id: string, @Body() body: ApproveDto) {
    return this.metrics.timed(this.metrics.approveDuration, () =>
      this.counted('approve', async () => {
        const evidence = await this.confirmed(actor, id, 'approve', body.stepUp);
        return this.view(await this.requests.decide(actor, id, 'approve', body.comment ?? null, evidence));
      }),
    );
  }

  @Post(':id/deny')
  @HttpCode(200)
  async deny(@CurrentActor() actor: Actor, @Param('id', UuidPipe) id: string, @Body() body: DenyDto) {
    return this.counted('deny', async () => {
      const evidence = await this.confirmed(actor, id, 'deny', body.stepUp);
      return this.view(await this.requests.decide(actor, id, 'deny', body.reason, evidence));
    });
  }

  /** A person activates with an `activate` step-up; a workload (issue 21) with its token alone, body `{}`. */
  @Post(':id/activate')
  @WorkloadAllowed()
  @HttpCode(200)
  @Header('Cache-Control', 'no-store')
  async activate(
    @CurrentActor() actor: Actor,
    @Param('id', UuidPipe) id: string,
    @Body() body: StepUpOnlyDto,
  ) {
    if (actor.workload && body.stepUp)
      throw new DomainError(
        ErrorCode.VALIDATION_FAILED,
        'A workload activates with its token, not a step-up',
      );
    return this.metrics.timed(this.metrics.activateDuration, async () => {
      const evidence = actor.workload ? null : await this.confirmed(actor, id, 'activate', body.stepUp);
      const { request, credential } = await this.requests.activate(actor, id, evidence);
      return { request: await this.view(request), credential };
    });
  }

  @Post(':id/cancel')
  @WorkloadAllowed()
  @HttpCode(200)
  async cancel(@CurrentActor() actor: Actor, @Param('id', UuidPipe) id: string, @Body() body: CancelDto) {
    return this.view(await this.requests.cancel(actor, id, body.reason ?? null));
  }

  /**
   * Early revoke by the requester, an approver or an admin: the request is REVOKED at once and the worker
   * takes the credential back. 202 while the connector has not confirmed (`grant.state` REVOKING) for its
   * grant or an active extension's it also revoked, 200 once it has (or when there was nothing to take back).
   */
  @Post(':id/revoke')
  @HttpCode(200)
  async revoke(
    @CurrentActor() actor: Actor,
    @Param('id', UuidPipe) id: string,
    @Body() body: RevokeDto,
    @Res({ passthrough: true }) response: Response,
  ) {
    const evidence = await this.confirmed(actor, id, 'revoke', body.stepUp);
    const view = await this.view(await this.requests.revoke(actor, id, body.reason, evidence));
    const own = view.grant !== null && view.grant.state !== GrantState.REVOKED;
    if (own || (await this.queries.revocationPending(id))) response.status(202);
    return view;
  }

  /** An extension: a linked request for more time on an ACTIVE one, decided like any other request. */
  @Post(':id/extend')
  async extend(
    @CurrentActor() actor: Actor,
    @Param('id', UuidPipe) id: string,
    @Body() body: ExtendRequestDto,
  ) {
    const original = await this.queries.get(actor, id);
    return this.view(
      await this.requests.create(actor, {
        entitlementId: original.entitlementId,
        durationSeconds: body.durationSeconds,
        justification: body.justification ?? '',
        ticket: body.ticket ?? original.ticket,
        sshPublicKey: original.sshPublicKey,
        extendsRequestId: id,
      }),
    );
  }

  /** Marks a break-glass request reviewed (post-review queue at GET /api/reviews). */
  @Post(':id/review')
  @HttpCode(200)
  async review(@CurrentActor() actor: Actor, @Param('id', UuidPipe) id: string, @Body() body: ReviewDto) {
    return this.view(await this.requests.review(actor, id, body.comment));
  }

  /** Counts an approver's decision in jit_approvals_total: recorded as `result`, or refused. */
  private async counted<T>(result: 'approve' | 'deny', work: () => Promise<T>): Promise<T> {
    try {
      const value = await work();
      this.metrics.approvals.inc({ result });
      return value;
    } catch (error) {
      this.metrics.approvals.inc({ result: 'refused' });
      throw error;
    }
  }

  /** Verifies the step-up against the stored request before the decision runs (DESIGN §4.4). */
  private async confirmed(
    actor: Actor,
    id: string,
    action: 'approve' | 'deny' | 'activate' | 'revoke',
    proof: StepUpProof | undefined,
  ): Promise<StepUpEvidence> {
    const binding = await this.queries.stepUpBinding(actor, id, action);
    return this.stepUp.verify(actor, proof, { action, subjectId: id, ...binding });
  }

  private async page(page: RequestPage) {
    const facts = await this.queries.viewFacts(page.items);
    return { items: page.items.map((item) => toRequestView(item, facts)), nextCursor: page.nextCursor };
  }

  private async view(request: ElevationRequestEntity) {
    return toRequestView(request, await this.queries.viewFacts([request]));
  }
}
