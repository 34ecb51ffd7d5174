import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { decodeCBOR } from '@levischuck/tiny-cbor';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type WebAuthnCredential,
} from '@simplewebauthn/server';
import { SoftAuthenticator, type SoftAuthenticatorOptions } from '../support/soft-authenticator.js';

// The authenticator is exercised only against the real simplewebauthn verifiers: if these pass, the broker's
// e2e tests that drive it prove real WebAuthn, not a mock of it.
const origin = 'http://localhost:3000';
const rpID = 'localhost';

async function enrol(
  authenticatorOptions: Partial<SoftAuthenticatorOptions> = {},
  userName = 'alice',
): Promise<{ authenticator: SoftAuthenticator; credential: WebAuthnCredential; userHandle: string }> {
  const authenticator = new SoftAuthenticator({ origin, ...authenticatorOptions });
  const options = await generateRegistrationOptions({
    rpName: 'JIT broker',
    rpID,
    userName,
    userID: new Uint8Array(randomBytes(16)),
    attestationType: 'none',
    authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
  });
  const verification = await verifyRegistrationResponse({
    response: authenticator.register(options),
    expectedChallenge: options.challenge,
    expectedOrigin: origin,
    expectedRPID: rpID,
    requireUserVerification: true,
  });
  expect(verification.verified).toBe(true);
  if (!verification.verified) throw new Error('registration was not verified');
  return { authenticator, credential: verification.registrationInfo.credential, userHandle: options.user.id };
}

async function signIn(
  authenticator: SoftAuthenticator,
  credential: WebAuthnCredential,
  overrides: Parameters<SoftAuthenticator['authenticate']>[1] = {},
  allowCredentials: { id: string }[] = [{ id: credential.id }],
) {
  const options = await generateAuthenticationOptions({
    rpID,
    allowCredentials,
    userVerification: 'required',
  });
  const response = authenticator.authenticate(options, overrides);
  return {
    response,
    verify: () =>
      verifyAuthenticationResponse({
        response,
        expectedChallenge: options.challenge,
        expectedOrigin: origin,
        expectedRPID: rpID,
        credential,
        requireUserVerification: true,
      }),
  };
}

function bytes(base64url: string): Buffer {
  return Buffer.from(base64url, 'base64url');
}

