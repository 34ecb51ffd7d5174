import { describe, expect, it } from '@jest/globals';
import type { ArgumentsHost } from '@nestjs/common';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import { ErrorEnvelopeFilter, retryAfterSeconds, STATUS_OF } from './error-envelope.filter.js';

/** What the filter wrote: status, headers and body. */
function answer(exception: unknown) {
  const written = { status: 0, headers: {} as Record<string, string>, body: undefined as unknown };
  const response = {
    setHeader: (name: string, value: string) => void (written.headers[name.toLowerCase()] = value),
    status: (status: number) => ((written.status = status), response),
    json: (body: unknown) => void (written.body = body),
  };
  const host = { switchToHttp: () => ({ getResponse: () => response }) } as unknown as ArgumentsHost;
  new ErrorEnvelopeFilter().catch(exception, host);
  return written;
}

/** The details each 429 code is thrown with (ip-rate-limit guard, introspection, anti-fatigue, step-up). */
const DETAILS_OF_429: Partial<Record<ErrorCode, unknown>> = {
  [ErrorCode.RATE_LIMITED]: { retryAfterSeconds: 42 },
  [ErrorCode.DENIAL_COOLDOWN]: { retryAfterSeconds: 7 },
  [ErrorCode.REQUEST_RATE_LIMITED]: { limit: 20, windowSeconds: 3600 },
  [ErrorCode.STEP_UP_LOCKED]: { lockedUntil: new Date(Date.now() + 90_000).toISOString() },
};

describe('ErrorEnvelopeFilter: Retry-After', () => {
  it('sends Retry-After in whole seconds with every 429 the broker can answer', () => {
    const tooMany = Object.values(ErrorCode).filter((code) => STATUS_OF[code] === 429);
    expect(tooMany.length).toBeGreaterThanOrEqual(4);
    for (const code of tooMany) {
      const written = answer(new DomainError(code, 'slow down', DETAILS_OF_429[code]));
      expect({ code, status: written.status, retryAfter: written.headers['retry-after'] }).toEqual({
        code,
        status: 429,
        retryAfter: expect.stringMatching(/^[1-9][0-9]*$/),
      });
    }
  });

  it('takes the wait from the details, rounded up, never below one second', () => {
    expect(retryAfterSeconds({ retryAfterSeconds: 42 })).toBe(42);
    expect(retryAfterSeconds({ retryAfterSeconds: 0 })).toBe(1);
    expect(
      retryAfterSeconds({ lockedUntil: '2030-01-01T00:01:30.500Z' }, Date.parse('2030-01-01T00:00:00Z')),
    ).toBe(91);
    expect(retryAfterSeconds({ limit: 20, windowSeconds: 3600 })).toBe(3600);
    expect(retryAfterSeconds(undefined)).toBe(60);
  });

  it('sends no Retry-After with other errors', () => {
    expect(answer(new DomainError(ErrorCode.FORBIDDEN, 'no')).headers['retry-after']).toBeUndefined();
  });
});
