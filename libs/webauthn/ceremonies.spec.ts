import { describe, expect, it } from '@jest/globals';
import { decodeCBOR, encodeCBOR, type CBORType } from '@levischuck/tiny-cbor';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { coseKeyFromAttestation } from '../../test/support/audit-chain.js';
import { SoftAuthenticator } from '../../test/support/soft-authenticator.js';
import { DomainError } from '../domain/errors.js';
import {
  authenticationOptions,
  echoedChallenge,
  registrationOptions,
  signCountVerdict,
  verifyAssertion,
  verifyRegistration,
} from './ceremonies.js';

describe('signCountVerdict', () => {
  it('accepts a counter that went up, and 0 after 0 (an authenticator without a counter)', () => {
    for (const issuedBeforeStoredCount of [false, true]) {
      expect(signCountVerdict({ signCount: 5, storedSignCount: 4, issuedBeforeStoredCount })).toBe(
        'accepted',
      );
      expect(signCountVerdict({ signCount: 0, storedSignCount: 0, issuedBeforeStoredCount })).toBe(
        'accepted',
      );
    }
  });

  // [signCount, storedSignCount, issuedBeforeStoredCount, verdict]
  const TABLE: Array<[number, number, boolean, 'accepted' | 'stale' | 'regressed']> = [
    [5, 4, false, 'accepted'],
    [5, 4, true, 'accepted'],
    [0, 0, false, 'accepted'],
    [0, 0, true, 'accepted'],
    // Strictly lower over a challenge issued before the stored counter was accepted: a tab that lost a race.
    [3, 5, true, 'stale'],
    [0, 2, true, 'stale'],
    // A genuine authenticator never signs the same non-zero counter twice: equal is a clone, whenever issued.
    [5, 5, true, 'regressed'],
    [5, 5, false, 'regressed'],
    [1, 1, true, 'regressed'],
    // Lower over a challenge issued after the stored counter was accepted: signed by a second copy.
    [3, 5, false, 'regressed'],
    [0, 2, false, 'regressed'],
  ];

  it.each(TABLE)(
    'signCount %i over stored %i, issued before it: %s -> %s',
    (signCount, storedSignCount, issuedBeforeStoredCount, verdict) => {
      expect(signCountVerdict({ signCount, storedSignCount, issuedBeforeStoredCount })).toBe(verdict);
    },
  );
});

describe('echoedChallenge', () => {
  const encode = (clientData: unknown) => Buffer.from(JSON.stringify(clientData)).toString('base64url');

  it('returns a base64url challenge', () => {
    expect(echoedChallenge(encode({ challenge: 'abc_-09' }))).toBe('abc_-09');
  });

  it('returns null for anything a query should not see', () => {
    for (const challenge of ['', 'a\u0000b', '\uD800', 'a b', 'x'.repeat(129), 7, null]) {
      expect(echoedChallenge(encode({ challenge }))).toBeNull();
    }
    expect(echoedChallenge('not json')).toBeNull();
    expect(echoedChallenge(undefined)).toBeNull();
  });
});

describe('malformed ceremonies', () => {
  const rp = { rpId: 'localhost', rpName: 'JIT broker', origins: ['http://localhost:3000'] };
  const challenge = Buffer.from('a challenge of thirty-two bytes!').toString('base64url');
  const b64 = (value: Uint8Array | string) => Buffer.from(value).toString('base64url');
  const clientData = (fields: Record<string, unknown>) => b64(JSON.stringify(fields));

  async function registration() {
    const authenticator = new SoftAuthenticator({ origin: rp.origins[0] });
    const options = await registrationOptions({
      rp,
      challenge,
      userHandle: Buffer.from('user-handle'),
      username: 'alice',
      displayName: 'Alice',
      exclude: [],
    });
    return { authenticator, response: authenticator.register(options) };
  }

  function withAttestation(response: RegistrationResponseJSON, entries: Array<[string, CBORType]>) {
    const decoded = decodeCBOR(
      new Uint8Array(Buffer.from(response.response.attestationObject, 'base64url')),
    ) as Map<string, CBORType>;
    for (const [key, value] of entries) decoded.set(key, value);
    return { ...response, response: { ...response.response, attestationObject: b64(encodeCBOR(decoded)) } };
  }

  it('refuses every malformed registration with a DomainError, never another error', async () => {
    const { response } = await registration();
    const genuine = JSON.parse(Buffer.from(response.response.clientDataJSON, 'base64url').toString());
    const cases: RegistrationResponseJSON[] = [
      withAttestation(response, [['fmt', 7]]),
      withAttestation(response, [['fmt', 'none\u0000']]),
      withAttestation(response, [['fmt', 'packed']]),
      withAttestation(response, [['attStmt', 'not a map']]),
      withAttestation(response, [['authData', 'not bytes']]),
      withAttestation(response, [['authData', new Uint8Array(10)]]),
      { ...response, response: { ...response.response, attestationObject: b64(encodeCBOR([1, 2])) } },
      { ...response, response: { ...response.response, attestationObject: b64('garbage') } },
      ...[
        { ...genuine, challenge: 7 },
        { ...genuine, origin: [rp.origins[0]] },
        { ...genuine, type: undefined },
        { ...genuine, topOrigin: 'http://evil.example\u0000' },
        { ...genuine, tokenBinding: 'present' },
        { ...genuine, tokenBinding: { status: '\uD800' } },
        [genuine],
      ].map((fields) => ({
        ...response,
        response: { ...response.response, clientDataJSON: clientData(fields as Record<string, unknown>) },
      })),
      { ...response, id: '', rawId: '' },
      { ...response, type: 'other' as never },
    ];
    const outcomes = await Promise.all(
      cases.map((malformed) =>
        verifyRegistration(malformed, { rp, challenge }).then(
          () => 'verified',
          (error: unknown) => (error instanceof DomainError ? 'refused' : `thrown ${String(error)}`),
        ),
      ),
    );
    expect(outcomes).toEqual(cases.map(() => 'refused'));
  });

  it('refuses every malformed assertion with a DomainError, never another error', async () => {
    const { authenticator, response } = await registration();
    const publicKey = coseKeyFromAttestation(response.response.attestationObject);
    const options = await authenticationOptions({ rp, challenge, allow: [] });
    const assertion = authenticator.authenticate(options);
    const expected = { rp, challenge, publicKey, storedSignCount: 0 };
    await expect(verifyAssertion(assertion, expected)).resolves.toMatchObject({ signCount: 1 });
    const genuine = JSON.parse(Buffer.from(assertion.response.clientDataJSON, 'base64url').toString());
    const cases: AuthenticationResponseJSON[] = [
      { ...assertion, response: { ...assertion.response, signature: b64('short') } },
      { ...assertion, response: { ...assertion.response, authenticatorData: b64(new Uint8Array(36)) } },
      { ...assertion, response: { ...assertion.response, userHandle: 7 as never } },
      ...[
        { ...genuine, topOrigin: '\uD800' },
        { ...genuine, tokenBinding: { status: 'present\u0000' } },
        { ...genuine, challenge: null },
      ].map((fields) => ({
        ...assertion,
        response: { ...assertion.response, clientDataJSON: clientData(fields) },
      })),
    ];
    for (const malformed of cases) {
      await expect(verifyAssertion(malformed, expected)).rejects.toBeInstanceOf(DomainError);
    }
    await expect(
      verifyAssertion(assertion, { ...expected, publicKey: Buffer.from('not a COSE key') }),
    ).rejects.toBeInstanceOf(DomainError);
  });
});
