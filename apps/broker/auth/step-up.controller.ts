import { Body, Controller, Header, HttpCode, Post, UseGuards } from '@nestjs/common';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import type { Actor } from '../../../libs/domain/actor.js';
import { RequestQueries } from '../../../libs/elevation/request-queries.js';
import { StepUpService } from '../../../libs/identity/step-up.service.js';
import { subjectDigest } from '../../../libs/webauthn/step-up-binding.js';
import { CurrentActor } from './current-actor.decorator.js';
import { IpRateLimitGuard } from './ip-rate-limit.guard.js';
import { StepUpChallengeDto } from './step-up.dto.js';

/** Actions on a stored request: the server digests the stored request, the client sends no params. */
const REQUEST_ACTIONS = new Set(['approve', 'deny', 'activate', 'revoke']);

/** Issues request-bound step-up challenges (DESIGN §5). */
@Controller('api/step-up')
export class StepUpController {
  constructor(
    private readonly stepUp: StepUpService,
    private readonly requests: RequestQueries,
  ) {}

  @Post('challenge')
  @HttpCode(200)
  @UseGuards(IpRateLimitGuard)
  @Header('Cache-Control', 'no-store')
  async challenge(@CurrentActor() actor: Actor, @Body() body: StepUpChallengeDto) {
    if (REQUEST_ACTIONS.has(body.action)) {
      if (body.params !== undefined) {
        throw new DomainError(
          ErrorCode.VALIDATION_FAILED,
          `"${body.action}" binds to the stored request: send no params`,
        );
      }
      if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(body.subjectId)) {
        throw new DomainError(ErrorCode.INVALID_ID, 'subjectId must be a request id');
      }
      const binding = await this.requests.stepUpBinding(actor, body.subjectId, body.action as 'approve');
      return this.stepUp.issue(actor, {
        action: body.action,
        subjectId: body.subjectId,
        subjectDigest: binding.subjectDigest,
      });
    }
    if (body.params === undefined) {
      throw new DomainError(
        ErrorCode.VALIDATION_FAILED,
        `"${body.action}" binds to the parameters of the call: send them as params`,
      );
    }
    let digest: string;
    try {
      digest = subjectDigest(body.params);
    } catch (error) {
      throw new DomainError(ErrorCode.VALIDATION_FAILED, `params: ${(error as Error).message}`);
    }
    return this.stepUp.issue(actor, {
      action: body.action,
      subjectId: body.subjectId,
      subjectDigest: digest,
    });
  }
}
