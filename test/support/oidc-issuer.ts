import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

/** Claims for one workload token; `exp` in seconds since the epoch (default: now + 5 min). */
export interface WorkloadTokenClaims {
  sub: string;
  aud: string;
  exp?: number;
  nbf?: number;
  iss?: string;
  jti?: string;
}

/**
 * A local OIDC issuer for tests (the CI provider a workload gets its token from): ES256 key, discovery at
 * `/.well-known/openid-configuration`, keys at `/jwks.json`, on 127.0.0.1 with a random port.
 */
export interface OidcIssuer {
  /** `http://127.0.0.1:PORT` — the `iss` of its tokens. */
  issuer: string;
  jwksUri: string;
  /** How many times `/jwks.json` was fetched (to test caching). */
  jwksFetches: () => number;
  token: (claims: WorkloadTokenClaims) => Promise<string>;
  close: () => Promise<void>;
}

export async function startOidcIssuer(): Promise<OidcIssuer> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const kid = randomUUID();
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  let fetches = 0;
  let issuer = '';
  const server: Server = createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.url === '/.well-known/openid-configuration') {
      send(200, {
        issuer,
        jwks_uri: `${issuer}/jwks.json`,
        id_token_signing_alg_values_supported: ['ES256'],
      });
    } else if (req.url === '/jwks.json') {
      fetches += 1;
      send(200, { keys: [jwk] });
    } else {
      send(404, { error: 'not found' });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    issuer,
    jwksUri: `${issuer}/jwks.json`,
    jwksFetches: () => fetches,
    token: (claims) => signToken(privateKey, kid, issuer, claims),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

async function signToken(
  key: CryptoKey,
  kid: string,
  issuer: string,
  claims: WorkloadTokenClaims,
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
    .setIssuer(claims.iss ?? issuer)
    .setSubject(claims.sub)
    .setAudience(claims.aud)
    .setIssuedAt(now)
    .setJti(claims.jti ?? randomUUID())
    .setExpirationTime(claims.exp ?? now + 300);
  if (claims.nbf !== undefined) jwt.setNotBefore(claims.nbf);
  return jwt.sign(key);
}
