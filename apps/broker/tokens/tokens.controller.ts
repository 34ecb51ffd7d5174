import { Body, Controller, Get, Header, HttpCode, Inject, Post, Req } from '@nestjs/common';
import { createHash, timingSafeEqual } from 'node:crypto';
import { IsOptional, IsString, MaxLength } from 'class-validator';
import type { Request } from 'express';
import { APP_CONFIG, type AppConfig } from '../../../libs/config/config.js';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import { ConnectorRegistry } from '../../../libs/elevation/connector-registry.js';
import { Public, SkipOriginCheck } from '../auth/public.decorator.js';
import { IntrospectionService } from './introspection.service.js';

export class IntrospectDto {
  @IsString()
  @MaxLength(8192)
  token: string;

  /** A hint only: RFC 7662 §2.1 says an unknown one is ignored. */
  @IsOptional()
  @IsString()
  @MaxLength(100)
  token_type_hint?: string;
}

/** RFC 6749 §2.3.1 client credentials: Basic base64(urlencoded id ":" urlencoded secret); null if malformed. */
function parseBasic(authorization: string | undefined): { clientId: string; secret: string } | null {
  const match = /^Basic ([A-Za-z0-9+/]+={0,2})$/.exec(authorization ?? '');
  if (!match) return null;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const separator = decoded.indexOf(':');
  if (separator < 0) return null;
  try {
    return {
      clientId: decodeURIComponent(decoded.slice(0, separator)),
      secret: decodeURIComponent(decoded.slice(separator + 1)),
    };
  } catch {
    return null;
  }
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
  @SkipOriginCheck()
  @Post('api/introspect')
  @HttpCode(200)
  @Header('Cache-Control', 'no-store')
  async introspect(@Req() request: Request, @Body() body: IntrospectDto) {
    this.authenticateClient(request.header('authorization'));
    return this.introspection.introspect(body.token);
  }

  private authenticateClient(authorization: string | undefined): void {
    const credentials = parseBasic(authorization);
    const expected = credentials ? this.config.introspectionClients.get(credentials.clientId) : undefined;
    // Compare digests in constant time so neither the length nor the content of the secret leaks.
    if (
      !credentials ||
      expected === undefined ||
      !timingSafeEqual(digest(credentials.secret), digest(expected))
    ) {
      throw new DomainError(
        ErrorCode.INVALID_CLIENT,
        'Introspection needs valid client credentials (HTTP Basic)',
      );
    }
  }
}
