import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { encodeCBOR, type CBORType } from '@levischuck/tiny-cbor';
import { coseToPublicKey, decodeBase64Url } from './evidence-check.js';

function es256Cose(): Buffer {
  const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
  return Buffer.from(
    encodeCBOR(
      new Map<number, CBORType>([
        [1, 2],
        [3, -7],
        [-1, 1],
        [-2, new Uint8Array(Buffer.from(String(jwk.x), 'base64url'))],
        [-3, new Uint8Array(Buffer.from(String(jwk.y), 'base64url'))],
      ]),
    ),
  );
}

describe('decodeBase64Url', () => {
  it('accepts only canonical unpadded base64url', () => {
    expect(decodeBase64Url('AQID')).toEqual(Buffer.from([1, 2, 3]));
    expect(decodeBase64Url('')).toEqual(Buffer.alloc(0));
    for (const bad of ['AQI=', 'AQ+D', 'AQ/D', 'A Q', 'AQJ', 'A']) expect(decodeBase64Url(bad)).toBeNull();
  });
});

describe('coseToPublicKey', () => {
  it('decodes a key held at a non-zero offset of a larger buffer (tiny-cbor ignores byteOffset)', () => {
    const cose = es256Cose();
    const larger = Buffer.alloc(cose.length + 3, 0xff);
    cose.copy(larger, 3);
    const padded = larger.subarray(3);
    expect(padded.byteOffset).toBe(3);
    expect(coseToPublicKey(padded)).toMatchObject({ alg: 'ES256' });
  });

  it('refuses what is not a supported COSE key', () => {
    expect(coseToPublicKey(Buffer.from([0xff]))).toBe('publicKey is not CBOR');
    expect(coseToPublicKey(Buffer.from(encodeCBOR([1, 2])))).toBe('publicKey is not a COSE key map');
    const es384 = new Map<number, CBORType>([
      [1, 2],
      [3, -35],
    ]);
    expect(coseToPublicKey(Buffer.from(encodeCBOR(es384)))).toMatch(/unsupported COSE algorithm \(-35\)/);
    const offCurve = new Map<number, CBORType>([
      [1, 2],
      [3, -7],
      [-1, 1],
      [-2, new Uint8Array(32).fill(1)],
      [-3, new Uint8Array(32).fill(2)],
    ]);
    expect(coseToPublicKey(Buffer.from(encodeCBOR(offCurve)))).toBe('publicKey is not a valid ES256 key');
  });
});
