import { describe, expect, it } from '@jest/globals';
import { LocalWindows } from './rate-limit-store.js';

describe('LocalWindows (the per-process fallback while Redis is unreachable)', () => {
  it('counts hits per name within a fixed window, then starts a new one', () => {
    let now = 1_000_000;
    const windows = new LocalWindows(() => now);
    expect(windows.hit('ceremony:10.0.0.1', 60)).toEqual({ count: 1, retryAfterSeconds: 60 });
    expect(windows.hit('ceremony:10.0.0.1', 60).count).toBe(2);
    expect(windows.hit('ceremony:10.0.0.2', 60).count).toBe(1);
    now += 30_500;
    expect(windows.peek('ceremony:10.0.0.1')).toEqual({ count: 2, retryAfterSeconds: 30 });
    now += 30_000;
    expect(windows.peek('ceremony:10.0.0.1')).toEqual({ count: 0, retryAfterSeconds: 0 });
    expect(windows.hit('ceremony:10.0.0.1', 60)).toEqual({ count: 1, retryAfterSeconds: 60 });
  });
});
