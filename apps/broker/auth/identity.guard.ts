import { Inject, Injectable, Logger, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { DataSource } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { APP_CONFIG, type AppConfig } from '../../../libs/config/config.js';
import { UserEntity } from '../../../libs/db/index.js';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import type { AuthenticatedRequest } from './current-actor.decorator.js';
import { IS_PUBLIC } from './public.decorator.js';

export const TEST_IDENTITY_HEADER = 'x-test-user';
const USERNAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/**
 * Every route needs an identity unless marked @Public(). Until passkey sessions exist, the only identity
 * source is the test-only `X-Test-User` header, which config refuses outside NODE_ENV=test; without it,
 * every protected route answers 401.
 */
@Injectable()
export class IdentityGuard implements CanActivate {
  private readonly logger = new Logger(IdentityGuard.name);

  constructor(
    private readonly reflector: Reflector,
    private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    if (config.testIdentityHeader) {
      this.logger.warn(
        `UNSAFE: identities are taken from the ${TEST_IDENTITY_HEADER} header (NODE_ENV=test only)`,
      );
    }
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const isPublic = this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (isPublic) return true;
    const request = context.switchToHttp().getRequest<AuthenticatedRequest>();
    const username = this.config.testIdentityHeader ? request.header(TEST_IDENTITY_HEADER) : undefined;
    if (!username || !USERNAME.test(username))
      throw new DomainError(ErrorCode.UNAUTHENTICATED, 'Sign in first');
    const [user] = (await this.dataSource.query(
      `INSERT INTO users (id, username, display_name) VALUES ($1, $2, $2)
       ON CONFLICT (username) DO UPDATE SET username = EXCLUDED.username
       RETURNING id, username, display_name AS "displayName", roles, status`,
      [uuidv7(), username],
    )) as Array<Pick<UserEntity, 'id' | 'username' | 'displayName' | 'roles' | 'status'>>;
    if (user.status !== 'active')
      throw new DomainError(ErrorCode.UNAUTHENTICATED, 'This account is suspended');
    request.actor = {
      id: user.id,
      username: user.username,
      displayName: user.displayName,
      roles: user.roles,
    };
    return true;
  }
}
