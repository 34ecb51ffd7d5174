import { describe, expect, it } from '@jest/globals';
import { DomainError, ErrorCode } from '../domain/errors.js';
import { formatDuration, parseDuration } from './duration.js';

describe('parseDuration', () => {
  it.each([
    ['90s', 90],
    ['15m', 900],
    ['1h', 3600],
    ['1h30m', 5400],
    ['2d', 172_800],
    ['1d2h3m4s', 93_784],
    ['0h5m', 300],
    ['120m', 7200],
  ])('%s is %i seconds', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });

  it.each([
    '',
    '0s',
    '0h0m',
    '1',
    '1H',
    '1 h',
    ' 1h',
    '1h ',
    '30m1h',
    '1h1h',
    '1.5h',
    '-1h',
    '1w',
    'h',
    'PT1H',
  ])('refuses %p', (text) => {
    expect(() => parseDuration(text)).toThrow(DomainError);
    expect(() => parseDuration(text)).toThrow(
      `${JSON.stringify(text)} is not a positive duration like "90s", "15m", "1h30m" or "2d"`,
    );
  });

  it('uses the VALIDATION_FAILED code', () => {
    expect(() => parseDuration('soon')).toThrow(
      expect.objectContaining({ code: ErrorCode.VALIDATION_FAILED }),
    );
  });

  it('formats back to the shortest text', () => {
    expect([90, 900, 3600, 5400, 172_800, 93_784].map(formatDuration)).toEqual([
      '1m30s',
      '15m',
      '1h',
      '1h30m',
      '2d',
      '1d2h3m4s',
    ]);
  });
});
