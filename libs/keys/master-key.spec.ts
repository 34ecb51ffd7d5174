import { randomBytes } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { openWithMasterKey, sealWithMasterKey } from './master-key.js';

describe('master-key sealing', () => {
  const masterKey = randomBytes(32);
  const secret = Buffer.from('-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----');

  it('opens what it sealed, and seals the same text differently each time (fresh IV)', () => {
    const sealed = sealWithMasterKey(masterKey, secret, 'signing-key:a');
    expect(openWithMasterKey(masterKey, sealed, 'signing-key:a')).toEqual(secret);
    expect(sealWithMasterKey(masterKey, secret, 'signing-key:a')).not.toEqual(sealed);
    expect(sealed.includes(secret)).toBe(false);
  });

  it('refuses another master key, another purpose, and altered bytes', () => {
    const sealed = sealWithMasterKey(masterKey, secret, 'signing-key:a');
    expect(() => openWithMasterKey(randomBytes(32), sealed, 'signing-key:a')).toThrow();
    expect(() => openWithMasterKey(masterKey, sealed, 'signing-key:b')).toThrow();
    const altered = Buffer.from(sealed);
    altered[altered.length - 1] ^= 1;
    expect(() => openWithMasterKey(masterKey, altered, 'signing-key:a')).toThrow();
  });
});
