import { describe, expect, it } from '@jest/globals';
import {
  CEREMONY_FAILURE_ACTIONS,
  ceremonyFailureReason,
  MAX_FAILURE_REASON_BYTES,
} from './ceremony-failures.js';

describe('ceremonyFailureReason', () => {
  it('keeps a reason up to 1 KB as it is', () => {
    expect(ceremonyFailureReason('The signature does not verify')).toBe('The signature does not verify');
    const exact = 'x'.repeat(MAX_FAILURE_REASON_BYTES);
    expect(ceremonyFailureReason(exact)).toBe(exact);
  });

  it('cuts a longer reason (a library error quoting hostile input) to 1 KB of UTF-8, marked as cut', () => {
    const reason = ceremonyFailureReason(`Unexpected origin "${'a'.repeat(100_000)}"`);
    expect(MAX_FAILURE_REASON_BYTES).toBe(1024);
    expect(Buffer.byteLength(reason)).toBe(MAX_FAILURE_REASON_BYTES);
    expect(reason.startsWith('Unexpected origin "aaa')).toBe(true);
    expect(reason.endsWith('… (cut)')).toBe(true);
  });

  it('never cuts a surrogate pair in half, and counts bytes, not characters', () => {
    const reason = ceremonyFailureReason('😀'.repeat(2000));
    expect(reason).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
    expect(Buffer.byteLength(reason)).toBeLessThanOrEqual(MAX_FAILURE_REASON_BYTES);
    expect(reason.startsWith('😀😀')).toBe(true);
  });
});

describe('CEREMONY_FAILURE_ACTIONS', () => {
  it('audits a refused ceremony as `<kind>.failed`, the action stored before the enum', () => {
    for (const [kind, action] of Object.entries(CEREMONY_FAILURE_ACTIONS)) {
      expect(action).toBe(`${kind}.failed`);
    }
    expect(Object.keys(CEREMONY_FAILURE_ACTIONS).sort()).toEqual(['enroll', 'login', 'register', 'step-up']);
  });
});
