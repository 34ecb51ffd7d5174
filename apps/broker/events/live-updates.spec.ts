import { Writable } from 'node:stream';
import { describe, expect, it } from '@jest/globals';
import { STREAM_BUFFER_LIMIT_BYTES, write } from './live-updates.js';

const CHUNK = 'x'.repeat(1024);

describe('write (live-update backpressure)', () => {
  it('drops a client that stops reading once its unsent bytes pass the limit', () => {
    // A socket whose buffer is full: nothing written ever completes.
    const stalled = new Writable({ write: () => {} });
    let writes = 0;
    while (!stalled.destroyed && writes < 1000) {
      write(stalled, CHUNK);
      writes += 1;
    }
    expect(stalled.destroyed).toBe(true);
    expect(stalled.writableLength).toBeLessThanOrEqual(STREAM_BUFFER_LIMIT_BYTES + CHUNK.length);
    // Later writes to the dropped stream are ignored rather than thrown.
    expect(() => write(stalled, CHUNK)).not.toThrow();
  });

  it('keeps a client that reads what it is sent', () => {
    const received: string[] = [];
    const reading = new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        received.push(chunk.toString());
        done();
      },
    });
    for (let count = 0; count < 1000; count++) write(reading, CHUNK);
    expect(reading.destroyed).toBe(false);
    expect(received).toHaveLength(1000);
  });
});
