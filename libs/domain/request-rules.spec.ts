import { describe, expect, it } from '@jest/globals';
import { Role, type Actor } from './actor.js';
import { DomainError, ErrorCode } from './errors.js';
import {
  DEFAULT_ACTIVATION_WINDOW_SECONDS,
  DEFAULT_RECOVERY_COOLDOWN_SECONDS,
  type Policy,
} from './policy.js';
import {
  activationDeadline,
  activationWindowOf,
  applyDecision,
  approvableBy,
  canSee,
  checkConfirmation,
  checkFiling,
  checkNewRequest,
  checkReview,
  countQuorum,
  mayReview,
  extensionEnd,
  requestNotFound,
  whyNotCounted,
  withinRecoveryCooldown,
  type ExtendedRequest,
  type NewRequest,
  type Vote,
} from './request-rules.js';
import { EndReason, RequestState } from './request-state.js';

// The normalised model libs/policy loads from YAML: an approval-gated, a self-service and a break-glass entitlement.
const common = {
  connector: 'db',
  scope: {},
  eligible: ['devs'],
  requires: { justification: true, ticketPattern: null },
  approval: null,
  breakGlass: null,
  selfService: false,
  authenticator: { deviceBound: false, aaguids: null },
};
const policy: Policy = {
  groups: { devs: ['alice', 'frank'], leads: ['bob', 'dave', 'erin'], oncall: ['olga'] },
  connectors: { db: { type: 'postgres', urlEnv: 'DB_URL' } },
  entitlements: [
    {
      ...common,
      id: 'db-write',
      title: 'db-write',
      maxDurationSeconds: 3600,
      requires: { justification: true, ticketPattern: '^INC-[0-9]+$' },
      approval: {
        approvals: 2,
        approverGroups: ['leads'],
        pendingTtlSeconds: 3600,
        activationWindowSeconds: 600,
      },
    },
    { ...common, id: 'db-read', title: 'db-read', maxDurationSeconds: 900, selfService: true },
    {
      ...common,
      id: 'db-breakglass',
      title: 'db-breakglass',
      maxDurationSeconds: 1800,
      breakGlass: { notify: ['oncall'], postReviewWithinSeconds: 86_400 },
    },
  ],
};
const dbWrite = policy.entitlements.find((entitlement) => entitlement.id === 'db-write')!;
const dbRead = policy.entitlements.find((entitlement) => entitlement.id === 'db-read')!;

const HOUR = 3600 * 1000;
const NOW = new Date('2030-01-01T12:00:00.000Z');
const at = (ms: number) => new Date(NOW.getTime() + ms);

function actor(username: string, roles: Actor['roles'] = []): Actor {
  return { id: `id-${username}`, username, displayName: username, roles };
}

function vote(username: string, when: Date, overrides: Partial<Vote> = {}): Vote {
  return {
    approverId: `id-${username}`,
    username,
    decision: 'approve',
    active: true,
    at: when,
    recoveredAt: [],
    ...overrides,
  };
}

function expectRefused(outcome: unknown, code: ErrorCode): DomainError {
  expect(outcome).toBeInstanceOf(DomainError);
  const error = outcome as DomainError;
  expect(error.code).toBe(code);
  expect(error.message.length).toBeGreaterThan(0);
  return error;
}

describe('requestNotFound', () => {
  it('is a REQUEST_NOT_FOUND naming the id', () => {
    expect(expectRefused(requestNotFound('r-1'), ErrorCode.REQUEST_NOT_FOUND).message).toMatch(/r-1/);
  });
});

describe('withinRecoveryCooldown', () => {
  it('holds from the recovery until the cool-down has passed', () => {
    expect(withinRecoveryCooldown(NOW, [NOW], 3600)).toBe(true);
    expect(withinRecoveryCooldown(at(HOUR - 1), [NOW], 3600)).toBe(true);
    expect(withinRecoveryCooldown(at(HOUR), [NOW], 3600)).toBe(false);
    expect(withinRecoveryCooldown(at(-1), [NOW], 3600)).toBe(false);
    expect(withinRecoveryCooldown(at(1), [], 3600)).toBe(false);
  });

  it('looks at every recovery, not only the latest', () => {
    const two = [NOW, at(10 * HOUR)];
    expect(withinRecoveryCooldown(at(HOUR / 2), two, 3600)).toBe(true);
    expect(withinRecoveryCooldown(at(5 * HOUR), two, 3600)).toBe(false);
    expect(withinRecoveryCooldown(at(10.5 * HOUR), two, 3600)).toBe(true);
  });
});

