import { describe, expect, it } from '@jest/globals';
import { canonicalJson } from './canonical-json.js';

describe('canonicalJson (RFC 8785)', () => {
  it('sorts keys at every depth and writes numbers and strings in their one JCS form', () => {
    expect(canonicalJson({ b: [1e21, 0.5, 'é'], a: { d: null, c: true } })).toBe(
      '{"a":{"c":true,"d":null},"b":[1e+21,0.5,"é"]}',
    );
  });

  it('refuses a value with no JSON form', () => {
    expect(() => canonicalJson(undefined)).toThrow('value has no canonical JSON form');
  });
});
