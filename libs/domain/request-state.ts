import { DomainError, ErrorCode } from './errors.js';
import { EndReason, RequestState, TERMINAL_STATES } from './request-enums.js';

// The vocabulary moved to request-enums.ts (request-rules.ts reads it too); importers keep this path.
export {
  Decision,
  EndReason,
  OPEN_STATES,
  RequestState,
  TERMINAL_STATES,
  WAITING_STATES,
} from './request-enums.js';

/** What a transition sets besides the state. */
export interface RequestChanges {
  decidedAt?: Date;
  activateBy?: Date | null;
  activatedAt?: Date;
  endedAt?: Date;
  endReason?: EndReason;
}

/** An accepted event: the next state and the fields that change with it. */
export interface Transition {
  state: RequestState;
  changes: RequestChanges;
}

/** Everything that can happen to a request after it is created. */
export type RequestEvent = 'approve' | 'deny' | 'activate' | 'cancel' | 'expire' | 'end' | 'revoke';

/** The facts each event's guards need, gathered by the caller (the pure core looks nothing up). */
export interface EventContext {
  approve: {
    actorId: string;
    requesterId: string;
    actorIsApprover: boolean;
    actorAlreadyDecided: boolean;
    approvalsBefore: number;
    approvalsRequired: number;
    /** Whether this approval counts toward quorum (request-rules.ts: not, e.g., within a recovery cool-down). */
    actorCounts: boolean;
    now: Date;
    /** The pending TTL: no decision at or after it. */
    pendingUntil: Date | null;
    /** When the activation window closes if this approval reaches quorum (request-rules activationDeadline). */
    activateBy: Date;
  };
  deny: {
    actorId: string;
    requesterId: string;
    actorIsApprover: boolean;
    actorAlreadyDecided: boolean;
    now: Date;
    pendingUntil: Date | null;
  };
  activate: {
    actorId: string;
    requesterId: string;
    now: Date;
    notBefore: Date | null;
    activateBy: Date | null;
  };
  /** actorId null means the system (the requester was suspended, or the request extended was revoked). */
  cancel: {
    actorId: string | null;
    requesterId: string;
    actorIsAdmin: boolean;
    now: Date;
    endReason: EndReason.CANCELLED | EndReason.SUSPENDED;
  };
  expire: { now: Date; deadline: Date };
  end: { now: Date; notAfter: Date };
  /** actorId null means the system (e.g. the requester was suspended). */
  revoke: {
    actorId: string | null;
    requesterId: string;
    actorIsApprover: boolean;
    actorIsAdmin: boolean;
    now: Date;
  };
}

type Outcome = Transition | DomainError;

// Which non-terminal states accept each event, and what a non-terminal state outside that set is told.
const SOURCES: { [E in RequestEvent]: { from: readonly RequestState[]; code: ErrorCode; message: string } } =
  {
    approve: {
      from: [RequestState.PENDING],
      code: ErrorCode.REQUEST_NOT_PENDING,
      message: 'Only a pending request can be approved.',
    },
    deny: {
      from: [RequestState.PENDING],
      code: ErrorCode.REQUEST_NOT_PENDING,
      message: 'Only a pending request can be denied.',
    },
    activate: {
      from: [RequestState.APPROVED],
      code: ErrorCode.REQUEST_NOT_APPROVED,
      message: 'Only an approved request can be activated.',
    },
    cancel: {
      from: [RequestState.PENDING, RequestState.APPROVED],
      code: ErrorCode.REQUEST_NOT_PENDING,
      message: 'This request is active: revoke it instead of cancelling it.',
    },
    expire: {
      from: [RequestState.PENDING, RequestState.APPROVED],
      code: ErrorCode.REQUEST_NOT_PENDING,
      message: 'An active request ends or is revoked; it does not expire.',
    },
    end: {
      from: [RequestState.ACTIVE],
      code: ErrorCode.REQUEST_NOT_ACTIVE,
      message: 'Only an active request can end.',
    },
    revoke: {
      from: [RequestState.ACTIVE],
      code: ErrorCode.REQUEST_NOT_ACTIVE,
      message: 'Only an active request can be revoked.',
    },
  };

// Shared by approve and deny: who may decide (DESIGN.md §4 invariant 3).
function refuseDecider(ctx: EventContext['deny']): DomainError | null {
  if (ctx.actorId === ctx.requesterId) {
    return new DomainError(ErrorCode.SELF_APPROVAL, 'You cannot decide on your own request.');
  }
  if (!ctx.actorIsApprover) {
    return new DomainError(ErrorCode.NOT_AN_APPROVER, 'You are not an approver for this entitlement.');
  }
  if (ctx.actorAlreadyDecided) {
    return new DomainError(ErrorCode.ALREADY_DECIDED, 'You have already decided on this request.');
  }
  if (ctx.pendingUntil && ctx.now.getTime() >= ctx.pendingUntil.getTime()) {
    return new DomainError(ErrorCode.REQUEST_EXPIRED, 'This request expired before it was decided.', {
      pendingUntil: ctx.pendingUntil.toISOString(),
    });
  }
  return null;
}