describe('whyNotCounted', () => {
  const recovered = { recoveredAt: [NOW] };

  it('defaults the cool-down to 24 h when the policy sets none', () => {
    expect(DEFAULT_RECOVERY_COOLDOWN_SECONDS).toBe(24 * 3600);
    expect(whyNotCounted(vote('bob', at(23 * HOUR), recovered), dbWrite, policy)).toBe('recovery-cooldown');
    expect(whyNotCounted(vote('bob', at(24 * HOUR), recovered), dbWrite, policy)).toBeNull();
  });

  it('follows the policy setting settings.recoveryCooldown', () => {
    const short: Policy = { ...policy, settings: { recoveryCooldownSeconds: 3600 } };
    const entitlement = short.entitlements[0];
    expect(whyNotCounted(vote('bob', at(HOUR - 1), recovered), entitlement, short)).toBe('recovery-cooldown');
    expect(whyNotCounted(vote('bob', at(HOUR), recovered), entitlement, short)).toBeNull();
  });

  it('counts an approval made before the recovery (by the identity that held the account then)', () => {
    expect(whyNotCounted(vote('bob', at(-1), recovered), dbWrite, policy)).toBeNull();
  });

  it('gives every other reason a vote does not count', () => {
    expect(whyNotCounted(vote('dave', NOW, { decision: 'deny' }), dbWrite, policy)).toBe('not-an-approval');
    expect(whyNotCounted(vote('dave', NOW, { active: false }), dbWrite, policy)).toBe('inactive');
    expect(whyNotCounted(vote('alice', NOW), dbWrite, policy)).toBe('not-an-approver');
    expect(whyNotCounted(vote('dave', NOW), undefined, policy)).toBe('not-an-approver');
  });
});

describe('countQuorum', () => {
  it('counts the approvals of the others while a recovered approver is in the cool-down', () => {
    const votes = [vote('bob', at(1), { recoveredAt: [NOW] }), vote('dave', at(2)), vote('erin', at(3))];
    expect(countQuorum(votes, dbWrite, policy)).toBe(2);
    expect(
      countQuorum(
        votes.map((item) => ({ ...item, recoveredAt: [] })),
        dbWrite,
        policy,
      ),
    ).toBe(3);
    expect(countQuorum([vote('bob', at(1), { recoveredAt: [NOW] })], dbWrite, policy)).toBe(0);
  });

  it('counts neither denials, nor suspended approvers, nor people who no longer approve', () => {
    const votes = [
      vote('bob', NOW, { decision: 'deny' }),
      vote('dave', NOW, { active: false }),
      vote('alice', NOW),
      vote('erin', NOW),
    ];
    expect(countQuorum(votes, dbWrite, policy)).toBe(1);
    expect(countQuorum(votes, undefined, policy)).toBe(0);
    expect(countQuorum([], dbWrite, policy)).toBe(0);
  });
});

describe('approvableBy', () => {
  it('lists the entitlements the actor approves', () => {
    expect(approvableBy(policy, actor('bob'))).toEqual(['db-write']);
    expect(approvableBy(policy, actor('alice'))).toEqual([]);
  });
});

describe('who may see and review a request', () => {
  const ordinary = { requesterId: 'id-alice', entitlementId: 'db-write', breakGlass: false };
  const breakGlass = { requesterId: 'id-alice', entitlementId: 'db-breakglass', breakGlass: true };

  it('canSee: the requester, admins, auditors and current approvers', () => {
    expect(canSee(actor('alice'), ordinary, policy)).toBe(true);
    expect(canSee(actor('zed', [Role.ADMIN]), ordinary, policy)).toBe(true);
    expect(canSee(actor('zed', [Role.AUDITOR]), ordinary, policy)).toBe(true);
    expect(canSee(actor('bob'), ordinary, policy)).toBe(true);
    expect(canSee(actor('frank'), ordinary, policy)).toBe(false);
    expect(canSee(actor('olga'), ordinary, policy)).toBe(false);
  });

  it('canSee: a notified member sees a break-glass request; nobody but admins an unknown entitlement', () => {
    expect(canSee(actor('olga'), breakGlass, policy)).toBe(true);
    expect(canSee(actor('bob'), breakGlass, policy)).toBe(false);
    const gone = { ...ordinary, entitlementId: 'gone' };
    expect(canSee(actor('bob'), gone, policy)).toBe(false);
    expect(canSee(actor('zed', [Role.ADMIN]), gone, policy)).toBe(true);
  });

  it('mayReview: admins, auditors and members of a notified group', () => {
    expect(mayReview(actor('olga'), breakGlass, policy)).toBe(true);
    expect(mayReview(actor('zed', [Role.ADMIN]), ordinary, policy)).toBe(true);
    expect(mayReview(actor('zed', [Role.AUDITOR]), breakGlass, policy)).toBe(true);
    expect(mayReview(actor('bob'), breakGlass, policy)).toBe(false);
    expect(mayReview(actor('olga'), ordinary, policy)).toBe(false);
  });

  it('checkReview: accepts a reviewer of an unreviewed break-glass request', () => {
    expect(checkReview(actor('olga'), { ...breakGlass, reviewedAt: null }, policy)).toBeNull();
    expect(checkReview(actor('zed', [Role.AUDITOR]), { ...breakGlass, reviewedAt: null }, policy)).toBeNull();
  });

  it('checkReview: refuses what awaits no review, strangers and the requester', () => {
    const open = { ...breakGlass, reviewedAt: null };
    expectRefused(
      checkReview(actor('olga'), { ...ordinary, reviewedAt: null }, policy),
      ErrorCode.REVIEW_NOT_PENDING,
    );
    expectRefused(
      checkReview(actor('olga'), { ...breakGlass, reviewedAt: NOW }, policy),
      ErrorCode.REVIEW_NOT_PENDING,
    );
    expectRefused(checkReview(actor('bob'), open, policy), ErrorCode.FORBIDDEN);
    const selfReview = { ...open, requesterId: 'id-olga' };
    expectRefused(checkReview(actor('olga'), selfReview, policy), ErrorCode.SELF_APPROVAL);
  });
});

