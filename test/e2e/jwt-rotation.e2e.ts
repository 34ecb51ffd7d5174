// JWT access tokens over HTTP: introspection turns inactive on time, and a signing-key rotation (the CLI's
// own code, run in-process) reaches the running broker without a restart while tokens signed before it
// keep verifying against the JWKS until they expire.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { keysCommand } from '../../apps/cli/keys.js';
import { ConnectorRegistry } from '../../libs/elevation/connector-registry.js';
import { CURRENT_KEY_REFRESH_MS } from '../../libs/keys/signing-key-store.js';
import {
  clientAs,
  enrollAll,
  INTROSPECTION_CLIENT,
  startStack,
  waitFor,
  type TestStack,
} from '../support/stack.js';

jest.setTimeout(60_000);

const INTROSPECTION_DEADLINE_MS = 1_000;

async function introspect(stack: TestStack, token: string): Promise<Record<string, unknown>> {
  const credentials = Buffer.from(`${INTROSPECTION_CLIENT.id}:${INTROSPECTION_CLIENT.secret}`).toString(
    'base64',
  );
  const response = await fetch(`${stack.baseUrl}/api/introspect`, {
    method: 'POST',
    headers: { authorization: `Basic ${credentials}`, 'content-type': 'application/json' },
    body: JSON.stringify({ token }),
  });
  expect(response.status).toBe(200);
  return (await response.json()) as Record<string, unknown>;
}

async function jwks(stack: TestStack): Promise<JSONWebKeySet> {
  const response = await clientAs(stack, null).get('/.well-known/jwks.json');
  expect(response.status).toBe(200);
  return response.body as JSONWebKeySet;
}

function kids(set: JSONWebKeySet): string[] {
  return set.keys.map((key) => key.kid!);
}

/** Requests, approves and activates a jwt grant; returns its token and notAfter. */
async function token(
  stack: TestStack,
  durationSeconds: number,
): Promise<{ token: string; notAfter: number }> {
  const created = await clientAs(stack, 'alice').post('/api/requests', {
    entitlementId: 'api-admin-token',
    durationSeconds,
    justification: 'jwt rotation e2e',
  });
  expect(created.status).toBe(201);
  expect((await clientAs(stack, 'bob').decide(created.body.id, 'approve')).body.state).toBe('APPROVED');
  const activated = await clientAs(stack, 'alice').decide(created.body.id, 'activate');
  expect(activated.status).toBe(200);
  return {
    token: activated.body.credential.token as string,
    notAfter: new Date(activated.body.request.notAfter as string).getTime(),
  };
}

async function verifies(stack: TestStack, jwt: string): Promise<boolean> {
  return jwtVerify(jwt, createLocalJWKSet(await jwks(stack)), { issuer: stack.config.http.publicUrl }).then(
    () => true,
    () => false,
  );
}

