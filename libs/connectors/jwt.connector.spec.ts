import { describe, expect, it } from '@jest/globals';
import { decodeProtectedHeader, generateKeyPair, jwtVerify } from 'jose';
import type { SigningKeyStore } from '../keys/signing-key-store.js';
import type { GrantSpec } from './connector.js';
import { ACCESS_TOKEN_TYPE, JwtConnector, STEP_UP_ACR } from './jwt.connector.js';

const OPTIONS = {
  issuer: 'https://broker.example',
  audience: 'https://api.example.com',
  clientId: 'api-token',
};

async function connector() {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  // Only currentKey('jwt') is used by the connector.
  const keys = { currentKey: async () => ({ kid: 'jwt-1', alg: 'ES256', privateKey }) };
  return { jwt: new JwtConnector(keys as unknown as SigningKeyStore, OPTIONS), publicKey };
}

function grant(overrides: Partial<GrantSpec> = {}): GrantSpec {
  return {
    grantId: '01890000-0000-7000-8000-000000000001',
    requestId: '01890000-0000-7000-8000-000000000002',
    subject: 'alice',
    entitlementId: 'api-admin-token',
    scope: { scopes: ['admin:read', 'admin:write'] },
    notAfter: new Date(Math.ceil(Date.now() / 1000) * 1000 + 600_000),
    ...overrides,
  };
}

describe('JwtConnector', () => {
  it('mints an RFC 9068 access token: at+jwt with iss, exp, aud, sub, client_id, iat and jti', async () => {
    const { jwt, publicKey } = await connector();
    const spec = grant();
    const { credential } = await jwt.mint(spec);
    const token = credential.token as string;
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'ES256', kid: 'jwt-1', typ: ACCESS_TOKEN_TYPE });
    const { payload } = await jwtVerify(token, publicKey, {
      issuer: OPTIONS.issuer,
      audience: OPTIONS.audience,
      typ: ACCESS_TOKEN_TYPE,
      requiredClaims: ['exp', 'sub', 'client_id', 'iat', 'jti'],
    });
    expect(payload).toMatchObject({
      sub: 'alice',
      client_id: 'api-token',
      jti: spec.grantId,
      exp: spec.notAfter.getTime() / 1000,
      scope: 'admin:read admin:write',
    });
    // Without a step-up time the token claims none.
    expect(payload).not.toHaveProperty('auth_time');
    expect(payload).not.toHaveProperty('acr');
  });

  it('carries auth_time (whole seconds) and acr of the step-up that authorised the activation', async () => {
    const { jwt } = await connector();
    const authenticatedAt = new Date('2026-12-04T08:00:01.999Z');
    const { credential } = await jwt.mint(grant({ authenticatedAt }));
    const [, payload] = (credential.token as string).split('.');
    expect(JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))).toMatchObject({
      auth_time: Math.floor(authenticatedAt.getTime() / 1000),
      acr: STEP_UP_ACR,
    });
  });
});