describe('checkNewRequest', () => {
  const alice = actor('alice');
  const valid: NewRequest = {
    entitlementId: 'db-write',
    durationSeconds: 1800,
    justification: 'fix the index',
    ticket: 'INC-42',
  };
  const ordinary = (input: Partial<NewRequest>) =>
    checkNewRequest(policy, alice, { ...valid, ...input }, { breakGlass: false });
  const breakGlass = (input: Partial<NewRequest>) =>
    checkNewRequest(
      policy,
      alice,
      { ...valid, entitlementId: 'db-breakglass', ...input },
      { breakGlass: true },
    );

  it('returns the entitlement of a request that meets every requirement', () => {
    expect(ordinary({})).toBe(dbWrite);
    expect(ordinary({ entitlementId: 'db-read', durationSeconds: 60, ticket: null })).toBe(dbRead);
    expect((breakGlass({ ticket: null }) as { id: string }).id).toBe('db-breakglass');
  });

  it('refuses an unknown entitlement, then a requester who is not eligible', () => {
    expectRefused(ordinary({ entitlementId: 'nope' }), ErrorCode.ENTITLEMENT_NOT_FOUND);
    expectRefused(
      checkNewRequest(policy, actor('bob'), valid, { breakGlass: false }),
      ErrorCode.NOT_ELIGIBLE,
    );
  });

  it('refuses a duration over the maximum, with the maximum', () => {
    const error = expectRefused(ordinary({ durationSeconds: 3601 }), ErrorCode.DURATION_TOO_LONG);
    expect(error.details).toEqual({ maxDurationSeconds: 3600 });
  });

  it('asks for a justification and a ticket matching the pattern where the entitlement requires them', () => {
    expectRefused(ordinary({ justification: '  ' }), ErrorCode.JUSTIFICATION_REQUIRED);
    expectRefused(ordinary({ ticket: null }), ErrorCode.TICKET_REQUIRED);
    const error = expectRefused(ordinary({ ticket: 'CHG-1' }), ErrorCode.TICKET_INVALID);
    expect(error.details).toEqual({ pattern: '^INC-[0-9]+$' });
  });

  it('sends break-glass through its own door, and nothing else through it', () => {
    expectRefused(ordinary({ entitlementId: 'db-breakglass' }), ErrorCode.STEP_UP_REQUIRED);
    expectRefused(breakGlass({ entitlementId: 'db-write' }), ErrorCode.VALIDATION_FAILED);
  });

  it('break-glass starts now, extends nothing, and is always justified', () => {
    expectRefused(breakGlass({ notBefore: at(HOUR) }), ErrorCode.VALIDATION_FAILED);
    expectRefused(breakGlass({ extendsRequestId: 'r-1' }), ErrorCode.VALIDATION_FAILED);
    expectRefused(breakGlass({ justification: ' ' }), ErrorCode.JUSTIFICATION_REQUIRED);
    expectRefused(breakGlass({ durationSeconds: 3600 }), ErrorCode.DURATION_TOO_LONG);
  });
});

