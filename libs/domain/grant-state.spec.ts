import { describe, expect, it } from '@jest/globals';
import { failedRevocation, GrantState, LAST_ERROR_MAX_LENGTH, publicRevokeError } from './grant-state.js';

const retryAt = new Date('2026-12-04T09:00:02.000Z');

describe('failedRevocation', () => {
  it('counts the attempt, keeps the error and the next retry; the grant is REVOKING', () => {
    expect(failedRevocation({ state: GrantState.REVOKING, revokeAttempts: 0 }, 'refused', retryAt)).toEqual({
      state: GrantState.REVOKING,
      revokeAttempts: 1,
      lastError: 'refused',
      nextRetryAt: retryAt,
      alert: false,
    });
  });

  it('turns a grant still marked ACTIVE (due before this version) REVOKING', () => {
    expect(failedRevocation({ state: GrantState.ACTIVE, revokeAttempts: 0 }, 'x', retryAt).state).toBe(
      GrantState.REVOKING,
    );
  });

  it('turns the grant REVOKE_FAILED with an alert after the last attempt of its job', () => {
    for (const state of [GrantState.REVOKING, GrantState.ACTIVE]) {
      expect(failedRevocation({ state, revokeAttempts: 7 }, 'refused', null)).toEqual({
        state: GrantState.REVOKE_FAILED,
        revokeAttempts: 8,
        lastError: 'refused',
        nextRetryAt: null,
        alert: true,
      });
    }
  });

  it('keeps a REVOKE_FAILED grant so while the sweep retries it, alerting only once', () => {
    const failed = { state: GrantState.REVOKE_FAILED, revokeAttempts: 8 };
    const retried = failedRevocation(failed, 'still refused', retryAt);
    expect(retried).toMatchObject({ state: GrantState.REVOKE_FAILED, revokeAttempts: 9, alert: false });
    expect(retried.nextRetryAt).toEqual(retryAt);
    expect(failedRevocation(failed, 'still refused', null)).toMatchObject({
      state: GrantState.REVOKE_FAILED,
      alert: false,
    });
  });

  it('bounds the stored error', () => {
    const attempt = failedRevocation(
      { state: GrantState.REVOKING, revokeAttempts: 0 },
      'x'.repeat(3000),
      null,
    );
    expect(attempt.lastError).toHaveLength(LAST_ERROR_MAX_LENGTH);
  });
});

describe('publicRevokeError', () => {
  it('shows a failure the webhook connector worded itself', () => {
    for (const message of [
      'Webhook "ticketing" answered 503 to revoke',
      'Webhook "ticketing" did not answer within 5000 ms to revoke',
      'Webhook "ticketing" could not be reached to revoke',
    ]) {
      expect(publicRevokeError(message)).toBe(message);
    }
  });

  it('replaces anything else with one fixed sentence (no host, class name or stack)', () => {
    const generic = publicRevokeError('x');
    expect(generic).toMatch(/did not confirm the revocation/);
    for (const message of [
      'Error: connect ECONNREFUSED 10.0.3.7:5432',
      'DatabaseError: role "jit_ab12" does not exist\n    at PostgresConnector.revoke (postgres.connector.ts:140)',
      'Webhook "ticketing" could not be reached to revoke\n    at WebhookConnector.deliver',
      'TypeError: fetch failed',
    ]) {
      expect(publicRevokeError(message)).toBe(generic);
    }
  });

  it('is null when there was no failure', () => {
    expect(publicRevokeError(null)).toBeNull();
  });
});
