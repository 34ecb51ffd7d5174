import { describe, expect, it } from '@jest/globals';
import { DomainError, ErrorCode } from './errors.js';
import {
  EndReason,
  type EventContext,
  initialState,
  OPEN_STATES,
  type RequestEvent,
  RequestState,
  TERMINAL_STATES,
  transition as transitionWithChanges,
  WAITING_STATES,
} from './request-state.js';

const { PENDING, APPROVED, DENIED, ACTIVE, ENDED, REVOKED, CANCELLED, EXPIRED } = RequestState;

const REQUESTER = 'user-requester';
const APPROVER = 'user-approver';
const STRANGER = 'user-stranger';
const NOW = new Date('2030-01-01T12:00:00.000Z');
const at = (offsetMs: number): Date => new Date(NOW.getTime() + offsetMs);
const WINDOW_MS = 900_000;

// Most cases here are about the next state; the fields each transition sets have their own block below.
function transition<E extends RequestEvent>(
  state: RequestState,
  event: E,
  ctx: EventContext[E],
): RequestState | DomainError {
  const outcome = transitionWithChanges(state, event, ctx);
  return outcome instanceof DomainError ? outcome : outcome.state;
}

// A context for each event that passes every guard, so only the source state decides.
const allowed: { [E in RequestEvent]: EventContext[E] } = {
  approve: {
    actorId: APPROVER,
    requesterId: REQUESTER,
    actorIsApprover: true,
    actorAlreadyDecided: false,
    approvalsBefore: 0,
    approvalsRequired: 1,
    actorCounts: true,
    now: NOW,
    pendingUntil: at(1),
    activateBy: at(WINDOW_MS),
  },
  deny: {
    actorId: APPROVER,
    requesterId: REQUESTER,
    actorIsApprover: true,
    actorAlreadyDecided: false,
    now: NOW,
    pendingUntil: at(1),
  },
  activate: { actorId: REQUESTER, requesterId: REQUESTER, now: NOW, notBefore: null, activateBy: null },
  cancel: {
    actorId: REQUESTER,
    requesterId: REQUESTER,
    actorIsAdmin: false,
    now: NOW,
    endReason: EndReason.CANCELLED,
  },
  expire: { now: NOW, deadline: at(-1) },
  end: { now: NOW, notAfter: at(-1) },
  revoke: { actorId: null, requesterId: REQUESTER, actorIsApprover: false, actorIsAdmin: false, now: NOW },
};

function expectRefused(outcome: RequestState | DomainError, code: ErrorCode): DomainError {
  expect(outcome).toBeInstanceOf(DomainError);
  const error = outcome as DomainError;
  expect(error.code).toBe(code);
  expect(error.message.length).toBeGreaterThan(0);
  return error;
}

const FINISHED = ErrorCode.REQUEST_FINISHED;
const NOT_PENDING = ErrorCode.REQUEST_NOT_PENDING;
const NOT_APPROVED = ErrorCode.REQUEST_NOT_APPROVED;
const NOT_ACTIVE = ErrorCode.REQUEST_NOT_ACTIVE;

// Every state × every event, written out by hand: a RequestState is the next state, an ErrorCode the refusal.
const MATRIX: Record<RequestState, Record<RequestEvent, RequestState | ErrorCode>> = {
  [PENDING]: {
    approve: APPROVED,
    deny: DENIED,
    activate: NOT_APPROVED,
    cancel: CANCELLED,
    expire: EXPIRED,
    end: NOT_ACTIVE,
    revoke: NOT_ACTIVE,
  },
  [APPROVED]: {
    approve: NOT_PENDING,
    deny: NOT_PENDING,
    activate: ACTIVE,
    cancel: CANCELLED,
    expire: EXPIRED,
    end: NOT_ACTIVE,
    revoke: NOT_ACTIVE,
  },
  [ACTIVE]: {
    approve: NOT_PENDING,
    deny: NOT_PENDING,
    activate: NOT_APPROVED,
    cancel: NOT_PENDING,
    expire: NOT_PENDING,
    end: ENDED,
    revoke: REVOKED,
  },
  [DENIED]: allRefused(FINISHED),
  [ENDED]: allRefused(FINISHED),
  [REVOKED]: allRefused(FINISHED),
  [CANCELLED]: allRefused(FINISHED),
  [EXPIRED]: allRefused(FINISHED),
};

function allRefused(code: ErrorCode): Record<RequestEvent, ErrorCode> {
  return { approve: code, deny: code, activate: code, cancel: code, expire: code, end: code, revoke: code };
}

