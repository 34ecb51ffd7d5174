import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { Request } from 'express';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import type { Actor } from '../../../libs/domain/actor.js';

/** The request as the identity guard leaves it. */
export type AuthenticatedRequest = Request & { actor?: Actor; sessionId?: string; noticesPending?: boolean };

/** Injects the authenticated Actor set by the IdentityGuard. */
export const CurrentActor = createParamDecorator((_data: unknown, context: ExecutionContext): Actor => {
  const actor = context.switchToHttp().getRequest<AuthenticatedRequest>().actor;
  if (!actor) throw new DomainError(ErrorCode.UNAUTHENTICATED, 'Sign in first');
  return actor;
});

/** The id of the session that carries the request (for logout). */
export const CurrentSessionId = createParamDecorator((_data: unknown, context: ExecutionContext): string => {
  const sessionId = context.switchToHttp().getRequest<AuthenticatedRequest>().sessionId;
  if (!sessionId) throw new DomainError(ErrorCode.UNAUTHENTICATED, 'Sign in first');
  return sessionId;
});

/** Whether the session's passkey has recovery notices to see, as the session lookup found. */
export const NoticesPending = createParamDecorator(
  (_data: unknown, context: ExecutionContext): boolean =>
    context.switchToHttp().getRequest<AuthenticatedRequest>().noticesPending === true,
);
