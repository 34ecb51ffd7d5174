import { createHash } from 'node:crypto';
import { canonicalJson } from '../domain/canonical-json.js';
import type { ChainedEvent } from './audit-wire.js';

/** The hash of "no previous event": 32 zero bytes. */
export const GENESIS_HASH = Buffer.alloc(32);

export type { ChainedEvent } from './audit-wire.js';

/** hash = sha256(prevHash bytes ‖ JCS(event without hash)), DESIGN §9. */
export function chainHash(prevHash: Buffer, event: ChainedEvent): Buffer {
  return createHash('sha256').update(prevHash).update(canonicalJson(event), 'utf8').digest();
}

/** Where a chain first breaks, or null when every link holds. */
export interface ChainBreak {
  seq: number;
  reason: string;
}

/** Recomputes a contiguous run of events; `startHash` is the hash before the first one. */
export function verifyChain(
  events: Iterable<ChainedEvent & { hash: string }>,
  startHash: Buffer = GENESIS_HASH,
): ChainBreak | null {
  let previous = startHash;
  let expectedSeq: number | null = null;
  for (const event of events) {
    if (expectedSeq !== null && event.seq !== expectedSeq) {
      return { seq: event.seq, reason: `expected seq ${expectedSeq}, found ${event.seq}` };
    }
    if (event.prevHash !== previous.toString('hex')) {
      return { seq: event.seq, reason: 'prevHash does not match the previous event' };
    }
    const { hash, ...body } = event;
    const recomputed = chainHash(previous, body);
    if (recomputed.toString('hex') !== hash) {
      return { seq: event.seq, reason: 'hash does not match the event content' };
    }
    previous = recomputed;
    expectedSeq = event.seq + 1;
  }
  return null;
}
