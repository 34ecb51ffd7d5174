import { describe, expect, it } from '@jest/globals';
import { ApiError } from './api';
import { requestProblem } from './form-problems';

const NOW = Date.parse('2026-12-04T10:00:00.000Z');
const readOnly = {
  title: 'Demo database, read-only',
  maxDurationSeconds: 3600,
  requires: {
    justification: true,
    ticketPattern: '^(INC|CHG)-[0-9]+$',
    ticketHint: 'an incident or change number, like INC-1234',
  },
};
const refused = (code: string, message: string, details?: unknown) =>
  requestProblem(new ApiError(422, code, message, details), readOnly, NOW);

describe('requestProblem: a refused request in words, next to its field', () => {
  it('puts ticket problems on the ticket field in the policy’s words, never the pattern or the code', () => {
    const problem = refused('TICKET_INVALID', 'The ticket must match ^(INC|CHG)-[0-9]+$', {
      pattern: '^(INC|CHG)-[0-9]+$',
    });
    expect(problem).toEqual({
      field: 'ticket',
      message: 'This is not an incident or change number, like INC-1234.',
    });
    const withoutHint = requestProblem(
      new ApiError(422, 'TICKET_INVALID', 'The ticket must match ^X$'),
      { ...readOnly, requires: { justification: true, ticketPattern: '^X$' } },
      NOW,
    );
    expect(withoutHint.message).not.toMatch(/\^|\$|TICKET_INVALID/);
    expect(refused('TICKET_REQUIRED', '"demo-db-read" requires a ticket').field).toBe('ticket');
  });

  it('names the field of each other refusal', () => {
    expect(refused('DURATION_TOO_LONG', 'at most 3600 seconds')).toEqual({
      field: 'minutes',
      message: 'Demo database, read-only lasts at most 1 h.',
    });
    expect(refused('JUSTIFICATION_REQUIRED', 'A justification is required').field).toBe('justification');
    expect(refused('OPEN_REQUEST_EXISTS', 'You already hold or await "demo-db-read"').field).toBe(
      'entitlement',
    );
    const invalid = refused('VALIDATION_FAILED', 'Invalid input: sshPublicKey: …', [
      { field: 'sshPublicKey', problems: ['sshPublicKey must be one OpenSSH public key line'] },
    ]);
    expect(invalid.field).toBe('sshPublicKey');
    expect(invalid.message).not.toContain('sshPublicKey');
    expect(
      refused('VALIDATION_FAILED', 'notBefore must be in the future', [{ field: 'notBefore' }]).field,
    ).toBe('startAt');
  });

  it('turns a cool-down into a moment to count down to', () => {
    const problem = refused('DENIAL_COOLDOWN', 'wait 90 s', { retryAfterSeconds: 90 });
    expect(problem).toMatchObject({ field: 'entitlement', retryAt: NOW + 90_000 });
    expect(problem.message).not.toContain('DENIAL_COOLDOWN');
  });

  it('leaves anything else to the form as a whole, in the broker’s sentence', () => {
    expect(refused('TOO_MANY_OPEN_REQUESTS', 'You already have 5 open requests (at most 5)')).toEqual({
      field: null,
      message: 'You already have 5 open requests (at most 5)',
    });
    expect(requestProblem(new Error('offline'), readOnly, NOW)).toEqual({ field: null, message: 'offline' });
  });
});
