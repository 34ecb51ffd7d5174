import { describe, expect, it } from '@jest/globals';
import { ErrorCode } from './errors.js';
import type { Policy } from './policy.js';
import {
  anotherAdminCanApprove,
  isIndependentOf,
  passkeyRemovalAllowed,
  privilegeReasons,
  recoveryNeedsSecondAdmin,
  secondAdminRefusal,
  type SecondAdminFacts,
} from './recovery-rules.js';

/** An approval-gated, a self-service and a break-glass entitlement, as libs/policy loads them. */
function policyWith(oncall: string[]): Policy {
  const common = {
    connector: 'db',
    scope: {},
    requires: { justification: true, ticketPattern: null },
    approval: null,
    breakGlass: null,
    selfService: false,
    authenticator: { deviceBound: false, aaguids: null },
  };
  return {
    groups: { devs: ['alice'], leads: ['bob', 'dave'], 'nobody-asks': ['zed'], oncall, readers: ['rita'] },
    connectors: { db: { type: 'postgres', urlEnv: 'DB_URL' } },
    entitlements: [
      {
        ...common,
        id: 'db-write',
        title: 'db-write',
        eligible: ['devs'],
        maxDurationSeconds: 3600,
        approval: {
          approvals: 1,
          approverGroups: ['leads'],
          pendingTtlSeconds: 3600,
          activationWindowSeconds: 900,
        },
      },
      {
        ...common,
        id: 'db-read',
        title: 'db-read',
        eligible: ['readers'],
        maxDurationSeconds: 900,
        selfService: true,
      },
      {
        ...common,
        id: 'db-breakglass',
        title: 'db-breakglass',
        eligible: ['oncall'],
        maxDurationSeconds: 1800,
        breakGlass: { notify: ['nobody-asks'], postReviewWithinSeconds: 86_400 },
      },
    ],
  };
}
const policy = policyWith(['olga']);

const HOUR = 3600 * 1000;
const NOW = new Date('2030-01-01T12:00:00.000Z');
const ago = (ms: number) => new Date(NOW.getTime() - ms);

describe('recoveryNeedsSecondAdmin: whose identity alone yields access', () => {
  it.each([
    ['an admin', { username: 'zed', roles: ['admin'] }, ['admin']],
    ['an approver', { username: 'bob', roles: [] }, ['approver']],
    ['a break-glass requester', { username: 'olga', roles: [] }, ['break-glass']],
    ['a self-service requester', { username: 'rita', roles: [] }, ['self-service']],
  ])('is true for %s', (_, user, reasons) => {
    expect(privilegeReasons(user, policy)).toEqual(reasons);
    expect(recoveryNeedsSecondAdmin(user, policy)).toBe(true);
  });

  it.each([
    ['a requester of approval-gated entitlements', { username: 'alice', roles: [] }],
    ['a member of a group only notified of break-glass', { username: 'zed', roles: [] }],
    ['an auditor', { username: 'nobody', roles: ['auditor'] }],
    ['a user the policy does not name', { username: 'nobody', roles: [] }],
  ])('is false for %s', (_, user) => {
    expect(privilegeReasons(user, policy)).toEqual([]);
    expect(recoveryNeedsSecondAdmin(user, policy)).toBe(false);
  });

  it('lists every reason, and none under an empty policy but the admin role', () => {
    const both = policyWith(['bob', 'olga', 'rita']);
    expect(privilegeReasons({ username: 'bob', roles: ['admin'] }, both)).toEqual([
      'admin',
      'approver',
      'break-glass',
    ]);
    const empty = { groups: {}, connectors: {}, entitlements: [] };
    expect(recoveryNeedsSecondAdmin({ username: 'bob', roles: [] }, empty)).toBe(false);
    expect(recoveryNeedsSecondAdmin({ username: 'bob', roles: ['admin'] }, empty)).toBe(true);
  });
});

