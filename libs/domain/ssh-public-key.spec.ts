import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import sshpk from 'sshpk';
import { DomainError, ErrorCode } from './errors.js';
import type { Entitlement, Policy } from './policy.js';
import { checkNewRequest } from './request-rules.js';
import { checkUserPublicKey, parseUserPublicKey } from './ssh-public-key.js';

// libs/domain imports nothing of ours, test/support included: its own keys, made once.
const sshLine = (key: KeyObject): string => {
  const parsed = sshpk.parseKey(key.export({ type: 'spki', format: 'pem' }), 'pem');
  parsed.comment = 'carol@laptop';
  return parsed.toString('ssh');
};
const KEYS = {
  ed25519: sshLine(generateKeyPairSync('ed25519').publicKey),
  ec: sshLine(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey),
  rsa2048: sshLine(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey),
  rsa1024: sshLine(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey),
  dsa: sshLine(generateKeyPairSync('dsa', { modulusLength: 1024, divisorLength: 160 }).publicKey),
};

function validationError(run: () => unknown): DomainError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(DomainError);
    expect((error as DomainError).code).toBe(ErrorCode.VALIDATION_FAILED);
    // The envelope names the field the way the edge's validation pipe does.
    expect((error as DomainError).details).toEqual([
      { field: 'sshPublicKey', problems: [(error as DomainError).message] },
    ]);
    return error as DomainError;
  }
  throw new Error('expected a VALIDATION_FAILED DomainError');
}

describe('parseUserPublicKey', () => {
  it('accepts Ed25519, ECDSA and RSA ≥ 2048 keys, with or without a comment', () => {
    expect(parseUserPublicKey(KEYS.ed25519).type).toBe('ed25519');
    expect(parseUserPublicKey(KEYS.ec).type).toBe('ecdsa');
    expect(parseUserPublicKey(`  ${KEYS.rsa2048}\n`).size).toBe(2048);
    const [algorithm, base64] = KEYS.ed25519.split(' ');
    expect(parseUserPublicKey(`${algorithm} ${base64}`).type).toBe('ed25519');
  });

  it('refuses a missing key', () => {
    expect(validationError(() => parseUserPublicKey(undefined)).message).toContain('required');
    expect(validationError(() => parseUserPublicKey(null)).message).toContain('required');
    expect(validationError(() => parseUserPublicKey('  ')).message).toContain('required');
  });

  it('refuses RSA keys under 2048 bits and DSA keys', () => {
    expect(validationError(() => parseUserPublicKey(KEYS.rsa1024)).message).toContain('RSA key of 1024 bits');
    expect(KEYS.dsa).toMatch(/^ssh-dss /);
    validationError(() => parseUserPublicKey(KEYS.dsa));
  });

  it('refuses text that is not exactly one valid public key', () => {
    const line = KEYS.ed25519;
    const [algorithm, base64, comment] = line.split(' ');
    const blob = Buffer.from(base64, 'base64');
    const bad = [
      'not a key',
      `${algorithm} !!!!`,
      `ssh-rsa ${base64}`, // the blob says ed25519
      `${algorithm} ${Buffer.concat([blob, Buffer.from([0])]).toString('base64')}`, // trailing bytes
      `${algorithm} ${blob.subarray(0, -1).toString('base64')}`, // truncated
      `${line}\n${line}`,
      `${algorithm}\n${base64} ${comment}`,
      `ssh-ed25519-cert-v01@openssh.com ${base64}`,
      '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----',
      `${algorithm} ${base64} ${'x'.repeat(20_000)}`,
    ];
    for (const text of bad) validationError(() => parseUserPublicKey(text));
  });
});

describe('checkUserPublicKey', () => {
  it('returns the refusal instead of throwing it', () => {
    expect(checkUserPublicKey(KEYS.ed25519)).toBeNull();
    expect(checkUserPublicKey('ssh-ed25519 AAAA')?.code).toBe(ErrorCode.VALIDATION_FAILED);
  });
});

describe('checkNewRequest for an ssh entitlement', () => {
  const entitlement = (id: string, connector: string): Entitlement => ({
    id,
    title: id,
    connector,
    scope: { principals: ['deploy'] },
    eligible: ['devs'],
    maxDurationSeconds: 3600,
    requires: { justification: true, ticketPattern: null },
    approval: {
      approvals: 1,
      approverGroups: ['leads'],
      pendingTtlSeconds: 3600,
      activationWindowSeconds: 900,
    },
    breakGlass: null,
    selfService: false,
    authenticator: { deviceBound: false, aaguids: null },
  });
  const policy: Policy = {
    groups: { devs: ['alice'], leads: ['bob'] },
    connectors: { hosts: { type: 'ssh' }, api: { type: 'jwt', audience: 'https://api.example' } },
    entitlements: [entitlement('hosts-deploy', 'hosts'), entitlement('api-admin', 'api')],
  };
  const file = (entitlementId: string, sshPublicKey?: string | null) =>
    checkNewRequest(
      policy,
      { username: 'alice' },
      { entitlementId, durationSeconds: 600, justification: 'deploy', sshPublicKey },
      { breakGlass: false },
    );

  it('accepts a key the ssh connector will certify', () => {
    expect(file('hosts-deploy', KEYS.ed25519)).toMatchObject({ id: 'hosts-deploy' });
    expect(file('hosts-deploy', KEYS.rsa2048)).toMatchObject({ id: 'hosts-deploy' });
  });

  it('refuses a missing, malformed, DSA or short RSA key, naming sshPublicKey', () => {
    const [algorithm, base64] = KEYS.ed25519.split(' ');
    const truncated = `${algorithm} ${Buffer.from(base64, 'base64').subarray(0, -1).toString('base64')}`;
    for (const key of [undefined, null, truncated, KEYS.dsa, KEYS.rsa1024]) {
      const outcome = file('hosts-deploy', key);
      expect(outcome).toBeInstanceOf(DomainError);
      expect((outcome as DomainError).code).toBe(ErrorCode.VALIDATION_FAILED);
      expect((outcome as DomainError).details).toEqual([
        { field: 'sshPublicKey', problems: expect.any(Array) },
      ]);
    }
  });

  it('asks nothing of other connectors', () => {
    expect(file('api-admin')).toMatchObject({ id: 'api-admin' });
  });
});