const isState = (value: RequestState | ErrorCode): value is RequestState =>
  (Object.values(RequestState) as string[]).includes(value);

const CASES = (Object.values(RequestState) as RequestState[]).flatMap((state) =>
  (Object.keys(allowed) as RequestEvent[]).map((event) => [state, event, MATRIX[state][event]] as const),
);

describe('transition: every (state, event) pair', () => {
  it('covers all 8 states × 7 events', () => {
    expect(CASES).toHaveLength(56);
  });

  it.each(CASES)('%s --%s--> %s', (state, event, expected) => {
    const outcome = transition(state, event, allowed[event]);
    if (isState(expected)) {
      expect(outcome).toBe(expected);
    } else {
      expectRefused(outcome, expected);
    }
  });
});

describe('TERMINAL_STATES', () => {
  it('holds exactly the states a request never leaves', () => {
    expect([...TERMINAL_STATES].sort()).toEqual([CANCELLED, DENIED, ENDED, EXPIRED, REVOKED].sort());
  });

  it('names the state in the refusal and its details', () => {
    const error = expectRefused(transition(REVOKED, 'end', allowed.end), FINISHED);
    expect(error.message).toMatch(/revoked/);
    expect(error.details).toEqual({ state: REVOKED });
  });
});

describe('state is checked before the actor', () => {
  it('a stranger approving an approved request hears that it is not pending', () => {
    const ctx = { ...allowed.approve, actorId: STRANGER, actorIsApprover: false };
    expectRefused(transition(APPROVED, 'approve', ctx), NOT_PENDING);
  });

  it('a stranger cancelling a cancelled request hears that it is finished', () => {
    expectRefused(transition(CANCELLED, 'cancel', { ...allowed.cancel, actorId: STRANGER }), FINISHED);
  });

  it('cancelling an active request says to revoke it instead', () => {
    const error = expectRefused(transition(ACTIVE, 'cancel', allowed.cancel), NOT_PENDING);
    expect(error.message).toMatch(/revoke/i);
  });
});

describe.each(['approve', 'deny'] as const)('%s: who may decide', (event) => {
  const success = event === 'approve' ? APPROVED : DENIED;

  it('refuses the requester deciding on their own request', () => {
    const ctx = { ...allowed[event], actorId: REQUESTER };
    expectRefused(transition(PENDING, event, ctx), ErrorCode.SELF_APPROVAL);
  });

  it('checks self-approval before approver membership', () => {
    const ctx = { ...allowed[event], actorId: REQUESTER, actorIsApprover: false, actorAlreadyDecided: true };
    expectRefused(transition(PENDING, event, ctx), ErrorCode.SELF_APPROVAL);
  });

  it('refuses someone who is not an approver', () => {
    const ctx = { ...allowed[event], actorId: STRANGER, actorIsApprover: false };
    expectRefused(transition(PENDING, event, ctx), ErrorCode.NOT_AN_APPROVER);
  });

  it('checks approver membership before an earlier decision', () => {
    const ctx = { ...allowed[event], actorId: STRANGER, actorIsApprover: false, actorAlreadyDecided: true };
    expectRefused(transition(PENDING, event, ctx), ErrorCode.NOT_AN_APPROVER);
  });

  it('refuses an approver who already decided', () => {
    const ctx = { ...allowed[event], actorAlreadyDecided: true };
    expectRefused(transition(PENDING, event, ctx), ErrorCode.ALREADY_DECIDED);
  });

  it('accepts an approver deciding for the first time', () => {
    expect(transition(PENDING, event, allowed[event])).toBe(success);
  });
});

describe('approve: quorum', () => {
  const approve = (approvalsBefore: number, approvalsRequired: number) =>
    transition(PENDING, 'approve', { ...allowed.approve, approvalsBefore, approvalsRequired });

  it('approves when this approval reaches the quorum', () => {
    expect(approve(0, 1)).toBe(APPROVED);
    expect(approve(1, 2)).toBe(APPROVED);
    expect(approve(2, 3)).toBe(APPROVED);
  });

  it('stays pending when this approval is recorded but the quorum is not reached', () => {
    expect(approve(0, 2)).toBe(PENDING);
    expect(approve(1, 3)).toBe(PENDING);
  });

  it('stays pending when this approval does not count (a recovery cool-down), whatever the quorum', () => {
    const uncounted = (approvalsBefore: number, approvalsRequired: number) =>
      transition(PENDING, 'approve', {
        ...allowed.approve,
        approvalsBefore,
        approvalsRequired,
        actorCounts: false,
      });
    expect(uncounted(0, 1)).toBe(PENDING);
    expect(uncounted(1, 2)).toBe(PENDING);
    expect(uncounted(2, 2)).toBe(APPROVED);
  });

  it('approves when earlier approvals already exceed the quorum (e.g. quorum lowered by a policy change)', () => {
    expect(approve(3, 2)).toBe(APPROVED);
  });

  it.each([0, -1, 1.5, Number.NaN])('refuses a quorum of %p as an invalid policy', (approvalsRequired) => {
    const error = expectRefused(approve(0, approvalsRequired), ErrorCode.POLICY_INVALID);
    expect(error.details).toEqual({ approvalsRequired });
  });
});