describe('SoftAuthenticator against @simplewebauthn/server', () => {
  describe('registration', () => {
    it.each(['none', 'packed'] as const)(
      'produces a verifiable %s attestation with UV',
      async (attestation) => {
        const authenticator = new SoftAuthenticator({
          origin,
          attestation,
          aaguid: 'a1b2c3d4-0000-4000-8000-0123456789ab',
        });
        const options = await generateRegistrationOptions({
          rpName: 'JIT broker',
          rpID,
          userName: 'alice',
          userID: new Uint8Array(randomBytes(16)),
          attestationType: attestation === 'packed' ? 'direct' : 'none',
          authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
        });

        const response = authenticator.register(options);
        const verification = await verifyRegistrationResponse({
          response,
          expectedChallenge: options.challenge,
          expectedOrigin: origin,
          expectedRPID: rpID,
          requireUserVerification: true,
        });

        expect(verification.verified).toBe(true);
        expect(verification.registrationInfo).toMatchObject({
          fmt: attestation,
          aaguid: 'a1b2c3d4-0000-4000-8000-0123456789ab',
          userVerified: true,
          credentialDeviceType: 'singleDevice',
          credentialBackedUp: false,
          origin,
          rpID,
          credential: { id: response.id, counter: 0, transports: ['internal'] },
        });
        expect(response).toMatchObject({ type: 'public-key', authenticatorAttachment: 'platform' });
        expect(response.rawId).toBe(response.id);
        expect(authenticator.credentials).toEqual([
          expect.objectContaining({ id: response.id, rpId: rpID, userHandle: options.user.id, signCount: 0 }),
        ]);
      },
    );

    it('encodes the same P-256 key in the COSE_Key that it reports as a JWK', async () => {
      const { authenticator, credential } = await enrol();
      const cose = decodeCBOR(credential.publicKey) as Map<number, unknown>;
      const jwk = authenticator.credentials[0].publicKeyJwk;

      expect([cose.get(1), cose.get(3), cose.get(-1)]).toEqual([2, -7, 1]);
      expect(Buffer.from(cose.get(-2) as Uint8Array).toString('base64url')).toBe(jwk.x);
      expect(Buffer.from(cose.get(-3) as Uint8Array).toString('base64url')).toBe(jwk.y);
    });

    it('reports BE and BS as a backed-up multi-device credential', async () => {
      const options = await generateRegistrationOptions({
        rpName: 'JIT broker',
        rpID,
        userName: 'alice',
        userID: new Uint8Array(randomBytes(16)),
      });
      const authenticator = new SoftAuthenticator({ origin, backupEligible: true, backedUp: true });
      const verification = await verifyRegistrationResponse({
        response: authenticator.register(options),
        expectedChallenge: options.challenge,
        expectedOrigin: origin,
        expectedRPID: rpID,
      });

      expect(verification.registrationInfo).toMatchObject({
        credentialDeviceType: 'multiDevice',
        credentialBackedUp: true,
      });
    });

    it('reports BE without BS as multi-device, not yet backed up', async () => {
      const { authenticator, credential } = await enrol({ backupEligible: true });
      const verification = await (await signIn(authenticator, credential)).verify();

      expect(verification.authenticationInfo).toMatchObject({
        credentialDeviceType: 'multiDevice',
        credentialBackedUp: false,
      });
    });

    it('fails verification when UV is cleared and the server requires it', async () => {
      const authenticator = new SoftAuthenticator({ origin });
      const options = await generateRegistrationOptions({
        rpName: 'JIT broker',
        rpID,
        userName: 'alice',
        authenticatorSelection: { userVerification: 'required' },
      });

      // The authenticator still answers: refusing is the server's job.
      const response = authenticator.register(options, { userVerified: false });
      await expect(
        verifyRegistrationResponse({
          response,
          expectedChallenge: options.challenge,
          expectedOrigin: origin,
          expectedRPID: rpID,
          requireUserVerification: true,
        }),
      ).rejects.toThrow('User verification was required');
    });

    it('honours excludeCredentials like a browser (InvalidStateError)', async () => {
      const { authenticator, credential } = await enrol();
      const options = await generateRegistrationOptions({
        rpName: 'JIT broker',
        rpID,
        userName: 'alice',
        excludeCredentials: [{ id: credential.id }],
      });

      expect(() => authenticator.register(options)).toThrow(
        expect.objectContaining({ name: 'InvalidStateError' }),
      );
      expect(authenticator.credentials).toHaveLength(1);
    });

    it('refuses an rp.id that does not fit its origin, as a browser does (SecurityError)', async () => {
      const authenticator = new SoftAuthenticator({ origin });
      const options = await generateRegistrationOptions({
        rpName: 'JIT broker',
        rpID: 'example.com',
        userName: 'a',
      });
      expect(() => authenticator.register(options)).toThrow(
        expect.objectContaining({ name: 'SecurityError' }),
      );
    });

    it('replaces the resident credential of the same account on re-registration', async () => {
      const authenticator = new SoftAuthenticator({ origin });
      const userID = new Uint8Array(randomBytes(16));
      for (let i = 0; i < 2; i += 1) {
        authenticator.register(
          await generateRegistrationOptions({ rpName: 'JIT broker', rpID, userName: 'alice', userID }),
        );
      }
      expect(authenticator.credentials).toHaveLength(1);
    });

    it.each([
      ['origin', { origin: 'http://evil.example' }, 'Unexpected registration response origin'],
      ['rpId', { rpId: 'evil.example' }, 'Unexpected RP ID hash'],
      ['challenge', { challenge: 'c29tZXRoaW5nLWVsc2U' }, 'Unexpected registration response challenge'],
      ['type', { type: 'webauthn.get' }, 'Unexpected registration response type'],
    ])('fails verification with a wrong %s', async (_field, overrides, message) => {
      const authenticator = new SoftAuthenticator({ origin });
      const options = await generateRegistrationOptions({ rpName: 'JIT broker', rpID, userName: 'alice' });
      await expect(
        verifyRegistrationResponse({
          response: authenticator.register(options, overrides),
          expectedChallenge: options.challenge,
          expectedOrigin: origin,
          expectedRPID: rpID,
        }),
      ).rejects.toThrow(message);
    });
  });

  describe('authentication', () => {
    it('signs an assertion that the registered public key verifies, with a rising counter', async () => {
      const { authenticator, credential, userHandle } = await enrol();

      const first = await signIn(authenticator, credential);
      const firstResult = await first.verify();
      expect(firstResult.verified).toBe(true);
      expect(firstResult.authenticationInfo).toMatchObject({
        credentialID: credential.id,
        newCounter: 1,
        userVerified: true,
        origin,
        rpID,
      });
      expect(first.response.response.userHandle).toBe(userHandle);

      credential.counter = firstResult.authenticationInfo.newCounter;
      const second = await (await signIn(authenticator, credential)).verify();
      expect(second.verified).toBe(true);
      expect(second.authenticationInfo.newCounter).toBe(2);
      expect(authenticator.credentials[0].signCount).toBe(2);
    });

    it('signs in with a discoverable credential when allowCredentials is empty', async () => {
      const { authenticator, credential, userHandle } = await enrol();
      const options = await generateAuthenticationOptions({ rpID, userVerification: 'required' });
      expect(options.allowCredentials ?? []).toEqual([]);

      const response = authenticator.authenticate(options);
      // The server finds the account from the userHandle, then the credential from the id.
      expect(response.response.userHandle).toBe(userHandle);
      expect(response.id).toBe(credential.id);
      const verification = await verifyAuthenticationResponse({
        response,
        expectedChallenge: options.challenge,
        expectedOrigin: origin,
        expectedRPID: rpID,
        credential,
        requireUserVerification: true,
      });
      expect(verification.verified).toBe(true);
    });

    it('picks the allowed credential among several', async () => {
      const authenticator = new SoftAuthenticator({ origin });
      for (const userName of ['alice', 'bob']) {
        const options = await generateRegistrationOptions({
          rpName: 'JIT broker',
          rpID,
          userName,
          userID: new Uint8Array(randomBytes(16)),
        });
        authenticator.register(options);
      }
      const [alice] = authenticator.credentials;
      const options = await generateAuthenticationOptions({ rpID, allowCredentials: [{ id: alice.id }] });

      expect(authenticator.authenticate(options).id).toBe(alice.id);
      expect(() =>
        authenticator.authenticate({ ...options, allowCredentials: [{ id: 'bm9wZQ', type: 'public-key' }] }),
      ).toThrow(expect.objectContaining({ name: 'NotAllowedError' }));
    });

    it('has a signature that node:crypto verifies from the JWK alone, without simplewebauthn', async () => {
      const { authenticator, credential } = await enrol();
      const { response } = await signIn(authenticator, credential);
      const publicKey = createPublicKey({ key: authenticator.credentials[0].publicKeyJwk, format: 'jwk' });
      const authenticatorData = bytes(response.response.authenticatorData);
      const clientDataJSON = bytes(response.response.clientDataJSON);
      const signedData = Buffer.concat([
        authenticatorData,
        createHash('sha256').update(clientDataJSON).digest(),
      ]);

      expect(verify('sha256', signedData, publicKey, bytes(response.response.signature))).toBe(true);
      expect(authenticatorData.subarray(0, 32)).toEqual(createHash('sha256').update(rpID).digest());
      expect(authenticatorData[32]).toBe(0x01 | 0x04);
      expect(authenticatorData.readUInt32BE(33)).toBe(1);
      expect(JSON.parse(clientDataJSON.toString('utf8'))).toEqual({
        type: 'webauthn.get',
        challenge: expect.any(String),
        origin,
        crossOrigin: false,
      });
      // DER, not raw r‖s: a SEQUENCE of two INTEGERs.
      expect(bytes(response.response.signature)[0]).toBe(0x30);
    });

    it('fails verification when UV is cleared and the server requires it', async () => {
      const { authenticator, credential } = await enrol();
      const { verify: verifyAssertion } = await signIn(authenticator, credential, { userVerified: false });
      await expect(verifyAssertion()).rejects.toThrow('User verification required');
    });

    it('fails verification when UP is cleared', async () => {
      const { authenticator, credential } = await enrol();
      const { verify: verifyAssertion } = await signIn(authenticator, credential, { userPresent: false });
      await expect(verifyAssertion()).rejects.toThrow('User not present');
    });

    it.each([
      ['origin', { origin: 'http://evil.example' }, 'Unexpected authentication response origin'],
      ['rpId', { rpId: 'evil.example' }, 'Unexpected RP ID hash'],
      ['challenge', { challenge: 'c29tZXRoaW5nLWVsc2U' }, 'Unexpected authentication response challenge'],
      ['type', { type: 'webauthn.create' }, 'Unexpected authentication response type'],
    ])('fails verification with a wrong %s', async (_field, overrides, message) => {
      const { authenticator, credential } = await enrol();
      const { verify: verifyAssertion } = await signIn(authenticator, credential, overrides);
      await expect(verifyAssertion()).rejects.toThrow(message);
    });

    it('is not verified when another key signed it', async () => {
      const { authenticator, credential } = await enrol();
      const mallory = await enrol({}, 'mallory');
      const options = await generateAuthenticationOptions({ rpID });
      const signedByMallory = mallory.authenticator.authenticate(options);

      // simplewebauthn v14 answers a bad signature with verified: false, not a throw.
      const verification = await verifyAuthenticationResponse({
        response: { ...signedByMallory, id: credential.id, rawId: credential.id },
        expectedChallenge: options.challenge,
        expectedOrigin: origin,
        expectedRPID: rpID,
        credential,
      });
      expect(verification.verified).toBe(false);
      expect(authenticator.credentials[0].signCount).toBe(0);
    });

    it('a regressed counter (cloned authenticator) is refused', async () => {
      const { authenticator, credential } = await enrol();
      for (let i = 0; i < 3; i += 1) {
        const verification = await (await signIn(authenticator, credential)).verify();
        credential.counter = verification.authenticationInfo.newCounter;
      }
      expect(credential.counter).toBe(3);

      authenticator.setSignCount(credential.id, 0);
      const { verify: verifyAssertion } = await signIn(authenticator, credential);
      await expect(verifyAssertion()).rejects.toThrow('Response counter value 1 was lower than expected 3');
    });

    it('a replayed assertion (counter not above the stored one) is refused', async () => {
      const { authenticator, credential } = await enrol();
      const assertion = await signIn(authenticator, credential);
      const first = await assertion.verify();
      credential.counter = first.authenticationInfo.newCounter;

      // v14 refuses counter <= stored whenever either side is non-zero, so an exact replay fails too.
      await expect(assertion.verify()).rejects.toThrow('Response counter value 1 was lower than expected 1');
    });
  });
});