const ended = (state: RequestState, now: Date, endReason: EndReason): Transition => ({
  state,
  changes: { endedAt: now, endReason },
});

// Guards run only once the source state is known to accept the event; `from` is that source state.
const GUARDS: { [E in RequestEvent]: (ctx: EventContext[E], from: RequestState) => Outcome } = {
  approve(ctx) {
    const refusal = refuseDecider(ctx);
    if (refusal) return refusal;
    if (!Number.isInteger(ctx.approvalsRequired) || ctx.approvalsRequired < 1) {
      return new DomainError(
        ErrorCode.POLICY_INVALID,
        'An approved entitlement must require at least one approval.',
        {
          approvalsRequired: ctx.approvalsRequired,
        },
      );
    }
    // Below quorum the approval is still recorded; the request just stays pending.
    const approvals = ctx.approvalsBefore + (ctx.actorCounts ? 1 : 0);
    if (approvals < ctx.approvalsRequired) return { state: RequestState.PENDING, changes: {} };
    return { state: RequestState.APPROVED, changes: { decidedAt: ctx.now, activateBy: ctx.activateBy } };
  },
  deny(ctx) {
    const refusal = refuseDecider(ctx);
    if (refusal) return refusal;
    const { now } = ctx;
    return {
      state: RequestState.DENIED,
      changes: { decidedAt: now, activateBy: null, endedAt: now, endReason: EndReason.DENIED },
    };
  },
  activate(ctx) {
    if (ctx.actorId !== ctx.requesterId) {
      return new DomainError(ErrorCode.NOT_REQUESTER, 'Only the requester can activate this request.');
    }
    if (ctx.notBefore && ctx.now.getTime() < ctx.notBefore.getTime()) {
      return new DomainError(ErrorCode.NOT_YET_STARTED, 'This request is scheduled to start later.', {
        notBefore: ctx.notBefore.toISOString(),
      });
    }
    if (ctx.activateBy && ctx.now.getTime() >= ctx.activateBy.getTime()) {
      return new DomainError(
        ErrorCode.ACTIVATION_WINDOW_PASSED,
        'The time to activate this request has passed.',
        {
          activateBy: ctx.activateBy.toISOString(),
        },
      );
    }
    return { state: RequestState.ACTIVE, changes: { activatedAt: ctx.now } };
  },
  cancel(ctx) {
    if (ctx.actorId !== null && ctx.actorId !== ctx.requesterId && !ctx.actorIsAdmin) {
      return new DomainError(ErrorCode.FORBIDDEN, 'Only the requester or an admin can cancel this request.');
    }
    return ended(RequestState.CANCELLED, ctx.now, ctx.endReason);
  },
  expire(ctx, from) {
    if (ctx.now.getTime() < ctx.deadline.getTime()) {
      return new DomainError(ErrorCode.NOT_YET_DUE, 'This request has not reached its deadline yet.');
    }
    const reason = from === RequestState.PENDING ? EndReason.PENDING_TTL : EndReason.ACTIVATION_WINDOW;
    return ended(RequestState.EXPIRED, ctx.now, reason);
  },
  end(ctx) {
    if (ctx.now.getTime() < ctx.notAfter.getTime()) {
      return new DomainError(ErrorCode.NOT_YET_DUE, 'This grant has not reached its end yet.');
    }
    return ended(RequestState.ENDED, ctx.now, EndReason.EXPIRED);
  },
  revoke(ctx) {
    const allowed =
      ctx.actorId === null || ctx.actorId === ctx.requesterId || ctx.actorIsApprover || ctx.actorIsAdmin;
    if (!allowed) {
      return new DomainError(
        ErrorCode.FORBIDDEN,
        'Only the requester, an approver or an admin can revoke this grant.',
      );
    }
    return ended(RequestState.REVOKED, ctx.now, EndReason.REVOKED);
  },
};

/** Pure: the next state and the fields it sets, or the DomainError that refuses the event. */
export function transition<E extends RequestEvent>(
  state: RequestState,
  event: E,
  ctx: EventContext[E],
): Transition | DomainError {
  if (TERMINAL_STATES.has(state)) {
    return new DomainError(ErrorCode.REQUEST_FINISHED, `This request is already ${state.toLowerCase()}.`, {
      state,
    });
  }
  const source = SOURCES[event];
  if (!source.from.includes(state)) {
    return new DomainError(source.code, source.message, { state });
  }
  return GUARDS[event](ctx, state);
}

/** The state a new request starts in. */
export function initialState(kind: { breakGlass: boolean; selfService: boolean }): RequestState {
  if (kind.breakGlass) return RequestState.ACTIVE;
  return kind.selfService ? RequestState.APPROVED : RequestState.PENDING;
}
