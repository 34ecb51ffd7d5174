import { describe, expect, it } from '@jest/globals';
import { DomainError, ErrorCode } from '../domain/errors.js';
import { subjectDigest } from '../webauthn/step-up-binding.js';
import { paramsDigest } from './step-up.service.js';

describe('paramsDigest', () => {
  it('digests the call less stepUp, as the client sent it as JSON', () => {
    const params = {
      username: 'kate',
      roles: ['auditor'],
      displayName: undefined,
      stepUp: { challengeId: 'x' },
    };
    expect(paramsDigest(params)).toBe(subjectDigest({ username: 'kate', roles: ['auditor'] }));
  });

  it('digests a validated DTO instance by its fields, so `{}` for a body that is only the step-up', () => {
    class OnlyStepUp {
      stepUp?: unknown = undefined;
    }
    expect(paramsDigest({ ...new OnlyStepUp() })).toBe(subjectDigest({}));
  });

  it('refuses parameters without a JSON form as VALIDATION_FAILED', () => {
    let thrown: unknown;
    try {
      paramsDigest({ count: 1n });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(DomainError);
    expect((thrown as DomainError).code).toBe(ErrorCode.VALIDATION_FAILED);
  });
});