describe('jwt access tokens: introspection on time, signing-key rotation', () => {
  let stack: TestStack;
  let rotationEnv: NodeJS.ProcessEnv;

  beforeAll(async () => {
    stack = await startStack({ env: { SWEEP_INTERVAL_SECONDS: '1' } });
    await enrollAll(stack, ['alice', 'bob']);
    rotationEnv = {
      DATABASE_URL: stack.config.databaseUrl,
      BROKER_MASTER_KEY: stack.config.masterKey.toString('base64'),
    };
  }, 60_000);

  afterAll(async () => {
    jest.restoreAllMocks();
    await stack?.close();
  }, 60_000);

  it(`turns introspection inactive within ${INTROSPECTION_DEADLINE_MS} ms after notAfter`, async () => {
    const { token: jwt, notAfter } = await token(stack, 2);
    expect(await introspect(stack, jwt)).toMatchObject({ active: true, sub: 'alice' });
    const inactiveAt = await waitFor(
      async () => ((await introspect(stack, jwt)).active === false ? Date.now() : undefined),
      notAfter - Date.now() + 10_000,
      'introspection to answer active: false',
    );
    console.log(`Introspection first answered inactive ${inactiveAt - notAfter} ms after notAfter`);
    expect(inactiveAt).toBeGreaterThanOrEqual(notAfter);
    expect(inactiveAt - notAfter).toBeLessThanOrEqual(INTROSPECTION_DEADLINE_MS);
  });

  it('rotates the signing key without a restart; old tokens verify until they expire, then the old key goes', async () => {
    const before = await token(stack, 4);
    const oldKid = decodeProtectedHeader(before.token).kid!;
    expect(kids(await jwks(stack))).toEqual([oldKid]);
    expect(await verifies(stack, before.token)).toBe(true);

    const printed = jest.spyOn(console, 'log').mockImplementation(() => {});
    expect(await keysCommand(['rotate', 'jwt'], rotationEnv)).toBe(0);
    expect(printed.mock.calls.join('\n')).toContain('Rotated the jwt signing key');
    printed.mockRestore();
    const { rows } = await stack.db.query(
      `SELECT kid, retired_at FROM signing_keys WHERE purpose = 'jwt' ORDER BY created_at`,
    );
    expect(rows).toEqual([
      { kid: oldKid, retired_at: expect.any(Date) },
      { kid: expect.any(String), retired_at: null },
    ]);
    const newKid = rows[1].kid as string;
    const { rows: events } = await stack.db.query(
      `SELECT actor_id, subject_id, data FROM audit_events WHERE action = 'signing-key.rotated'`,
    );
    expect(events).toEqual([
      {
        actor_id: 'cli',
        subject_id: newKid,
        data: { purpose: 'jwt', alg: 'ES256', kid: newKid, retiredKid: oldKid },
      },
    ]);

    // Both keys are published; the token signed before the rotation still verifies and is still active.
    expect(kids(await jwks(stack))).toEqual([newKid, oldKid]);
    expect(await verifies(stack, before.token)).toBe(true);
    expect(await introspect(stack, before.token)).toMatchObject({ active: true });

    // The running broker switches within one refresh of its key store, no restart.
    const brokerKeys = stack.broker.get(ConnectorRegistry).signingKeys;
    await waitFor(
      async () => ((await brokerKeys.currentKey('jwt')).kid === newKid ? true : undefined),
      CURRENT_KEY_REFRESH_MS + 2_000,
      'the broker to sign with the new key',
    );
    const after = await token(stack, 3);
    expect(decodeProtectedHeader(after.token).kid).toBe(newKid);
    expect(await verifies(stack, after.token)).toBe(true);
    expect(await introspect(stack, after.token)).toMatchObject({ active: true });

    // Once the last token the old key can have signed has expired, the old key leaves the JWKS. A process
    // may sign with a retired key until its next refresh, so grants issued within a grace period after the
    // rotation count too (RETIRED_KEY_SIGNING_GRACE_SECONDS): `after` keeps the old key until it expires.
    const lastExpiry = Math.max(before.notAfter, after.notAfter);
    const droppedAt = await waitFor(
      async () => (kids(await jwks(stack)).includes(oldKid) ? undefined : Date.now()),
      lastExpiry - Date.now() + 10_000,
      'the retired key to leave the JWKS',
    );
    expect(droppedAt).toBeGreaterThanOrEqual(lastExpiry);
    expect(kids(await jwks(stack))).toEqual([newKid]);
    const signedByOldKey = await jwtVerify(before.token, createLocalJWKSet(await jwks(stack)), {
      currentDate: new Date(before.notAfter - 1_000),
    }).then(
      () => 'verified',
      (error: { code?: string }) => error.code,
    );
    expect(signedByOldKey).toBe('ERR_JWKS_NO_MATCHING_KEY');
  });

  it('refuses to rotate with another master key, and to rotate anything but jwt', async () => {
    jest.spyOn(console, 'error').mockImplementation(() => {});
    const { rows: keysBefore } = await stack.db.query(
      `SELECT kid, retired_at FROM signing_keys ORDER BY kid`,
    );
    await expect(
      keysCommand(['rotate', 'jwt'], {
        ...rotationEnv,
        BROKER_MASTER_KEY: randomBytes(32).toString('base64'),
      }),
    ).rejects.toThrow('master key does not open the current jwt key');
    expect(await keysCommand(['rotate', 'audit'], rotationEnv)).toBe(2);
    expect(await keysCommand(['rotate'], rotationEnv)).toBe(2);
    const { rows: keysAfter } = await stack.db.query(`SELECT kid, retired_at FROM signing_keys ORDER BY kid`);
    expect(keysAfter).toEqual(keysBefore);
  });
});
