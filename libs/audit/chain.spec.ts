import { createHash } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { canonicalJson } from '../domain/canonical-json.js';
import { chainHash, GENESIS_HASH, verifyChain, type ChainedEvent } from './chain.js';

function buildChain(count: number): Array<ChainedEvent & { hash: string }> {
  const events: Array<ChainedEvent & { hash: string }> = [];
  let previous: Buffer = GENESIS_HASH;
  for (let seq = 1; seq <= count; seq++) {
    const body: ChainedEvent = {
      seq,
      at: new Date(Date.UTC(2026, 0, 1, 0, 0, seq)).toISOString(),
      actorId: 'user-1',
      action: 'request.created',
      subjectType: 'request',
      subjectId: `r-${seq}`,
      requestId: null,
      data: { b: 2, a: [1, 'x'] },
      prevHash: previous.toString('hex'),
    };
    previous = chainHash(previous, body);
    events.push({ ...body, hash: previous.toString('hex') });
  }
  return events;
}

describe('audit hash chain', () => {
  it('hashes sha256(prevHash bytes ‖ canonical JSON)', () => {
    const [first] = buildChain(1);
    const { hash, ...body } = first;
    const keysSorted = `{"action":"request.created","actorId":"user-1","at":"${body.at}","data":{"a":[1,"x"],"b":2},"prevHash":"${'00'.repeat(32)}","requestId":null,"seq":1,"subjectId":"r-1","subjectType":"request"}`;
    expect(canonicalJson(body)).toBe(keysSorted);
    expect(hash).toBe(createHash('sha256').update(Buffer.alloc(32)).update(keysSorted).digest('hex'));
  });

  it('accepts an intact chain', () => {
    expect(verifyChain(buildChain(5))).toBeNull();
  });

  it('names the seq of an edited event', () => {
    const events = buildChain(5);
    events[2] = { ...events[2], data: { b: 3, a: [1, 'x'] } };
    expect(verifyChain(events)).toEqual({ seq: 3, reason: 'hash does not match the event content' });
  });

  it('names the seq after a deleted event', () => {
    const events = buildChain(5);
    events.splice(1, 1);
    expect(verifyChain(events)).toEqual({ seq: 3, reason: 'expected seq 2, found 3' });
  });

  it('detects swapped events', () => {
    const events = buildChain(4);
    [events[1], events[2]] = [events[2], events[1]];
    expect(verifyChain(events)?.seq).toBe(3);
  });

  it('detects a rewritten link whose own hash was recomputed', () => {
    const events = buildChain(3);
    const { hash: _hash, ...body } = events[1];
    const forged = { ...body, actorId: 'mallory' };
    events[1] = { ...forged, hash: chainHash(Buffer.from(forged.prevHash, 'hex'), forged).toString('hex') };
    expect(verifyChain(events)).toEqual({ seq: 3, reason: 'prevHash does not match the previous event' });
  });
});