describe('activate', () => {
  const activate = (overrides: Partial<EventContext['activate']>) =>
    transition(APPROVED, 'activate', { ...allowed.activate, ...overrides });

  it('refuses anyone but the requester', () => {
    expectRefused(activate({ actorId: APPROVER }), ErrorCode.NOT_REQUESTER);
  });

  it('refuses before notBefore', () => {
    expectRefused(activate({ notBefore: at(1) }), ErrorCode.NOT_YET_STARTED);
  });

  it('activates at exactly notBefore and after it', () => {
    expect(activate({ notBefore: NOW })).toBe(ACTIVE);
    expect(activate({ notBefore: at(-1) })).toBe(ACTIVE);
  });

  it('activates just before activateBy', () => {
    expect(activate({ activateBy: at(1) })).toBe(ACTIVE);
  });

  it('refuses at exactly activateBy and after it', () => {
    expectRefused(activate({ activateBy: NOW }), ErrorCode.ACTIVATION_WINDOW_PASSED);
    expectRefused(activate({ activateBy: at(-1) }), ErrorCode.ACTIVATION_WINDOW_PASSED);
  });

  it('activates inside a scheduled window', () => {
    expect(activate({ notBefore: at(-1000), activateBy: at(1000) })).toBe(ACTIVE);
  });
});

describe('cancel', () => {
  const cancel = (state: RequestState, overrides: Partial<EventContext['cancel']>) =>
    transition(state, 'cancel', { ...allowed.cancel, ...overrides });

  it.each([PENDING, APPROVED])('lets the requester cancel a %s request', (state) => {
    expect(cancel(state, {})).toBe(CANCELLED);
  });

  it.each([PENDING, APPROVED])('lets an admin cancel a %s request', (state) => {
    expect(cancel(state, { actorId: STRANGER, actorIsAdmin: true })).toBe(CANCELLED);
  });

  it.each([PENDING, APPROVED])('lets the system cancel a %s request (suspension)', (state) => {
    expect(cancel(state, { actorId: null })).toBe(CANCELLED);
  });

  it.each([PENDING, APPROVED])('forbids anyone else to cancel a %s request', (state) => {
    expectRefused(cancel(state, { actorId: STRANGER }), ErrorCode.FORBIDDEN);
  });
});

describe('expire', () => {
  const expire = (state: RequestState, deadline: Date) => transition(state, 'expire', { now: NOW, deadline });

  it.each([PENDING, APPROVED])('does not expire a %s request before its deadline', (state) => {
    expectRefused(expire(state, at(1)), ErrorCode.NOT_YET_DUE);
  });

  it.each([PENDING, APPROVED])('expires a %s request at exactly its deadline', (state) => {
    expect(expire(state, NOW)).toBe(EXPIRED);
  });
});

describe('end', () => {
  const end = (notAfter: Date) => transition(ACTIVE, 'end', { now: NOW, notAfter });

  it('does not end a grant before notAfter', () => {
    expectRefused(end(at(1)), ErrorCode.NOT_YET_DUE);
  });

  it('ends a grant at exactly notAfter', () => {
    expect(end(NOW)).toBe(ENDED);
  });
});

describe('revoke', () => {
  const revoke = (overrides: Partial<EventContext['revoke']>) =>
    transition(ACTIVE, 'revoke', { ...allowed.revoke, ...overrides });

  it('lets the system revoke (actorId null, e.g. suspension)', () => {
    expect(revoke({ actorId: null })).toBe(REVOKED);
  });

  it('lets the requester revoke', () => {
    expect(revoke({ actorId: REQUESTER })).toBe(REVOKED);
  });

  it('lets an approver revoke', () => {
    expect(revoke({ actorId: APPROVER, actorIsApprover: true })).toBe(REVOKED);
  });

  it('lets an admin revoke', () => {
    expect(revoke({ actorId: STRANGER, actorIsAdmin: true })).toBe(REVOKED);
  });

  it('forbids a stranger to revoke', () => {
    expectRefused(revoke({ actorId: STRANGER }), ErrorCode.FORBIDDEN);
  });
});