describe('secondAdminRefusal: who may be the second admin', () => {
  const facts = (overrides: Partial<SecondAdminFacts> = {}): SecondAdminFacts => ({
    approverId: 'root',
    invite: { createdBy: 'admin', userId: 'bob' },
    approverFirstPasskeyAt: ago(48 * HOUR),
    approverLastRecoveredAt: null,
    approverEnrolledFrom: [{ createdBy: 'bootstrap', approvedBy: null }],
    now: NOW,
    recoveryCooldownSeconds: 24 * 3600,
    ...overrides,
  });

  it('lets an independent admin with an old passkey approve', () => {
    expect(secondAdminRefusal(facts())).toBeNull();
    expect(secondAdminRefusal(facts({ approverEnrolledFrom: [] }))).toBeNull();
  });

  it('refuses the creator and the user being recovered', () => {
    expect(secondAdminRefusal(facts({ approverId: 'admin' }))?.code).toBe(ErrorCode.INVITE_SELF_APPROVAL);
    expect(secondAdminRefusal(facts({ approverId: 'bob' }))?.code).toBe(ErrorCode.INVITE_SELF_APPROVAL);
  });

  it('refuses an admin enrolled or recovered from an invite the creator created or approved, however old', () => {
    for (const enrolledFrom of [
      [{ createdBy: 'admin', approvedBy: null }],
      [{ createdBy: 'someone', approvedBy: 'admin' }],
      [
        { createdBy: 'bootstrap', approvedBy: null },
        { createdBy: 'admin', approvedBy: 'other' },
      ],
    ]) {
      expect(secondAdminRefusal(facts({ approverEnrolledFrom: enrolledFrom }))?.code).toBe(
        ErrorCode.INVITE_APPROVER_NOT_INDEPENDENT,
      );
    }
  });

  it('refuses an admin whose first passkey or last recovery is within the cool-down, or who holds none', () => {
    const code = (overrides: Partial<SecondAdminFacts>) => secondAdminRefusal(facts(overrides))?.code;
    expect(code({ approverFirstPasskeyAt: ago(23 * HOUR) })).toBe(ErrorCode.SECOND_ADMIN_TOO_RECENT);
    expect(code({ approverFirstPasskeyAt: null })).toBe(ErrorCode.SECOND_ADMIN_TOO_RECENT);
    expect(code({ approverLastRecoveredAt: ago(23 * HOUR) })).toBe(ErrorCode.SECOND_ADMIN_TOO_RECENT);
    expect(code({ approverLastRecoveredAt: ago(25 * HOUR) })).toBeUndefined();
    expect(code({ approverFirstPasskeyAt: ago(2 * HOUR), recoveryCooldownSeconds: 3600 })).toBeUndefined();
  });
});

describe('anotherAdminCanApprove: whether a first invite of a privileged user waits for a second admin', () => {
  it('is true only when an admin other than the creator is independent of them', () => {
    const independent = { id: 'root', enrolledFrom: [{ createdBy: 'bootstrap', approvedBy: null }] };
    const puppet = { id: 'puppet', enrolledFrom: [{ createdBy: 'admin', approvedBy: 'root' }] };
    expect(anotherAdminCanApprove('admin', [])).toBe(false);
    expect(anotherAdminCanApprove('admin', [puppet])).toBe(false);
    expect(anotherAdminCanApprove('admin', [{ id: 'admin', enrolledFrom: [] }])).toBe(false);
    expect(anotherAdminCanApprove('admin', [puppet, independent])).toBe(true);
    expect(anotherAdminCanApprove('root', [puppet])).toBe(false);
  });
});

describe('isIndependentOf', () => {
  it('is false only when the creator created or approved one of the invites', () => {
    expect(isIndependentOf('a', [])).toBe(true);
    expect(isIndependentOf('a', [{ createdBy: 'b', approvedBy: 'c' }])).toBe(true);
    expect(isIndependentOf('a', [{ createdBy: 'a', approvedBy: null }])).toBe(false);
    expect(isIndependentOf('a', [{ createdBy: 'b', approvedBy: 'a' }])).toBe(false);
  });
});

describe('passkeyRemovalAllowed: the owner keeps the passkey that shows the recovery notice', () => {
  const allowed = (passkeyAge: number, recoveredAgo: number | null) =>
    passkeyRemovalAllowed({
      passkeyCreatedAt: ago(passkeyAge),
      lastRecoveredAt: recoveredAgo === null ? null : ago(recoveredAgo),
      now: NOW,
      recoveryCooldownSeconds: 24 * 3600,
    });

  it('refuses a passkey older than a recovery within the cool-down', () => {
    expect(allowed(48 * HOUR, HOUR)).toBe(false);
  });

  it('allows the passkey the recovery enrolled, later ones, and any after the cool-down or without recovery', () => {
    expect(allowed(HOUR, HOUR)).toBe(true);
    expect(allowed(HOUR / 2, HOUR)).toBe(true);
    expect(allowed(48 * HOUR, 25 * HOUR)).toBe(true);
    expect(allowed(48 * HOUR, null)).toBe(true);
  });
});
