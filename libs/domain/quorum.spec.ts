import { describe, expect, it } from '@jest/globals';
import { DEFAULT_RECOVERY_COOLDOWN_SECONDS, parsePolicy, type Policy } from './policy.js';
import {
  countedApprovals,
  whyNotCounted,
  withinRecoveryCooldown,
  type QuorumContext,
  type QuorumVote,
} from './quorum.js';

const POLICY_TEXT = `groups:
  devs: [alice]
  leads: [bob, dave, erin]
connectors:
  db: { type: postgres, urlEnv: DB_URL }
entitlements:
  - id: db-write
    connector: db
    scope: {}
    eligible: [devs]
    maxDuration: 1h
    approval: { approvals: 2, approverGroups: [leads] }
`;
const LIMITS = { hardMaxDurationSeconds: 8 * 3600 };
const HOUR = 3600 * 1000;
const RECOVERED = new Date('2030-01-01T12:00:00.000Z');
const after = (ms: number) => new Date(RECOVERED.getTime() + ms);

function contextOf(policy: Policy, recoveries: QuorumContext['recoveries']): QuorumContext {
  return { policy, entitlement: policy.entitlements[0], recoveries };
}

function vote(username: string, at: Date, overrides: Partial<QuorumVote> = {}): QuorumVote {
  return { approverId: `id-${username}`, username, decision: 'approve', active: true, at, ...overrides };
}

describe('withinRecoveryCooldown', () => {
  const recoveries = [{ userId: 'id-bob', at: RECOVERED }];

  it('holds from the recovery until the cool-down has passed, for that user only', () => {
    expect(withinRecoveryCooldown('id-bob', RECOVERED, recoveries, 3600)).toBe(true);
    expect(withinRecoveryCooldown('id-bob', after(HOUR - 1), recoveries, 3600)).toBe(true);
    expect(withinRecoveryCooldown('id-bob', after(HOUR), recoveries, 3600)).toBe(false);
    expect(withinRecoveryCooldown('id-bob', after(-1), recoveries, 3600)).toBe(false);
    expect(withinRecoveryCooldown('id-dave', after(1), recoveries, 3600)).toBe(false);
    expect(withinRecoveryCooldown('id-bob', after(1), [], 3600)).toBe(false);
  });

  it('looks at every recovery of the user, not only the latest', () => {
    const two = [
      { userId: 'id-bob', at: RECOVERED },
      { userId: 'id-bob', at: after(10 * HOUR) },
    ];
    expect(withinRecoveryCooldown('id-bob', after(30 * 60 * 1000), two, 3600)).toBe(true);
    expect(withinRecoveryCooldown('id-bob', after(5 * HOUR), two, 3600)).toBe(false);
    expect(withinRecoveryCooldown('id-bob', after(10.5 * HOUR), two, 3600)).toBe(true);
  });
});

describe('quorum counting', () => {
  const policy = parsePolicy([{ name: 'p.yaml', text: POLICY_TEXT }], LIMITS);
  const recoveries = [{ userId: 'id-bob', at: RECOVERED }];
  const context = contextOf(policy, recoveries);

  it('defaults the cool-down to 24 h when the policy sets none', () => {
    expect(DEFAULT_RECOVERY_COOLDOWN_SECONDS).toBe(24 * 3600);
    expect(whyNotCounted(vote('bob', after(23 * HOUR)), context)).toBe('recovery-cooldown');
    expect(whyNotCounted(vote('bob', after(24 * HOUR)), context)).toBeNull();
  });

  it('follows the policy setting settings.recoveryCooldown', () => {
    const short = parsePolicy(
      [{ name: 'p.yaml', text: `${POLICY_TEXT}settings: { recoveryCooldown: 1h }\n` }],
      LIMITS,
    );
    expect(short.settings).toEqual({ recoveryCooldownSeconds: 3600 });
    expect(whyNotCounted(vote('bob', after(HOUR - 1)), contextOf(short, recoveries))).toBe(
      'recovery-cooldown',
    );
    expect(whyNotCounted(vote('bob', after(HOUR)), contextOf(short, recoveries))).toBeNull();
  });

  it('counts an approval made before the recovery (by the identity that held the account then)', () => {
    expect(whyNotCounted(vote('bob', after(-1)), context)).toBeNull();
  });

  it('gives every other reason a vote does not count', () => {
    expect(whyNotCounted(vote('dave', RECOVERED, { decision: 'deny' }), context)).toBe('not-an-approval');
    expect(whyNotCounted(vote('dave', RECOVERED, { active: false }), context)).toBe('inactive');
    expect(whyNotCounted(vote('alice', RECOVERED), context)).toBe('not-an-approver');
    expect(whyNotCounted(vote('dave', RECOVERED), { ...context, entitlement: undefined })).toBe(
      'not-an-approver',
    );
  });

  it('counts the approvals of the others while the recovered approver is in the cool-down', () => {
    const votes = [vote('bob', after(1)), vote('dave', after(2)), vote('erin', after(3))];
    expect(countedApprovals(votes, context)).toBe(2);
    expect(countedApprovals(votes, contextOf(policy, []))).toBe(3);
    expect(countedApprovals([vote('bob', after(1))], context)).toBe(0);
  });
});
