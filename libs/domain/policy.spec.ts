import { describe, expect, it } from '@jest/globals';
import {
  approvesAnything,
  BREAK_GLASS_MAX_SECONDS,
  DEFAULT_RECOVERY_COOLDOWN_SECONDS,
  findEntitlement,
  groupsOf,
  isApprover,
  isEligible,
  membersOf,
  policyHash,
  recoveryCooldownSeconds,
  SELF_SERVICE_MAX_SECONDS,
  subjectMatches,
  USERNAME_PATTERN,
  workloadUsername,
  type Entitlement,
  type Policy,
} from './policy.js';

// The normalised model as libs/policy loads it (the YAML side is tested there).
const entitlement = (id: string, fields: Partial<Entitlement>): Entitlement => ({
  id,
  title: id,
  connector: 'db',
  scope: { grantRoles: ['app_write'] },
  eligible: ['engineers'],
  maxDurationSeconds: 3600,
  requires: { justification: true, ticketPattern: null },
  approval: null,
  breakGlass: null,
  selfService: false,
  authenticator: { deviceBound: false, aaguids: null },
  ...fields,
});
const approval = {
  approvals: 2,
  approverGroups: ['approvers'],
  pendingTtlSeconds: 3600,
  activationWindowSeconds: 900,
};
const POLICY: Policy = {
  groups: {
    approvers: ['admin', 'bob', 'dave'],
    engineers: ['admin', 'alice', 'carol'],
    oncall: ['admin', 'alice'],
  },
  connectors: { db: { type: 'postgres', urlEnv: 'DB_URL' } },
  entitlements: [
    entitlement('db-write', { approval }),
    entitlement('db-breakglass', {
      eligible: ['oncall'],
      breakGlass: { notify: ['approvers'], postReviewWithinSeconds: 86_400 },
    }),
  ],
};
const write = findEntitlement(POLICY, 'db-write')!;
const breakGlass = findEntitlement(POLICY, 'db-breakglass')!;

describe('policy lookups', () => {
  it('findEntitlement finds by id, and nothing for an unknown id', () => {
    expect(write.approval).toEqual(approval);
    expect(findEntitlement(POLICY, 'no-such-thing')).toBeUndefined();
  });

  it('groupsOf lists a user’s groups, sorted', () => {
    expect(groupsOf(POLICY, 'admin')).toEqual(['approvers', 'engineers', 'oncall']);
    expect(groupsOf(POLICY, 'alice')).toEqual(['engineers', 'oncall']);
    expect(groupsOf(POLICY, 'bob')).toEqual(['approvers']);
    expect(groupsOf(POLICY, 'mallory')).toEqual([]);
  });

  it('membersOf knows only the policy’s own groups, not Object.prototype’s', () => {
    expect(membersOf(POLICY, 'oncall')).toEqual(['admin', 'alice']);
    expect(membersOf(POLICY, 'constructor')).toEqual([]);
    expect(membersOf(POLICY, 'nobody')).toEqual([]);
  });

  it('isEligible follows the eligible groups', () => {
    expect(isEligible(POLICY, write, 'alice')).toBe(true);
    expect(isEligible(POLICY, write, 'carol')).toBe(true);
    expect(isEligible(POLICY, write, 'bob')).toBe(false);
    expect(isEligible(POLICY, breakGlass, 'alice')).toBe(true);
    expect(isEligible(POLICY, breakGlass, 'carol')).toBe(false);
  });

  it('isApprover follows the approver groups, and nobody approves break-glass', () => {
    expect(isApprover(POLICY, write, 'bob')).toBe(true);
    expect(isApprover(POLICY, write, 'admin')).toBe(true);
    expect(isApprover(POLICY, write, 'alice')).toBe(false);
    expect(isApprover(POLICY, breakGlass, 'bob')).toBe(false);
  });

  it('approvesAnything: a member of any approver group of any entitlement', () => {
    expect(approvesAnything(POLICY, 'dave')).toBe(true);
    expect(approvesAnything(POLICY, 'alice')).toBe(false);
    expect(approvesAnything(POLICY, 'mallory')).toBe(false);
  });
});