describe('checkFiling', () => {
  const alice = actor('alice');
  const original: ExtendedRequest = {
    id: 'r-1',
    requesterId: alice.id,
    entitlementId: 'db-write',
    state: RequestState.ACTIVE,
    breakGlass: false,
    extendsRequestId: null,
    endsAt: at(HOUR),
  };
  const extension: NewRequest = {
    entitlementId: 'db-write',
    durationSeconds: 600,
    justification: 'more',
    extendsRequestId: 'r-1',
  };

  it('accepts a request starting now or later, and a valid extension', () => {
    expect(checkFiling(alice, { ...extension, extendsRequestId: null }, NOW, null)).toBeNull();
    expect(
      checkFiling(alice, { ...extension, extendsRequestId: null, notBefore: at(1) }, NOW, null),
    ).toBeNull();
    expect(checkFiling(alice, extension, NOW, original)).toBeNull();
  });

  it('refuses a scheduled start that is not in the future', () => {
    expectRefused(
      checkFiling(alice, { ...extension, notBefore: NOW }, NOW, original),
      ErrorCode.VALIDATION_FAILED,
    );
  });

  it('answers 404 for a missing original or someone else’s', () => {
    expectRefused(checkFiling(alice, extension, NOW, null), ErrorCode.REQUEST_NOT_FOUND);
    const others = { ...original, requesterId: 'id-frank' };
    expectRefused(checkFiling(alice, extension, NOW, others), ErrorCode.REQUEST_NOT_FOUND);
  });

  it('extends only an active, ordinary request that is not itself an extension', () => {
    for (const changed of [
      { state: RequestState.APPROVED },
      { breakGlass: true },
      { extendsRequestId: 'r-0' },
    ]) {
      expectRefused(
        checkFiling(alice, extension, NOW, { ...original, ...changed }),
        ErrorCode.NOT_EXTENDABLE,
      );
    }
  });

  it('extends for the same entitlement, and never on a schedule', () => {
    const otherEntitlement = { ...extension, entitlementId: 'db-read' };
    expectRefused(checkFiling(alice, otherEntitlement, NOW, original), ErrorCode.VALIDATION_FAILED);
    const scheduled = { ...extension, notBefore: at(1) };
    const error = expectRefused(checkFiling(alice, scheduled, NOW, original), ErrorCode.VALIDATION_FAILED);
    expect(error.message).toMatch(/scheduled/);
  });
});

describe('activationWindowOf and activationDeadline', () => {
  it('takes the entitlement’s activation window, else the default', () => {
    expect(activationWindowOf(dbWrite)).toBe(600);
    expect(activationWindowOf(dbRead)).toBe(DEFAULT_ACTIVATION_WINDOW_SECONDS);
    expect(activationWindowOf(undefined)).toBe(DEFAULT_ACTIVATION_WINDOW_SECONDS);
  });

  it('opens the window now, or at a scheduled start still ahead', () => {
    expect(activationDeadline(NOW, null, 600)).toEqual(at(600_000));
    expect(activationDeadline(NOW, at(HOUR), 600)).toEqual(at(HOUR + 600_000));
    expect(activationDeadline(NOW, at(-HOUR), 600)).toEqual(at(600_000));
    expect(activationDeadline(NOW, NOW, 600)).toEqual(at(600_000));
  });
});

describe('extensionEnd', () => {
  const limits = { durationSeconds: 1800, maxDurationSeconds: 3600 };
  const original = { state: RequestState.ACTIVE, endsAt: at(10 * 60 * 1000) };
  const ownEnd = at(1800 * 1000);

  it('continues from the original’s end without a gap', () => {
    expect(extensionEnd(original, limits, NOW, ownEnd)).toEqual(at((10 * 60 + 1800) * 1000));
  });

  it('never runs a credential longer than maxDuration from now, in whole seconds', () => {
    const late = { ...original, endsAt: at(50 * 60 * 1000) };
    expect(extensionEnd(late, limits, NOW, ownEnd)).toEqual(at(HOUR));
    const fractional = new Date(NOW.getTime() + 250);
    expect(extensionEnd(late, limits, fractional, ownEnd)).toEqual(at(HOUR));
  });

  it('never ends before the extension’s own end', () => {
    const soon = { ...original, endsAt: at(1000) };
    expect(extensionEnd(soon, limits, NOW, at(HOUR))).toEqual(at(HOUR));
  });

  it('refuses when the original is gone, no longer active or already over', () => {
    for (const gone of [
      null,
      { ...original, state: RequestState.REVOKED },
      { ...original, endsAt: null },
      { ...original, endsAt: NOW },
    ]) {
      expectRefused(extensionEnd(gone, limits, NOW, ownEnd), ErrorCode.NOT_EXTENDABLE);
    }
  });
});

