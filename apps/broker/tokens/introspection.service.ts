import { createHash } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { createLocalJWKSet, jwtVerify, type JWTPayload } from 'jose';
import { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../../../libs/config/config.js';
import { ACCESS_TOKEN_TYPE } from '../../../libs/connectors/jwt.connector.js';
import { ConnectorRegistry } from '../../../libs/elevation/connector-registry.js';

/** RFC 7662 introspection response. */
export type IntrospectionResponse = { active: false } | ({ active: true; token_type: string } & JWTPayload);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A token is active only while its signature holds, its grant is ACTIVE and PostgreSQL's clock is before notAfter. */
@Injectable()
export class IntrospectionService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly dataSource: DataSource,
    private readonly connectors: ConnectorRegistry,
  ) {}

  async introspect(token: string): Promise<IntrospectionResponse> {
    let payload: JWTPayload;
    try {
      const keys = createLocalJWKSet({ keys: await this.connectors.signingKeys.publicJwks('jwt') });
      ({ payload } = await jwtVerify(token, keys, {
        issuer: this.config.http.publicUrl,
        typ: ACCESS_TOKEN_TYPE,
        algorithms: ['ES256'],
      }));
    } catch {
      return { active: false };
    }
    if (typeof payload.jti !== 'string' || !UUID.test(payload.jti)) return { active: false };
    // The fingerprint binds the grant to this exact token, not merely to any validly signed one with its jti.
    const [grant] = (await this.dataSource.query(
      `SELECT state = 'ACTIVE' AND now() < not_after AND revoke_requested_at IS NULL AS live FROM grants
        WHERE id = $1 AND connector_type = 'jwt' AND fingerprint = $2`,
      [payload.jti, createHash('sha256').update(token).digest('base64url')],
    )) as Array<{ live: boolean }>;
    if (!grant?.live) return { active: false };
    return { ...payload, active: true, token_type: 'Bearer' };
  }
}
