import { Inject, Injectable, Logger, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { APP_CONFIG, type AppConfig } from '../../../libs/config/config.js';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import { SessionsService } from '../../../libs/identity/sessions.service.js';
import { WorkloadAuthenticator } from '../../../libs/elevation/workload-auth.js';
import type { AuthenticatedRequest } from './current-actor.decorator.js';
import { IS_BACKGROUND, IS_PUBLIC, SKIPS_ORIGIN_CHECK, WORKLOAD_ALLOWED } from './public.decorator.js';
import { readSessionToken } from './session-cookie.js';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Set by the web UI on requests no person asked for (refetches on live events, polling). */
export const BACKGROUND_HEADER = 'x-background';

/**
 * Every route needs a passkey session unless marked @Public(); state-changing requests must also carry an
 * allowed Origin (DESIGN §5), which with SameSite=Strict cookies shuts out cross-site request forgery.
 * Routes marked @Background() and requests with `X-Background: 1` do not move the session's idle clock.
 */
@Injectable()
export class SessionGuard implements CanActivate {
  private readonly logger = new Logger(SessionGuard.name);

  constructor(
    private readonly reflector: Reflector,
    private readonly sessions: SessionsService,
    private readonly workloads: WorkloadAuthenticator,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    if (config.insecureHttp) {
      this.logger.warn(
        `UNSAFE: ALLOW_INSECURE_HTTP=true: session cookies travel without Secure over ${config.webauthn.origins.join(', ')}`,
      );
    }
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    const request = context.switchToHttp().getRequest<AuthenticatedRequest>();
    const checksOrigin = !this.reflector.getAllAndOverride<boolean>(SKIPS_ORIGIN_CHECK, targets);
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, targets)) {
      if (checksOrigin) this.checkOrigin(request);
      return true;
    }
    const bearer = bearerToken(request);
    if (bearer !== null) {
      // A workload (issue 21): its OIDC token on every call, no cookie and so no cross-site risk; it may call
      // only the routes marked for it, and is refused before anything is written (its users row included).
      const proven = await this.workloads.verify(bearer);
      if (!this.reflector.getAllAndOverride<boolean>(WORKLOAD_ALLOWED, targets))
        throw new DomainError(
          ErrorCode.WORKLOAD_FORBIDDEN,
          'A workload may only file, read, wait on, activate and cancel its own requests',
        );
      request.actor = await this.workloads.actorOf(proven);
      return true;
    }
    const token = readSessionToken(request, this.config);
    if (!token) throw new DomainError(ErrorCode.UNAUTHENTICATED, 'Sign in first');
    // Before authenticate(): a refused call must not even touch the session's idle clock.
    if (checksOrigin) this.checkOrigin(request);
    // Background traffic checks the session but never extends it: only what a person does keeps it alive.
    const background =
      this.reflector.getAllAndOverride<boolean>(IS_BACKGROUND, targets) === true ||
      request.header(BACKGROUND_HEADER) === '1';
    const { actor, sessionId, noticesPending } = await this.sessions.authenticate(token, {
      touch: !background,
    });
    request.actor = actor;
    request.sessionId = sessionId;
    request.noticesPending = noticesPending;
    return true;
  }

  private checkOrigin(request: AuthenticatedRequest): void {
    if (SAFE_METHODS.has(request.method)) return;
    const origin = request.header('origin');
    if (!origin || !this.config.webauthn.origins.includes(origin)) {
      throw new DomainError(
        ErrorCode.ORIGIN_NOT_ALLOWED,
        origin
          ? `Origin ${origin} may not call this API`
          : 'State-changing requests must carry an Origin header',
      );
    }
  }
}

/** The bearer token of an `Authorization: Bearer …` header, or null when the call carries none. */
function bearerToken(request: AuthenticatedRequest): string | null {
  const header = request.header('authorization');
  if (header === undefined) return null;
  const match = /^Bearer +(\S+)$/i.exec(header);
  if (!match)
    throw new DomainError(ErrorCode.UNAUTHENTICATED, 'The Authorization header must be "Bearer <token>"');
  return match[1];
}
