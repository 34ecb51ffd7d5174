import { Body, Controller, Get, HttpCode, Param, Post, UseGuards } from '@nestjs/common';
import { IsDefined, IsObject, IsOptional, IsString, MaxLength, ValidateNested } from 'class-validator';
import { Type } from 'class-transformer';
import type { Actor } from '../../../libs/domain/actor.js';
import { AuthenticatorsService, toAuthenticatorView } from '../../../libs/identity/authenticators.service.js';
import { PasskeysService } from '../../../libs/identity/passkeys.service.js';
import { StepUpService } from '../../../libs/identity/step-up.service.js';
import { IsFreeText, UuidPipe } from '../errors/validation.js';
import { CurrentActor } from './current-actor.decorator.js';
import { IpRateLimitGuard } from './ip-rate-limit.guard.js';
import { RegistrationResponseDto, StepUpOnlyDto } from './webauthn.dto.js';

class RegisterAuthenticatorDto {
  @IsDefined()
  @IsObject()
  @ValidateNested()
  @Type(() => RegistrationResponseDto)
  response: RegistrationResponseDto;
  @IsOptional() @IsString() @MaxLength(64) @IsFreeText({ multiLine: false }) name?: string;
}

/**
 * The caller's passkeys (DESIGN §5): adding one needs an `authenticator.add` step-up with an existing one
 * (params `{}`), removing one an `authenticator.remove` step-up (params `{ "authenticatorId" }`); both are
 * audited, and the last usable passkey cannot be removed.
 */
@Controller('api/me/authenticators')
export class AuthenticatorsController {
  constructor(
    private readonly authenticators: AuthenticatorsService,
    private readonly passkeys: PasskeysService,
    private readonly stepUp: StepUpService,
  ) {}

  @Get()
  async list(@CurrentActor() actor: Actor) {
    return { items: (await this.authenticators.list(actor)).map(toAuthenticatorView) };
  }

  /** Creation options for another passkey, once an existing one has confirmed. */
  @Post('options')
  @HttpCode(200)
  @UseGuards(IpRateLimitGuard)
  async options(@CurrentActor() actor: Actor, @Body() body: StepUpOnlyDto) {
    await this.stepUp.verifyFor(actor, 'authenticator.add', actor.username, body);
    return this.passkeys.registrationOptions(actor);
  }

  @Post('verify')
  @HttpCode(201)
  @UseGuards(IpRateLimitGuard)
  async verify(@CurrentActor() actor: Actor, @Body() body: RegisterAuthenticatorDto) {
    return toAuthenticatorView(await this.passkeys.register(actor, body.response, body.name ?? null));
  }

  @Post(':id/remove')
  @HttpCode(204)
  async remove(
    @CurrentActor() actor: Actor,
    @Param('id', UuidPipe) id: string,
    @Body() body: StepUpOnlyDto,
  ): Promise<void> {
    // The id is in the path, not the body, yet it is what the step-up confirms.
    const evidence = await this.stepUp.verifyFor(actor, 'authenticator.remove', actor.username, {
      ...body,
      authenticatorId: id,
    });
    await this.authenticators.remove(actor, id, evidence);
  }
}
