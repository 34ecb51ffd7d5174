import { describe, expect, it } from '@jest/globals';
import type { ArgumentsHost } from '@nestjs/common';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';
import {
  ErrorEnvelopeFilter,
  isUnavailableError,
  retryAfterSeconds,
  STATUS_OF,
} from './error-envelope.filter.js';

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

describe('ErrorEnvelopeFilter: PostgreSQL or Redis unreachable', () => {
  /** What pg, TypeORM and ioredis throw when their server is stopped or restarting. */
  const outages: Array<[string, unknown]> = [
    [
      'connection refused',
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
    ],
    ['pg: terminated', new Error('Connection terminated unexpectedly')],
    [
      'pg: admin shutdown',
      Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }),
    ],
    ['pg: starting up', Object.assign(new Error('the database system is starting up'), { code: '57P03' })],
    ['TypeORM wrapper', Object.assign(new Error('Query failed'), { driverError: { code: '57P01' } })],
    [
      'TypeORM: connection lost mid-transaction',
      Object.assign(new Error('Database connection provided by a query runner was already released'), {
        name: 'QueryRunnerProviderAlreadyReleasedError',
      }),
    ],
    [
      'TypeORM: runner released before commit',
      Object.assign(new Error('Query runner already released'), { name: 'QueryRunnerAlreadyReleasedError' }),
    ],
    ['ioredis offline', new Error("Stream isn't writeable and enableOfflineQueue options is false")],
    ['wrapped cause', new Error('enqueue failed', { cause: new Error('Connection is closed.') })],
  ];

  it.each(outages)('answers 503 SERVICE_UNAVAILABLE with Retry-After (%s)', (_, error) => {
    expect(isUnavailableError(error)).toBe(true);
    const written = answer(error);
    expect(written.status).toBe(503);
    expect(written.body).toEqual({ error: { code: 'SERVICE_UNAVAILABLE', message: expect.any(String) } });
    expect(written.headers['retry-after']).toBe('5');
  });

  it('keeps 500 for other unexpected errors', () => {
    expect(answer(new TypeError('x is undefined')).status).toBe(500);
    expect(answer(Object.assign(new Error('duplicate key'), { code: '23505' })).status).toBe(500);
  });
});
