import { randomUUID } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import sshpk from 'sshpk';
import type { DataSource } from 'typeorm';
import { ErrorCode } from '../domain/errors.js';
import type { SigningKeyStore } from '../keys/signing-key-store.js';
import { publicKeyLine } from '../../test/support/ssh-keys.js';
import type { GrantSpec } from './connector.js';
import {
  certificateOptions,
  formatSshCertificateRef,
  parseSshCertificateRef,
  SSH_CLOCK_SKEW_SECONDS,
  SshConnector,
} from './ssh.connector.js';

function grantSpec(overrides: Partial<GrantSpec> = {}): GrantSpec {
  return {
    grantId: randomUUID(),
    requestId: randomUUID(),
    subject: 'carol',
    entitlementId: 'prod-ssh',
    scope: { principals: ['deploy'] },
    notAfter: new Date(Math.floor(Date.now() / 1000) * 1000 + 600_000),
    sshPublicKey: publicKeyLine('ed25519'),
    ...overrides,
  };
}

describe('certificateOptions', () => {
  it('takes principals from scope and defaults to a terminal without forwarding', () => {
    expect(certificateOptions(grantSpec({ scope: { principals: ['deploy', 'root', 'deploy'] } }))).toEqual({
      principals: ['deploy', 'root'],
      extensions: ['permit-pty'],
      criticalOptions: [],
    });
  });

  it('takes extensions and critical options from scope, in lexical order', () => {
    const options = certificateOptions(
      grantSpec({
        scope: {
          principals: ['deploy'],
          extensions: ['permit-pty', 'permit-agent-forwarding'],
          sourceAddresses: ['10.0.0.0/8', '192.0.2.7'],
          forceCommand: '/usr/bin/systemctl status',
        },
      }),
    );
    expect(options.extensions).toEqual(['permit-agent-forwarding', 'permit-pty']);
    expect(options.criticalOptions).toEqual([
      { name: 'force-command', value: '/usr/bin/systemctl status' },
      { name: 'source-address', value: '10.0.0.0/8,192.0.2.7' },
    ]);
    expect(
      certificateOptions(grantSpec({ scope: { principals: ['deploy'], extensions: [] } })).extensions,
    ).toEqual([]);
  });

  it('refuses missing, empty or malformed principals and unknown extensions', () => {
    for (const scope of [
      {},
      { principals: [] },
      { principals: 'deploy' },
      { principals: ['two words'] },
      { principals: ['a,b'] },
      { principals: ['*'] },
      { principals: [7] },
      { principals: ['deploy'], extensions: ['permit-everything'] },
      { principals: ['deploy'], extensions: 'permit-pty' },
      { principals: ['deploy'], sourceAddresses: [] },
      { principals: ['deploy'], sourceAddresses: ['example.com'] },
      { principals: ['deploy'], forceCommand: '' },
    ]) {
      expect(() => certificateOptions(grantSpec({ scope }))).toThrow('Entitlement prod-ssh: scope.');
    }
  });
});

describe('SSH certificate references', () => {
  const caKid = '019a9f1e-0000-7000-8000-000000000001';

  it('round-trip the CA, the serial and the expiry', () => {
    const ref = { caKid, serial: (1n << 63n) - 1n, notAfter: new Date('2030-01-01T00:00:00Z') };
    expect(parseSshCertificateRef(formatSshCertificateRef(ref))).toEqual(ref);
  });

  it('refuse anything this connector did not make', () => {
    for (const text of [
      '',
      'jit_0123',
      `${caKid}:0:1893456000`,
      `${caKid}:9223372036854775808:1893456000`,
      `${caKid}:12:`,
      `${caKid}:12:1893456000; DROP TABLE grants`,
      `${caKid.toUpperCase()}:12:1893456000`,
    ]) {
      expect(() => parseSshCertificateRef(text)).toThrow('not a certificate reference');
    }
  });
});

describe('SshConnector.mint (CA key from a stub store)', () => {
  const ca = sshpk.generatePrivateKey('ed25519');
  const keys = {
    currentSshCaKey: async () => ({
      kid: '019a9f1e-0000-7000-8000-000000000002',
      alg: 'EdDSA',
      pkcs8: ca.toString('pkcs8'),
    }),
  } as unknown as SigningKeyStore;
  const connector = new SshConnector(undefined as unknown as DataSource, keys);

  it('signs a user certificate: principals, key id, serial, window ending exactly at notAfter', async () => {
    const grant = grantSpec({ scope: { principals: ['deploy', 'root'] } });
    const before = Math.floor(Date.now() / 1000);
    const minted = await connector.mint(grant);
    const certificate = sshpk.parseCertificate(String(minted.credential.certificate), 'openssh');

    expect(certificate.isSignedByKey(ca.toPublic())).toBe(true);
    expect(certificate.subjectKey.toString('ssh').split(' ').slice(0, 2)).toEqual(
      String(grant.sshPublicKey).split(' ').slice(0, 2),
    );
    expect(certificate.subjects.map((subject) => subject.uid)).toEqual(['deploy', 'root']);
    expect(certificate.validUntil.getTime()).toBe(grant.notAfter.getTime());
    expect(certificate.validFrom.getTime() / 1000).toBeGreaterThanOrEqual(before - SSH_CLOCK_SKEW_SECONDS);
    expect(certificate.validFrom.getTime() / 1000).toBeLessThanOrEqual(before + 1 - SSH_CLOCK_SKEW_SECONDS);
    expect(certificate.signatures.openssh?.keyId).toBe(`jit-grant:${grant.grantId}:carol`);
    expect(certificate.signatures.openssh?.exts.map((extension) => extension.name)).toEqual(['permit-pty']);
    const serial = certificate.serial.readBigUInt64BE();
    expect(minted.credential).toMatchObject({
      type: 'ssh',
      notAfter: grant.notAfter.toISOString(),
      serial: serial.toString(),
      principals: ['deploy', 'root'],
      caPublicKey: expect.stringMatching(/^ssh-ed25519 AAAA\S+ jit-broker-ssh-user-ca$/),
    });
    expect(parseSshCertificateRef(minted.externalRef)).toEqual({
      caKid: '019a9f1e-0000-7000-8000-000000000002',
      serial,
      notAfter: grant.notAfter,
    });
    expect(minted.fingerprint).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('gives every grant its own serial', async () => {
    const serials = new Set<unknown>();
    for (let index = 0; index < 20; index++)
      serials.add((await connector.mint(grantSpec())).credential.serial);
    expect(serials.size).toBe(20);
  });

  it('refuses a bad key with VALIDATION_FAILED before touching the CA', async () => {
    await expect(
      connector.mint(grantSpec({ sshPublicKey: publicKeyLine('rsa', 1024) })),
    ).rejects.toMatchObject({
      code: ErrorCode.VALIDATION_FAILED,
    });
    await expect(connector.mint(grantSpec({ sshPublicKey: undefined }))).rejects.toMatchObject({
      code: ErrorCode.VALIDATION_FAILED,
    });
  });

  it('refuses a window that has already ended or is not whole seconds', async () => {
    await expect(
      connector.mint(grantSpec({ notAfter: new Date(Math.floor(Date.now() / 1000) * 1000 - 1000) })),
    ).rejects.toThrow('notAfter has passed');
    await expect(
      connector.mint(grantSpec({ notAfter: new Date(Math.floor(Date.now() / 1000) * 1000 + 600_500) })),
    ).rejects.toThrow('whole second');
  });
});