describe('policy settings and caps', () => {
  it('recoveryCooldownSeconds: the setting, else 24 h', () => {
    expect(recoveryCooldownSeconds(POLICY)).toBe(DEFAULT_RECOVERY_COOLDOWN_SECONDS);
    expect(DEFAULT_RECOVERY_COOLDOWN_SECONDS).toBe(24 * 3600);
    expect(recoveryCooldownSeconds({ ...POLICY, settings: { recoveryCooldownSeconds: 7200 } })).toBe(7200);
  });

  it('caps self-service and break-glass grants at one hour', () => {
    expect(SELF_SERVICE_MAX_SECONDS).toBe(3600);
    expect(BREAK_GLASS_MAX_SECONDS).toBe(3600);
  });
});

describe('policyHash', () => {
  it('is 64 hex characters, the same after a JSON round trip (how a stored version is read back)', () => {
    expect(policyHash(POLICY)).toMatch(/^[0-9a-f]{64}$/);
    expect(policyHash(JSON.parse(JSON.stringify(POLICY)) as Policy)).toBe(policyHash(POLICY));
  });

  it('ignores key order but not values', () => {
    const reordered: Policy = {
      entitlements: POLICY.entitlements,
      connectors: POLICY.connectors,
      groups: POLICY.groups,
    };
    expect(policyHash(reordered)).toBe(policyHash(POLICY));
    const shorter = { ...POLICY, entitlements: [{ ...write, maxDurationSeconds: 1800 }, breakGlass] };
    expect(policyHash(shorter)).not.toBe(policyHash(POLICY));
  });
});

describe("subjectMatches (a workload token's sub against its pattern)", () => {
  const BRANCH = 'repo:org/app:ref:refs/heads/*';

  it('* matches within one ":"-separated part', () => {
    expect(subjectMatches(BRANCH, 'repo:org/app:ref:refs/heads/main')).toBe(true);
    expect(subjectMatches(BRANCH, 'repo:org/app:ref:refs/heads/feature/x')).toBe(true);
    expect(subjectMatches(BRANCH, 'repo:org/app:ref:refs/heads/a:b')).toBe(false);
    expect(subjectMatches(BRANCH, 'repo:org/other:ref:refs/heads/main')).toBe(false);
    expect(subjectMatches(BRANCH, 'repo:org/app:ref:refs/tags/v1')).toBe(false);
  });

  it('** matches across parts', () => {
    expect(subjectMatches('repo:org/app:**', 'repo:org/app:ref:refs/heads/main')).toBe(true);
    expect(subjectMatches('repo:org/app:**', 'repo:org/app:environment:prod')).toBe(true);
    expect(subjectMatches('repo:org/app:**', 'repo:org/application:ref:refs/heads/main')).toBe(false);
  });

  it('matches the whole sub, not a part of it', () => {
    expect(subjectMatches('repo:org/app', 'repo:org/app')).toBe(true);
    expect(subjectMatches('repo:org/app', 'xrepo:org/app')).toBe(false);
    expect(subjectMatches('repo:org/app', 'repo:org/app:ref:main')).toBe(false);
    expect(subjectMatches(BRANCH, 'repo:org/app:ref:refs/heads/main\nrepo:org/other')).toBe(false);
  });

  it('takes regular expression metacharacters in the pattern literally', () => {
    expect(subjectMatches('repo:org/a.p:ref', 'repo:org/a.p:ref')).toBe(true);
    expect(subjectMatches('repo:org/a.p:ref', 'repo:org/axp:ref')).toBe(false);
    expect(subjectMatches('a+b(c)|d', 'a+b(c)|d')).toBe(true);
    expect(subjectMatches('a+b(c)|d', 'd')).toBe(false);
    expect(subjectMatches('[ab]?$^{1}\\', '[ab]?$^{1}\\')).toBe(true);
    expect(subjectMatches('[ab]', 'a')).toBe(false);
  });
});

describe('workloadUsername', () => {
  it('holds a ":", which a person\'s username cannot', () => {
    expect(workloadUsername('deploy-bot')).toBe('workload:deploy-bot');
    expect(USERNAME_PATTERN.test(workloadUsername('deploy-bot'))).toBe(false);
  });
});
