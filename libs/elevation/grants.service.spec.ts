import 'reflect-metadata';
import { describe, expect, it } from '@jest/globals';
import { revocationDueAt, revokedEventData } from './grants.service.js';

const notAfter = new Date('2026-12-04T09:00:00.000Z');
const grant = {
  connector: 'api',
  externalRef: 'jti-1',
  notAfter,
  revokeRequestedAt: null as Date | null,
  revokeReason: null as string | null,
  revokeAttempts: 0,
};

describe('revocationDueAt', () => {
  it('is notAfter when no early revoke was asked', () => {
    expect(revocationDueAt(grant)).toEqual(notAfter);
  });

  it('is the early revoke when it came before notAfter', () => {
    const requested = new Date('2026-12-04T08:30:00.000Z');
    expect(revocationDueAt({ ...grant, revokeRequestedAt: requested })).toEqual(requested);
  });

  it('stays notAfter when the early revoke came after it (an expired grant revoked late)', () => {
    const requested = new Date('2026-12-04T09:05:00.000Z');
    expect(revocationDueAt({ ...grant, revokeRequestedAt: requested })).toEqual(notAfter);
  });
});

describe('revokedEventData', () => {
  it('records an expiry with the lag from notAfter and the attempt that succeeded', () => {
    const now = new Date('2026-12-04T09:00:01.250Z');
    expect(revokedEventData({ ...grant, revokeAttempts: 2 }, now, {})).toEqual({
      reason: 'expired',
      connector: 'api',
      externalRef: 'jti-1',
      notAfter: '2026-12-04T09:00:00.000Z',
      revokedAt: '2026-12-04T09:00:01.250Z',
      lagMs: 1250,
      attempts: 3,
    });
  });

  it('records an early revoke with its reason, lag from the request, and who still holds the state', () => {
    const requested = new Date('2026-12-04T08:30:00.000Z');
    const now = new Date('2026-12-04T08:30:00.400Z');
    const early = { ...grant, revokeRequestedAt: requested, revokeReason: 'done early' };
    const held = { externalRevokeSkipped: true as const, heldBy: 'grant-2' };
    expect(revokedEventData(early, now, held)).toMatchObject({
      reason: 'done early',
      lagMs: 400,
      externalRevokeSkipped: true,
      heldBy: 'grant-2',
    });
    expect(revokedEventData({ ...early, revokeReason: null }, now, {}).reason).toBe('revoked');
  });
});
