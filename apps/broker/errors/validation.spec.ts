import { describe, expect, it } from '@jest/globals';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import { hostileField, validationFailed } from './validation.js';

describe('hostileField', () => {
  it('finds NUL and lone surrogates in any string or key, naming where', () => {
    expect(hostileField({ a: 'ok', b: ['fine', { c: 'x\u0000' }] })).toEqual({
      field: 'b.1.c',
      problem: 'contains NUL (U+0000)',
    });
    expect(hostileField({ params: { 'k\uD800': 1 } })).toEqual({
      field: 'params',
      problem: 'has a key that contains a lone surrogate (U+D800)',
    });
    expect(hostileField('\uDC00', 'id')).toEqual({ field: 'id', problem: expect.any(String) });
    expect(hostileField({ ok: 'Müller 😀 \u202E', n: 1, none: null })).toBeNull();
    expect(hostileField(JSON.parse('{"a":{"__proto__":{"polluted":1}}}'))?.field).toBe('a.__proto__');
    expect(hostileField(JSON.parse('{"constructor":{"prototype":{}}}'))?.field).toBe('constructor');
  });

  it('leaves the WebAuthn responses to the ceremony, which audits and counts them', () => {
    expect(hostileField({ response: { id: '\u0000' } })).toBeNull();
    expect(hostileField({ stepUp: { challengeId: 'x', response: { type: '\uD800' } } })).toBeNull();
    expect(hostileField({ stepUp: { challengeId: '\u0000' } })?.field).toBe('stepUp.challengeId');
    expect(hostileField({ params: { response: '\u0000' } })?.field).toBe('params.response');
  });
});

describe('validationFailed', () => {
  it('keeps at most 20 issues, each cut short and printable, and counts the rest in the message', () => {
    const issues = Array.from({ length: 5000 }, (_, index) => ({
      field: `${'f'.repeat(10_000)}\u202E${index}`,
      problems: Array.from({ length: 10 }, () => 'p'.repeat(10_000)),
    }));
    const error = validationFailed(issues);
    expect(error).toBeInstanceOf(DomainError);
    expect(error.code).toBe(ErrorCode.VALIDATION_FAILED);
    expect(error.message).toMatch(/and 4995 more problems$/);
    expect((error.details as unknown[]).length).toBe(20);
    expect(JSON.stringify({ message: error.message, details: error.details }).length).toBeLessThan(16_384);
    expect(JSON.stringify(error.details)).not.toContain('\u202E');
  });
});
