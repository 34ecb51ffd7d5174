import { describe, expect, it } from '@jest/globals';
import type { AppConfig } from '../config/config.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import { checkFilingLimits, type FilingCounts } from './anti-fatigue.js';

const limits: AppConfig['antiFatigue'] = {
  maxOpenPerEntitlement: 1,
  maxOpen: 3,
  requestLimit: 5,
  requestWindowSeconds: 600,
  denialCooldownSeconds: 300,
  denialLockoutCount: 3,
  denialLockoutWindowSeconds: 86_400,
  rubberStampSeconds: 10,
};
const now = new Date('2026-12-04T08:00:00.000Z');
const quiet: FilingCounts = { open: 0, openHere: 0, openExtensionsHere: 0, recent: 0, lastDenial: null, now };
const filing = { extension: false };

function code(refusal: DomainError | null): ErrorCode | null {
  return refusal?.code ?? null;
}

describe('checkFilingLimits', () => {
  it('lets a requester with nothing open and nothing recent file', () => {
    expect(checkFilingLimits(quiet, limits, 'db', filing)).toBeNull();
  });

  it('rate-limits new requests within the window, with the limit in the details', () => {
    const refusal = checkFilingLimits({ ...quiet, recent: 5 }, limits, 'db', filing);
    expect(code(refusal)).toBe(ErrorCode.REQUEST_RATE_LIMITED);
    expect(refusal?.details).toEqual({ limit: 5, windowSeconds: 600 });
    expect(checkFilingLimits({ ...quiet, recent: 4 }, limits, 'db', filing)).toBeNull();
  });

  it('holds a denied entitlement for the cool-down and says how long is left', () => {
    const lastDenial = new Date(now.getTime() - 100_500);
    const refusal = checkFilingLimits({ ...quiet, lastDenial }, limits, 'db', filing);
    expect(code(refusal)).toBe(ErrorCode.DENIAL_COOLDOWN);
    expect(refusal?.details).toEqual({ retryAfterSeconds: 200 });
  });

  it('caps open requests per entitlement and in all', () => {
    expect(code(checkFilingLimits({ ...quiet, openHere: 1, open: 1 }, limits, 'db', filing))).toBe(
      ErrorCode.OPEN_REQUEST_EXISTS,
    );
    expect(code(checkFilingLimits({ ...quiet, open: 3 }, limits, 'db', filing))).toBe(
      ErrorCode.TOO_MANY_OPEN_REQUESTS,
    );
  });

  it('lets an extension past the open-request caps, but only one open extension at a time', () => {
    const busy = { ...quiet, openHere: 1, open: 3 };
    expect(checkFilingLimits(busy, limits, 'db', { extension: true })).toBeNull();
    const again = checkFilingLimits({ ...busy, openExtensionsHere: 1 }, limits, 'db', { extension: true });
    expect(code(again)).toBe(ErrorCode.OPEN_REQUEST_EXISTS);
  });

  it('checks the rate before the cool-down, and both before the open caps', () => {
    const everything = { ...quiet, recent: 9, lastDenial: now, openHere: 1, open: 3 };
    expect(code(checkFilingLimits(everything, limits, 'db', filing))).toBe(ErrorCode.REQUEST_RATE_LIMITED);
    const noRate = { ...everything, recent: 0 };
    expect(code(checkFilingLimits(noRate, limits, 'db', filing))).toBe(ErrorCode.DENIAL_COOLDOWN);
  });
});
