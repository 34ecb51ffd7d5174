import { Body, Controller, Get, Header, HttpCode, Inject, Post, Req } from '@nestjs/common';
import { createHash, timingSafeEqual } from 'node:crypto';
import { IsIn, IsOptional, IsString, MaxLength } from 'class-validator';
import type { Request } from 'express';
import { APP_CONFIG, type AppConfig } from '../../../libs/config/config.js';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import { ConnectorRegistry } from '../../../libs/elevation/connector-registry.js';
import { Public } from '../auth/public.decorator.js';
import { IntrospectionService } from './introspection.service.js';

export class IntrospectDto {
  @IsString()
  @MaxLength(8192)
  token: string;

  @IsOptional()
  @IsIn(['access_token'])
  token_type_hint?: string;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

@Controller()
export class TokensController {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly connectors: ConnectorRegistry,
    private readonly introspection: IntrospectionService,
  ) {}

  /** Public keys that verify the broker's access tokens, current and retired. */
  @Public()
  @Get('.well-known/jwks.json')
  @Header('Cache-Control', 'public, max-age=60')
  async jwks() {
    return { keys: await this.connectors.signingKeys.publicJwks('jwt') };
  }

  /** RFC 7662 token introspection for resource servers, authenticated with client credentials (Basic). */
  @Public()
  @Post('api/introspect')
  @HttpCode(200)
  @Header('Cache-Control', 'no-store')
  async introspect(@Req() request: Request, @Body() body: IntrospectDto) {
    this.authenticateClient(request.header('authorization'));
    return this.introspection.introspect(body.token);
  }

  private authenticateClient(authorization: string | undefined): void {
    const match = /^Basic ([A-Za-z0-9+/=]+)$/.exec(authorization ?? '');
    const decoded = match ? Buffer.from(match[1], 'base64').toString('utf8') : '';
    const separator = decoded.indexOf(':');
    const clientId = decodeURIComponent(decoded.slice(0, Math.max(separator, 0)));
    const secret = decodeURIComponent(decoded.slice(separator + 1));
    const expected = this.config.introspectionClients.get(clientId);
    // Compare digests in constant time so neither the length nor the content of the secret leaks.
    if (separator < 0 || expected === undefined || !timingSafeEqual(digest(secret), digest(expected))) {
      throw new DomainError(
        ErrorCode.UNAUTHENTICATED,
        'Introspection needs valid client credentials (HTTP Basic)',
      );
    }
  }
}
