import { Body, Controller, Get, Header, HttpCode, Post, Req } from '@nestjs/common';
import { IsOptional, IsString, MaxLength } from 'class-validator';
import type { Request } from 'express';
import { ConnectorRegistry } from '../../../libs/elevation/connector-registry.js';
import { Public, SkipOriginCheck } from '../auth/public.decorator.js';
import { ClientAuthenticationService } from './client-authentication.service.js';
import { IntrospectionService } from './introspection.service.js';
import { ApiBasicAuth } from '@nestjs/swagger';

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

@Controller()
export class TokensController {
  constructor(
    private readonly clients: ClientAuthenticationService,
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

  /**
   * RFC 7662 token introspection for resource servers, authenticated with client credentials (Basic);
   * failed authentications are limited per address and per client id (429 with Retry-After).
   */
  @Public()
  @SkipOriginCheck()
  @ApiBasicAuth('client')
  @Post('api/introspect')
  @HttpCode(200)
  @Header('Cache-Control', 'no-store')
  async introspect(@Req() request: Request, @Body() body: IntrospectDto) {
    await this.clients.authenticate(request.header('authorization'), request.ip);
    return this.introspection.introspect(body.token);
  }
}
