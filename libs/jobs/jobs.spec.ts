import { describe, expect, it } from '@jest/globals';
import { revokeRetryDelayMs } from './jobs.js';

describe('revokeRetryDelayMs', () => {
  it('doubles from the base, between half and all of base × 2^(n-1)', () => {
    const lowest = () => 0;
    const highest = () => 0.999999;
    expect([1, 2, 3, 8].map((attempt) => revokeRetryDelayMs(attempt, 1000, lowest))).toEqual([
      500, 1000, 2000, 64_000,
    ]);
    expect([1, 2, 3].map((attempt) => revokeRetryDelayMs(attempt, 1000, highest))).toEqual([999, 1999, 3999]);
  });

  it('stays within its bounds with the real random source', () => {
    for (let attempt = 1; attempt <= 8; attempt++) {
      const delay = revokeRetryDelayMs(attempt, 50);
      expect(delay).toBeGreaterThanOrEqual(25 * 2 ** (attempt - 1));
      expect(delay).toBeLessThan(50 * 2 ** (attempt - 1));
    }
  });
});
