import { Injectable } from '@nestjs/common';
import { DomainError, ErrorCode } from '../../../libs/domain/errors.js';

/** Long-polls one broker holds at once; each is a timer and a closure, no connection to PostgreSQL. */
export const MAX_WAITS = 2000;
/** Long-polls one waiter may hold at once on one broker: a person, or one workload token (one CI job). */
export const MAX_WAITS_PER_WAITER = 20;
/** A waiting call looks at the request again this often, in case a change's message was lost. */
export const RECHECK_MS = 5000;

/**
 * The long-polls of GET /api/requests/:id/wait (issue 21): a waiting call parks here until a request event for
 * its request arrives (LiveUpdates hears every committed change through Redis pub/sub), its timeout passes,
 * or the periodic re-check is due, whichever comes first. Bounded per broker and per requester.
 */
@Injectable()
export class RequestWaits {
  private readonly waiting = new Map<string, Set<() => void>>();
  private readonly perWaiter = new Map<string, number>();
  private total = 0;

  /** How many calls are parked here now. */
  get open(): number {
    return this.total;
  }

  /** Wakes every call waiting on this request. */
  notify(requestId: string): void {
    for (const wake of this.waiting.get(requestId) ?? []) wake();
  }

  /**
   * Resolves after `ms`, on a change of the request, on `closed` (the client went away), or after RECHECK_MS;
   * 429 when the broker or the actor holds too many waits already.
   */
  async until(waiter: string, requestId: string, ms: number, closed: AbortSignal): Promise<void> {
    // A client that left between the caller's check and here has nothing to wait for.
    if (closed.aborted) return;
    const held = this.perWaiter.get(waiter) ?? 0;
    if (this.total >= MAX_WAITS || held >= MAX_WAITS_PER_WAITER) {
      throw new DomainError(ErrorCode.RATE_LIMITED, 'Too many waits are open; try again shortly', {
        retryAfterSeconds: 5,
      });
    }
    this.total += 1;
    this.perWaiter.set(waiter, held + 1);
    const wakers = this.waiting.get(requestId) ?? new Set<() => void>();
    this.waiting.set(requestId, wakers);
    let wake = () => {};
    const woken = new Promise<void>((resolve) => (wake = resolve));
    wakers.add(wake);
    closed.addEventListener('abort', wake, { once: true });
    const timer = setTimeout(wake, Math.min(ms, RECHECK_MS));
    try {
      await woken;
    } finally {
      clearTimeout(timer);
      closed.removeEventListener('abort', wake);
      wakers.delete(wake);
      if (wakers.size === 0) this.waiting.delete(requestId);
      this.total -= 1;
      const left = (this.perWaiter.get(waiter) ?? 1) - 1;
      if (left === 0) this.perWaiter.delete(waiter);
      else this.perWaiter.set(waiter, left);
    }
  }
}
