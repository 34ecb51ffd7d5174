import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { Request } from 'express';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import type { Actor } from '../../../libs/elevation/actor.js';

/** The request as the identity guard leaves it. */
export type AuthenticatedRequest = Request & { actor?: Actor };

/** Injects the authenticated Actor set by the IdentityGuard. */
export const CurrentActor = createParamDecorator((_data: unknown, context: ExecutionContext): Actor => {
  const actor = context.switchToHttp().getRequest<AuthenticatedRequest>().actor;
  if (!actor) throw new DomainError(ErrorCode.UNAUTHENTICATED, 'Sign in first');
  return actor;
});