describe('initialState', () => {
  it('starts an ordinary request pending', () => {
    expect(initialState({ breakGlass: false, selfService: false })).toBe(PENDING);
  });

  it('starts a self-service request approved', () => {
    expect(initialState({ breakGlass: false, selfService: true })).toBe(APPROVED);
  });

  it('starts a break-glass request active, whatever else it is', () => {
    expect(initialState({ breakGlass: true, selfService: false })).toBe(ACTIVE);
    expect(initialState({ breakGlass: true, selfService: true })).toBe(ACTIVE);
  });
});

describe('pending TTL', () => {
  for (const event of ['approve', 'deny'] as const) {
    it(`refuses ${event} at exactly pendingUntil and after it`, () => {
      for (const pendingUntil of [NOW, at(-1)]) {
        const refused = expectRefused(
          transition(RequestState.PENDING, event, { ...allowed[event], pendingUntil }),
          ErrorCode.REQUEST_EXPIRED,
        );
        expect(refused.details).toEqual({ pendingUntil: pendingUntil.toISOString() });
      }
    });

    it(`allows ${event} one millisecond before pendingUntil, or without a TTL`, () => {
      const expected = event === 'approve' ? RequestState.APPROVED : RequestState.DENIED;
      expect(transition(RequestState.PENDING, event, { ...allowed[event], pendingUntil: at(1) })).toBe(
        expected,
      );
      expect(transition(RequestState.PENDING, event, { ...allowed[event], pendingUntil: null })).toBe(
        expected,
      );
    });
  }
});

describe('OPEN_STATES and WAITING_STATES', () => {
  it('open: every state that holds or awaits access; waiting: the open ones before activation', () => {
    expect([...OPEN_STATES].sort()).toEqual([ACTIVE, APPROVED, PENDING]);
    expect([...WAITING_STATES].sort()).toEqual([APPROVED, PENDING]);
    for (const state of OPEN_STATES) expect(TERMINAL_STATES.has(state)).toBe(false);
  });
});

describe('the fields each transition sets', () => {
  const changesOf = <E extends RequestEvent>(state: RequestState, event: E, ctx: EventContext[E]) => {
    const outcome = transitionWithChanges(state, event, ctx);
    if (outcome instanceof DomainError) throw outcome;
    return outcome.changes;
  };
  it('approve at quorum: decided now, activatable until the deadline it was given', () => {
    expect(changesOf(PENDING, 'approve', allowed.approve)).toEqual({
      decidedAt: NOW,
      activateBy: at(WINDOW_MS),
    });
  });

  it('approve below quorum changes nothing', () => {
    expect(changesOf(PENDING, 'approve', { ...allowed.approve, approvalsRequired: 2 })).toEqual({});
  });

  it('deny: decided and ended now, reason denied, no activation deadline', () => {
    expect(changesOf(PENDING, 'deny', allowed.deny)).toEqual({
      decidedAt: NOW,
      activateBy: null,
      endedAt: NOW,
      endReason: EndReason.DENIED,
    });
  });

  it('activate: activated now', () => {
    expect(changesOf(APPROVED, 'activate', allowed.activate)).toEqual({ activatedAt: NOW });
  });

  it('cancel: ended now with the reason given (cancelled, or suspended by the system)', () => {
    expect(changesOf(PENDING, 'cancel', allowed.cancel)).toEqual({
      endedAt: NOW,
      endReason: EndReason.CANCELLED,
    });
    const system = { ...allowed.cancel, actorId: null, endReason: EndReason.SUSPENDED } as const;
    expect(changesOf(APPROVED, 'cancel', system)).toEqual({ endedAt: NOW, endReason: EndReason.SUSPENDED });
  });

  it('expire: the pending TTL for a pending request, the activation window for an approved one', () => {
    expect(changesOf(PENDING, 'expire', allowed.expire)).toEqual({
      endedAt: NOW,
      endReason: EndReason.PENDING_TTL,
    });
    expect(changesOf(APPROVED, 'expire', allowed.expire)).toEqual({
      endedAt: NOW,
      endReason: EndReason.ACTIVATION_WINDOW,
    });
  });

  it('end: ended now, reason expired', () => {
    expect(changesOf(ACTIVE, 'end', allowed.end)).toEqual({ endedAt: NOW, endReason: EndReason.EXPIRED });
  });

  it('revoke: ended now, reason revoked', () => {
    expect(changesOf(ACTIVE, 'revoke', allowed.revoke)).toEqual({
      endedAt: NOW,
      endReason: EndReason.REVOKED,
    });
  });
});
