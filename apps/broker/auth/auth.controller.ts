import { Body, Controller, HttpCode, Inject, Post, Req, Res, UseGuards } from '@nestjs/common';
import type { Request, Response } from 'express';
import { APP_CONFIG, type AppConfig } from '../../../libs/config/config.js';
import type { Actor } from '../../../libs/domain/actor.js';
import { PasskeysService, type SignedIn } from '../../../libs/identity/passkeys.service.js';
import type { ClientInfo } from '../../../libs/identity/sessions.service.js';
import { SessionsService } from '../../../libs/identity/sessions.service.js';
import { EmptyBodyPipe } from '../errors/validation.js';
import { CurrentActor, CurrentSessionId } from './current-actor.decorator.js';
import { IpRateLimitGuard } from './ip-rate-limit.guard.js';
import { Public } from './public.decorator.js';
import { clearSessionCookie, readSessionToken, setSessionCookie } from './session-cookie.js';
import { EnrollOptionsDto, EnrollVerifyDto, LoginVerifyDto } from './webauthn.dto.js';

/** Where a request came from, as recorded with sessions. */
export function clientInfo(request: Request): ClientInfo {
  return { ip: request.ip ?? null, userAgent: request.header('user-agent') ?? null };
}

/** Enrollment by one-time invite, passkey sign-in and logout (DESIGN §5, §10). */
@Controller('api/auth')
export class AuthController {
  constructor(
    private readonly passkeys: PasskeysService,
    private readonly sessions: SessionsService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  @Public()
  @UseGuards(IpRateLimitGuard)
  @Post('enroll/options')
  @HttpCode(200)
  enrollOptions(@Body() body: EnrollOptionsDto) {
    return this.passkeys.enrollmentOptions(body.invite);
  }

  /** Registers the passkey, spends the invite and signs the new user in (sets the session cookie). */
  @Public()
  @UseGuards(IpRateLimitGuard)
  @Post('enroll/verify')
  @HttpCode(200)
  async enrollVerify(
    @Body() body: EnrollVerifyDto,
    @Req() request: Request,
    @Res({ passthrough: true }) response: Response,
  ) {
    const result = await this.passkeys.enroll(body.invite, body.response, clientInfo(request));
    await this.sessions.endPresented(result.actor.id, readSessionToken(request, this.config));
    return this.signedIn(result, response);
  }

  @Public()
  @UseGuards(IpRateLimitGuard)
  @Post('login/options')
  @HttpCode(200)
  loginOptions(@Body(EmptyBodyPipe) _body: unknown) {
    return this.passkeys.loginOptions();
  }

  @Public()
  @UseGuards(IpRateLimitGuard)
  @Post('login/verify')
  @HttpCode(200)
  async loginVerify(
    @Body() body: LoginVerifyDto,
    @Req() request: Request,
    @Res({ passthrough: true }) response: Response,
  ) {
    const result = await this.passkeys.login(body.response, clientInfo(request));
    await this.sessions.endPresented(result.actor.id, readSessionToken(request, this.config));
    return this.signedIn(result, response);
  }

  @Post('logout')
  @HttpCode(204)
  async logout(
    @CurrentActor() actor: Actor,
    @CurrentSessionId() sessionId: string,
    @Body(EmptyBodyPipe) _body: unknown,
    @Res({ passthrough: true }) response: Response,
  ): Promise<void> {
    await this.sessions.end(actor, sessionId);
    clearSessionCookie(response, this.config);
  }

  private signedIn(result: SignedIn, response: Response) {
    setSessionCookie(response, this.config, result.sessionToken, result.sessionExpiresAt);
    const { actor } = result;
    return {
      user: { id: actor.id, username: actor.username, displayName: actor.displayName, roles: actor.roles },
      sessionExpiresAt: result.sessionExpiresAt.toISOString(),
    };
  }
}
