// The verifier's signature checks of step-up assertions, in batches, on worker threads: the one part of
// verifying an export that is pure CPU and independent of every other event. A batch travels as two
// transferred arrays (bytes and offsets) and each key once per thread; the answer is one byte per assertion.
// Deciding what a false answer means, and in which order, stays with the caller (event-checker.ts).
import type { KeyObject } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { assertionSignatureHolds, type PreparedAssertion } from './evidence-check.js';

/**
 * The thread's code: node:crypto only, so it runs as is wherever the verifier runs (built, or under a test
 * runner that compiles TypeScript on the fly). Per assertion, 6 int32: key id, EdDSA?, data offset, data
 * length, signature offset, signature length.
 */
const THREAD_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { verify } = require('node:crypto');
const keys = new Map();
parentPort.on('message', ({ id, keys: added, bytes, index }) => {
  for (const [keyId, key] of added) keys.set(keyId, key);
  const results = new Uint8Array(index.length / 6);
  for (let item = 0; item < results.length; item++) {
    const at = item * 6;
    const data = bytes.subarray(index[at + 2], index[at + 2] + index[at + 3]);
    const signature = bytes.subarray(index[at + 4], index[at + 4] + index[at + 5]);
    try {
      results[item] = verify(index[at + 1] === 1 ? null : 'sha256', data, keys.get(index[at]), signature) ? 1 : 0;
    } catch {
      results[item] = 0;
    }
  }
  parentPort.postMessage({ id, results }, [results.buffer]);
});
`;

interface Thread {
  worker: Worker;
  /** Key ids this thread has been sent. */
  keys: Set<number>;
  pending: Map<number, { resolve(results: Uint8Array): void; reject(error: Error): void }>;
  /** Failed or exited: its batches are checked on the calling thread. */
  dead: boolean;
}

/** Worker threads that check assertion signatures; `check` answers one boolean per assertion, in order. */
export class AssertionPool {
  private readonly threads: Thread[] = [];
  private readonly keyIds = new Map<KeyObject, number>();
  private next = 0;
  private batches = 0;
  /** Batches checked on the calling thread because their thread failed. */
  fallbacks = 0;

  constructor(private readonly size: number) {}

  /**
   * Whether each assertion's signature holds, checked on a thread; if the thread fails, checked here
   * instead, so the answer never depends on threads.
   */
  async check(batch: readonly PreparedAssertion[]): Promise<boolean[]> {
    try {
      const results = await this.send(batch);
      return Array.from(results, (result) => result === 1);
    } catch {
      this.fallbacks++;
      return batch.map(assertionSignatureHolds);
    }
  }

  /** Stops every thread; a check still running is answered on this thread. */
  async close(): Promise<void> {
    const threads = this.threads.splice(0);
    await Promise.all(threads.map(({ worker }) => worker.terminate()));
  }

  private send(batch: readonly PreparedAssertion[]): Promise<Uint8Array> {
    const thread = this.thread();
    if (thread.dead) return Promise.reject(new Error('the assertion thread has stopped'));
    const id = ++this.batches;
    const added: Array<[number, KeyObject]> = [];
    let size = 0;
    for (const item of batch) size += item.signedData.length + item.signature.length;
    const bytes = new Uint8Array(size);
    const index = new Int32Array(batch.length * 6);
    let offset = 0;
    batch.forEach((item, position) => {
      const keyId = this.keyIdOf(item.key);
      if (!thread.keys.has(keyId)) {
        thread.keys.add(keyId);
        added.push([keyId, item.key]);
      }
      const at = position * 6;
      index[at] = keyId;
      index[at + 1] = item.alg === 'EdDSA' ? 1 : 0;
      index.set([offset, item.signedData.length], at + 2);
      bytes.set(item.signedData, offset);
      offset += item.signedData.length;
      index.set([offset, item.signature.length], at + 4);
      bytes.set(item.signature, offset);
      offset += item.signature.length;
    });
    return new Promise<Uint8Array>((resolve, reject) => {
      thread.pending.set(id, { resolve, reject });
      if (thread.pending.size === 1) thread.worker.ref();
      thread.worker.postMessage({ id, keys: added, bytes, index }, [bytes.buffer, index.buffer]);
    });
  }

  private keyIdOf(key: KeyObject): number {
    let id = this.keyIds.get(key);
    if (id === undefined) {
      id = this.keyIds.size + 1;
      this.keyIds.set(key, id);
    }
    return id;
  }

  /** The next thread, round robin, started on first use. */
  private thread(): Thread {
    if (this.threads.length < this.size) this.threads.push(startThread());
    const thread = this.threads[this.next % this.threads.length];
    this.next++;
    return thread;
  }
}

function startThread(): Thread {
  const worker = new Worker(THREAD_SOURCE, { eval: true });
  const thread: Thread = { worker, keys: new Set(), pending: new Map(), dead: false };
  const failAll = (error: Error) => {
    thread.dead = true;
    for (const { reject } of thread.pending.values()) reject(error);
    thread.pending.clear();
  };
  worker.on('message', ({ id, results }: { id: number; results: Uint8Array }) => {
    const pending = thread.pending.get(id);
    thread.pending.delete(id);
    // An idle thread does not keep the process alive (the verifier may forget to close the pool).
    if (thread.pending.size === 0) worker.unref();
    pending?.resolve(results);
  });
  worker.on('error', failAll);
  worker.on('exit', () => failAll(new Error('the assertion thread exited')));
  worker.unref();
  return thread;
}

/** Where a deferred assertion failed: its event's seq and checkStepUpAssertion's reason. */
export interface AssertionFailure {
  seq: number;
  reason: string;
}

/**
 * Assertions whose signature checks are deferred, answered in the order they were added: `settle` returns
 * the failure of the earliest one that does not hold, as checking them one by one would have found first.
 * With 0 threads nothing is deferred (the caller checks inline); batches smaller than `batchSize` at the
 * end, or all of them when no batch ever filled, are checked on this thread.
 */
export class DeferredAssertions {
  private batch: Array<{ seq: number; prepared: PreparedAssertion }> = [];
  private readonly inFlight: Array<Promise<AssertionFailure | null>> = [];
  private pool: AssertionPool | null = null;

  constructor(
    private readonly threads: number,
    private readonly batchSize: number,
    private readonly failureOf: (prepared: PreparedAssertion) => string,
  ) {}

  add(seq: number, prepared: PreparedAssertion): void {
    this.batch.push({ seq, prepared });
    if (this.batch.length >= this.batchSize) this.dispatch(true);
  }

  /** Too many batches in flight: the caller should wait for relieve() before reading on. */
  get backlogged(): boolean {
    return this.inFlight.length > 2 * this.threads;
  }

  /** Waits for the oldest batches until at most `threads` remain; the first failure among them, if any. */
  async relieve(): Promise<AssertionFailure | null> {
    while (this.inFlight.length > this.threads) {
      const failed = await this.inFlight.shift();
      if (failed) return failed;
    }
    return null;
  }

  /** Checks everything added; the earliest failure, or null. */
  async settle(): Promise<AssertionFailure | null> {
    this.dispatch(this.pool !== null);
    while (this.inFlight.length > 0) {
      const failed = await this.inFlight.shift();
      if (failed) return failed;
    }
    return null;
  }

  async close(): Promise<void> {
    await this.pool?.close();
    this.pool = null;
  }

  private dispatch(onThreads: boolean): void {
    const batch = this.batch;
    if (batch.length === 0) return;
    this.batch = [];
    const prepared = batch.map((item) => item.prepared);
    let results: Promise<boolean[]>;
    if (onThreads) {
      this.pool ??= new AssertionPool(this.threads);
      results = this.pool.check(prepared);
    } else {
      results = Promise.resolve(prepared.map(assertionSignatureHolds));
    }
    const failed = results.then((holds) => {
      const index = holds.indexOf(false);
      return index === -1 ? null : { seq: batch[index].seq, reason: this.failureOf(batch[index].prepared) };
    });
    this.inFlight.push(failed);
  }
}
