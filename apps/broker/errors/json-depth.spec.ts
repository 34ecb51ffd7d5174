import { describe, expect, it } from '@jest/globals';
import { jsonTooDeep } from './json-depth.js';

describe('jsonTooDeep', () => {
  it('accepts ordinary bodies and counts only structure outside strings', () => {
    expect(jsonTooDeep(Buffer.from('{"a":[{"b":[1,2,{"c":null}]}]}'), 5)).toBe(false);
    expect(jsonTooDeep(Buffer.from(JSON.stringify({ text: '[[[[[[[[[[{{{{{{' })), 2)).toBe(false);
    expect(jsonTooDeep(Buffer.from(JSON.stringify({ text: 'a\\"[[[[[[' })), 1)).toBe(false);
  });

  it('refuses nesting beyond the limit, however it is mixed', () => {
    expect(jsonTooDeep(Buffer.from('[[[[1]]]]'), 3)).toBe(true);
    expect(jsonTooDeep(Buffer.from('{"a":{"b":[{"c":1}]}}'), 3)).toBe(true);
    expect(jsonTooDeep(Buffer.from('['.repeat(100_000)), 32)).toBe(true);
  });
});
