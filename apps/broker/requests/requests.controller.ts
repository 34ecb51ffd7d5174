import { Body, Controller, Get, Header, HttpCode, Param, Post, Query } from '@nestjs/common';
import type { ElevationRequestEntity } from '../../../libs/db/index.js';
import type { Actor } from '../../../libs/elevation/actor.js';
import { RequestsService } from '../../../libs/elevation/requests.service.js';
import { StepUpService, type StepUpProof } from '../../../libs/identity/step-up.service.js';
import type { StepUpEvidence } from '../../../libs/webauthn/evidence.js';
import { CurrentActor } from '../auth/current-actor.decorator.js';
import { StepUpOnlyDto } from '../auth/webauthn.dto.js';
import { UuidPipe } from '../errors/validation.js';
import { ApproveDto, CreateRequestDto, DenyDto, ListRequestsQuery, toRequestView } from './requests.dto.js';

const DEFAULT_PAGE_SIZE = 50;

@Controller('api/requests')
export class RequestsController {
  constructor(
    private readonly requests: RequestsService,
    private readonly stepUp: StepUpService,
  ) {}

  @Post()
  async create(@CurrentActor() actor: Actor, @Body() body: CreateRequestDto) {
    const request = await this.requests.create(actor, {
      entitlementId: body.entitlementId,
      durationSeconds: body.durationSeconds,
      justification: body.justification ?? '',
      ticket: body.ticket ?? null,
      notBefore: body.notBefore ? new Date(body.notBefore) : null,
    });
    return this.view(request);
  }

  @Get()
  async list(@CurrentActor() actor: Actor, @Query() query: ListRequestsQuery) {
    const page = await this.requests.list(actor, {
      limit: query.limit ?? DEFAULT_PAGE_SIZE,
      cursor: query.cursor ?? null,
      state: query.state ?? null,
    });
    const usernames = await this.requests.usernames(page.items.map((item) => item.requesterId));
    return { items: page.items.map((item) => toRequestView(item, usernames)), nextCursor: page.nextCursor };
  }

  @Get(':id')
  async get(@CurrentActor() actor: Actor, @Param('id', UuidPipe) id: string) {
    return this.view(await this.requests.get(actor, id));
  }

  @Post(':id/approve')
  @HttpCode(200)
  async approve(@CurrentActor() actor: Actor, @Param('id', UuidPipe) id: string, @Body() body: ApproveDto) {
    const evidence = await this.confirmed(actor, id, 'approve', body.stepUp);
    return this.view(await this.requests.decide(actor, id, 'approve', body.comment ?? null, evidence));
  }

  @Post(':id/deny')
  @HttpCode(200)
  async deny(@CurrentActor() actor: Actor, @Param('id', UuidPipe) id: string, @Body() body: DenyDto) {
    const evidence = await this.confirmed(actor, id, 'deny', body.stepUp);
    return this.view(await this.requests.decide(actor, id, 'deny', body.reason, evidence));
  }

  @Post(':id/activate')
  @HttpCode(200)
  @Header('Cache-Control', 'no-store')
  async activate(
    @CurrentActor() actor: Actor,
    @Param('id', UuidPipe) id: string,
    @Body() body: StepUpOnlyDto,
  ) {
    const evidence = await this.confirmed(actor, id, 'activate', body.stepUp);
    const { request, credential } = await this.requests.activate(actor, id, evidence);
    return { request: await this.view(request), credential };
  }

  /** Verifies the step-up against the stored request before the decision runs (DESIGN §4.4). */
  private async confirmed(
    actor: Actor,
    id: string,
    action: 'approve' | 'deny' | 'activate',
    proof: StepUpProof | undefined,
  ): Promise<StepUpEvidence> {
    const binding = await this.requests.stepUpBinding(actor, id, action);
    return this.stepUp.verify(actor, proof, { action, subjectId: id, ...binding });
  }

  private async view(request: ElevationRequestEntity) {
    return toRequestView(request, await this.requests.usernames([request.requesterId]));
  }
}
