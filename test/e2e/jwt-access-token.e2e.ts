// The broker's JWT access tokens as a strict RFC 9068 resource server sees them: oauth4webapi's
// validateJwtAccessToken, with the broker's metadata and its published JWKS, and nothing of this code base.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { allowInsecureRequests, validateJwtAccessToken, type AuthorizationServer } from 'oauth4webapi';
import { clientAs, enrollAll, startStack, type TestStack } from '../support/stack.js';

const AUDIENCE = 'https://api.example.com';
const RESOURCE = `${AUDIENCE}/orders`;

/** What a resource server receives: the token in the Authorization header (RFC 6750). */
function resourceRequest(token: string): Request {
  return new Request(RESOURCE, { headers: { authorization: `Bearer ${token}` } });
}

describe('jwt access tokens pass an RFC 9068 validator (oauth4webapi)', () => {
  let stack: TestStack;
  let broker: AuthorizationServer;
  // The e2e broker listens on plain http on 127.0.0.1; a deployment serves its JWKS over https.
  const options = { [allowInsecureRequests]: true, signingAlgorithms: ['ES256'] };

  beforeAll(async () => {
    stack = await startStack();
    await enrollAll(stack, ['alice', 'bob']);
    broker = { issuer: stack.config.http.publicUrl, jwks_uri: `${stack.baseUrl}/.well-known/jwks.json` };
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  it('a minted token validates, with client_id and the auth_time and acr of the activation step-up', async () => {
    const alice = clientAs(stack, 'alice');
    const created = await alice.post('/api/requests', {
      entitlementId: 'api-admin-token',
      durationSeconds: 300,
      justification: 'RFC 9068 e2e',
    });
    expect(created.status).toBe(201);
    expect((await clientAs(stack, 'bob').decide(created.body.id, 'approve')).body.state).toBe('APPROVED');
    const activated = await alice.decide(created.body.id, 'activate');
    expect(activated.status).toBe(200);
    const token = activated.body.credential.token as string;

    const claims = await validateJwtAccessToken(broker, resourceRequest(token), AUDIENCE, options);

    const { rows } = await stack.db.query(
      `SELECT g.id AS "grantId", c.used_at AS "stepUpAt"
         FROM grants g, step_up_challenges c
        WHERE g.request_id = $1 AND c.subject_id = $2 AND c.action = 'activate' AND c.used_at IS NOT NULL`,
      [created.body.id, created.body.id],
    );
    expect(rows).toHaveLength(1);
    const { grantId, stepUpAt } = rows[0] as { grantId: string; stepUpAt: Date };
    expect(claims).toMatchObject({
      iss: stack.config.http.publicUrl,
      aud: AUDIENCE,
      sub: 'alice',
      // The broker is the client that obtained the token for alice; the policy's connector name says which.
      client_id: 'api-token',
      jti: grantId,
      exp: new Date(activated.body.request.notAfter as string).getTime() / 1000,
      iat: expect.any(Number),
      // The step-up that authorised this activation: when the broker verified it, and a WebAuthn assertion
      // with user verification (OpenID EAP "phishing-resistant").
      auth_time: Math.floor(stepUpAt.getTime() / 1000),
      acr: 'phr',
      scope: 'admin:read admin:write',
    });
  });

  it('refuses the same kind of token for another audience, or with a signature that is not the broker’s', async () => {
    const alice = clientAs(stack, 'alice');
    const created = await alice.post('/api/requests', {
      entitlementId: 'api-admin-token',
      durationSeconds: 300,
      justification: 'RFC 9068 e2e, negative',
    });
    await clientAs(stack, 'bob').decide(created.body.id, 'approve');
    const token = (await alice.decide(created.body.id, 'activate')).body.credential.token as string;
    await expect(
      validateJwtAccessToken(broker, resourceRequest(token), 'https://other.example', options),
    ).rejects.toThrow(/aud/);
    const [header, payload, signature] = token.split('.');
    const forged = `${header}.${payload}.${signature.slice(0, -4)}${signature.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
    await expect(
      validateJwtAccessToken(broker, resourceRequest(forged), AUDIENCE, options),
    ).rejects.toThrow();
  });
});