describe('applyDecision', () => {
  const pending = {
    state: RequestState.PENDING,
    requesterId: 'id-alice',
    entitlementId: 'db-write',
    approvalsRequired: 2,
    pendingUntil: at(HOUR),
    notBefore: null,
  };
  const decided = (outcome: ReturnType<typeof applyDecision>) => {
    if (outcome instanceof DomainError) throw outcome;
    return outcome;
  };

  it('records a first approval below quorum without moving the request', () => {
    const outcome = decided(applyDecision(pending, vote('bob', NOW), [], policy));
    expect(outcome).toEqual({
      next: { state: RequestState.PENDING, changes: {} },
      approvals: 1,
      uncounted: null,
    });
  });

  it('approves at quorum, with the entitlement’s activation window from now or from a later start', () => {
    const outcome = decided(applyDecision(pending, vote('dave', NOW), [vote('bob', at(-1))], policy));
    expect(outcome.approvals).toBe(2);
    expect(outcome.next).toEqual({
      state: RequestState.APPROVED,
      changes: { decidedAt: NOW, activateBy: at(600_000) },
    });
    const scheduled = { ...pending, notBefore: at(HOUR) };
    const later = decided(applyDecision(scheduled, vote('dave', NOW), [vote('bob', at(-1))], policy));
    expect(later.next.changes.activateBy).toEqual(at(HOUR + 600_000));
  });

  it('records an approval in a recovery cool-down without counting it', () => {
    const recovered = vote('dave', NOW, { recoveredAt: [at(-1)] });
    const outcome = decided(applyDecision(pending, recovered, [vote('bob', at(-1))], policy));
    expect(outcome).toMatchObject({ approvals: 1, uncounted: 'recovery-cooldown' });
    expect(outcome.next.state).toBe(RequestState.PENDING);
  });

  it('does not count earlier approvals by suspended approvers or approvers no longer in the policy', () => {
    const earlier = [vote('bob', at(-2), { active: false }), vote('frank', at(-1))];
    const outcome = decided(applyDecision(pending, vote('dave', NOW), earlier, policy));
    expect(outcome.approvals).toBe(1);
    expect(outcome.next.state).toBe(RequestState.PENDING);
  });

  it('denies on any deny, ending the request', () => {
    const outcome = decided(applyDecision(pending, vote('bob', NOW, { decision: 'deny' }), [], policy));
    expect(outcome).toMatchObject({ approvals: 0, uncounted: 'not-an-approval' });
    expect(outcome.next).toEqual({
      state: RequestState.DENIED,
      changes: { decidedAt: NOW, activateBy: null, endedAt: NOW, endReason: EndReason.DENIED },
    });
  });

  it('refuses the requester, a non-approver, a second decision, and a finished request', () => {
    expectRefused(applyDecision(pending, vote('alice', NOW), [], policy), ErrorCode.SELF_APPROVAL);
    expectRefused(applyDecision(pending, vote('frank', NOW), [], policy), ErrorCode.NOT_AN_APPROVER);
    expectRefused(
      applyDecision(pending, vote('bob', NOW), [vote('bob', at(-1))], policy),
      ErrorCode.ALREADY_DECIDED,
    );
    const denied = { ...pending, state: RequestState.DENIED };
    expectRefused(applyDecision(denied, vote('bob', NOW), [], policy), ErrorCode.REQUEST_FINISHED);
  });
});

describe('checkConfirmation', () => {
  const expected = { userId: 'u-1', action: 'approve', subjectId: 'r-1', subjectDigest: 'digest' };

  it('accepts a step-up made by this actor, for this action, on this subject as it stands', () => {
    expect(checkConfirmation(expected, expected)).toBeNull();
  });

  it('refuses a step-up made by someone else, for another action or on another subject', () => {
    for (const changed of [{ userId: 'u-2' }, { action: 'deny' }, { subjectId: 'r-2' }]) {
      expectRefused(checkConfirmation({ ...expected, ...changed }, expected), ErrorCode.STEP_UP_INVALID);
    }
  });

  it('refuses a step-up on a request that changed since, when the call binds to the stored request', () => {
    const stale = { ...expected, subjectDigest: 'older' };
    expectRefused(checkConfirmation(stale, expected), ErrorCode.STEP_UP_SUBJECT_CHANGED);
    const unbound = { userId: 'u-1', action: 'break-glass', subjectId: 'db-breakglass' };
    expect(checkConfirmation({ ...unbound, subjectDigest: 'params' }, unbound)).toBeNull();
  });
});
