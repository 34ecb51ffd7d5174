import { createHash } from 'node:crypto';
import { SignJWT } from 'jose';
import type { SigningKeyStore } from '../keys/signing-key-store.js';
import type { Connector, GrantSpec, Minted } from './connector.js';

/** The token type of RFC 9068 JWT access tokens. */
export const ACCESS_TOKEN_TYPE = 'at+jwt';

/**
 * The `acr` of a token minted after a step-up: a WebAuthn assertion with user verification, bound to the
 * broker's origin, is "phishing-resistant" in the OpenID EAP ACR values.
 */
export const STEP_UP_ACR = 'phr';

export interface JwtConnectorOptions {
  issuer: string;
  audience: string;
  /** RFC 9068 `client_id`: the broker obtains the token for the requester; the policy's connector name. */
  clientId: string;
}

/**
 * Mints ES256 RFC 9068 access tokens; `exp` is the grant's notAfter and `jti` its id, so introspection can
 * revoke; `auth_time` and `acr` describe the requester's step-up when the caller knows it.
 */
export class JwtConnector implements Connector {
  readonly type = 'jwt';

  constructor(
    private readonly keys: SigningKeyStore,
    private readonly options: JwtConnectorOptions,
  ) {}

  async mint(grant: GrantSpec): Promise<Minted> {
    const key = await this.keys.currentKey('jwt');
    const scopes = Array.isArray(grant.scope.scopes) ? grant.scope.scopes.map(String) : [];
    const notAfterSeconds = grant.notAfter.getTime() / 1000;
    if (!Number.isInteger(notAfterSeconds)) throw new Error('notAfter must be a whole second');
    const stepUp = grant.authenticatedAt
      ? { auth_time: Math.floor(grant.authenticatedAt.getTime() / 1000), acr: STEP_UP_ACR }
      : {};
    const claims = { client_id: this.options.clientId, scope: scopes.join(' '), ...stepUp };
    const token = await new SignJWT({ ...claims, entitlement: grant.entitlementId })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: ACCESS_TOKEN_TYPE })
      .setIssuer(this.options.issuer)
      .setSubject(grant.subject)
      .setAudience(this.options.audience)
      .setIssuedAt()
      .setExpirationTime(notAfterSeconds)
      .setJti(grant.grantId)
      .sign(key.privateKey);
    return {
      credential: { type: 'jwt', notAfter: grant.notAfter.toISOString(), token },
      externalRef: grant.grantId,
      fingerprint: createHash('sha256').update(token).digest('base64url'),
      notAfter: grant.notAfter,
    };
  }

  /** Nothing to undo outside the broker: the grant's REVOKED state makes introspection answer inactive. */
  readonly revokesInDatabaseOnly = true;

  async revoke(): Promise<void> {}
}
