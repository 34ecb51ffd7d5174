import { describe, expect, it } from '@jest/globals';
import { storableAuditInput, storableJson, storableText } from './audit-log.js';
import { chainHash, GENESIS_HASH, type ChainedEvent } from './chain.js';

const NUL = '\u0000';
const REPLACEMENT = '\uFFFD';

describe('storableText', () => {
  it('replaces U+0000 and lone surrogates with U+FFFD', () => {
    expect(storableText(`a${NUL}b`)).toBe(`a${REPLACEMENT}b`);
    expect(storableText('\uD800')).toBe(REPLACEMENT);
    expect(storableText('x\uDC00y')).toBe(`x${REPLACEMENT}y`);
    expect(storableText('\uDC00\uD800')).toBe(REPLACEMENT + REPLACEMENT);
    expect(storableText(`${NUL}${NUL}\uD800`)).toBe(REPLACEMENT.repeat(3));
  });

  it('keeps everything else, surrogate pairs and other control characters included', () => {
    for (const text of ['', 'plain', 'ü € 漢字', '😀 and 𝄞', '\t\n\u0001\u001f\u007f', 'a\uD83D\uDE00b']) {
      expect(storableText(text)).toBe(text);
    }
  });

  it('is idempotent and yields well-formed text', () => {
    const hostile = `origin${NUL}\uD800\uDFFF\uDFFF\uD800x`;
    const once = storableText(hostile);
    expect(storableText(once)).toBe(once);
    expect(once).toBe(`origin${REPLACEMENT}\uD800\uDFFF${REPLACEMENT}${REPLACEMENT}x`);
    expect(Buffer.from(once, 'utf8').toString('utf8')).toBe(once);
  });
});

describe('storableJson', () => {
  it('cleans strings at any depth, object keys included', () => {
    expect(
      storableJson({
        reason: `Unsupported Attestation Format: none${NUL}`,
        [`key${NUL}`]: [1, true, null, `\uD800`, { nested: { [`\uDC00`]: `v${NUL}` } }],
      }),
    ).toEqual({
      reason: `Unsupported Attestation Format: none${REPLACEMENT}`,
      [`key${REPLACEMENT}`]: [1, true, null, REPLACEMENT, { nested: { [REPLACEMENT]: `v${REPLACEMENT}` } }],
    });
  });

  it('uses the JSON form of dates and buffers, as the driver stores them', () => {
    const at = new Date('2030-01-01T00:00:00.000Z');
    expect(storableJson({ at, bytes: Buffer.from([1, 2]) })).toEqual({
      at: '2030-01-01T00:00:00.000Z',
      bytes: { type: 'Buffer', data: [1, 2] },
    });
  });

  it('keeps clean values as they are', () => {
    const data = { code: 'SIGNATURE_INVALID', count: 3, ok: false, none: null, list: ['a', 'b'] };
    expect(storableJson(data)).toEqual(data);
  });

  it('hashes the same before storing and after reading back from JSON', () => {
    const event: ChainedEvent = {
      seq: 1,
      at: '2030-01-01T00:00:00.000Z',
      actorId: 'system',
      action: 'login.failed',
      subjectType: 'ceremony',
      subjectId: 'login',
      requestId: null,
      data: storableJson({ reason: `top origin "\uD800${NUL}"`, [`k\uDBFF`]: 1 }) as Record<string, unknown>,
      prevHash: GENESIS_HASH.toString('hex'),
    };
    const readBack = JSON.parse(Buffer.from(JSON.stringify(event), 'utf8').toString('utf8')) as ChainedEvent;
    expect(chainHash(GENESIS_HASH, readBack)).toEqual(chainHash(GENESIS_HASH, event));
    expect(JSON.stringify(readBack)).not.toMatch(/\\u0000|\\ud[89a-f]/i);
  });
});

describe('storableAuditInput (what appendAuditEvent hashes and stores)', () => {
  const clean = {
    actorId: 'user-1',
    action: 'login.failed',
    subjectType: 'ceremony',
    subjectId: 'login',
    data: { code: 'SIGNATURE_INVALID', reason: 'plain' },
  };

  it('marks the data sanitised: true when anything was replaced, in the data or in any other field', () => {
    expect(storableAuditInput({ ...clean, data: { reason: `x${NUL}` } }).data).toEqual({
      reason: `x${REPLACEMENT}`,
      sanitised: true,
    });
    expect(storableAuditInput({ ...clean, data: { nested: [{ [`k\uD800`]: 1 }] } }).data).toEqual({
      nested: [{ [`k${REPLACEMENT}`]: 1 }],
      sanitised: true,
    });
    expect(storableAuditInput({ ...clean, subjectId: `login${NUL}` })).toMatchObject({
      subjectId: `login${REPLACEMENT}`,
      data: { ...clean.data, sanitised: true },
    });
    expect(storableAuditInput({ ...clean, data: undefined, requestId: '\uDC00' }).data).toEqual({
      sanitised: true,
    });
  });

  it('leaves clean input as it is, without the mark', () => {
    expect(storableAuditInput(clean)).toEqual({ ...clean, requestId: null });
    expect(storableAuditInput({ ...clean, data: { text: `already ${REPLACEMENT}` } }).data).toEqual({
      text: `already ${REPLACEMENT}`,
    });
  });

  it('keeps both values when keys collide after replacement: the later key gets a #2 suffix', () => {
    const data = storableAuditInput({
      ...clean,
      data: {
        [`k${NUL}`]: 'first',
        [`k\uD800`]: 'second',
        [`k${REPLACEMENT}#2`]: 'third',
        nested: { [`a${NUL}`]: 1, [`a${REPLACEMENT}`]: 2 },
      },
    }).data;
    expect(data).toEqual({
      [`k${REPLACEMENT}`]: 'first',
      [`k${REPLACEMENT}#2`]: 'second',
      [`k${REPLACEMENT}#2#2`]: 'third',
      nested: { [`a${REPLACEMENT}`]: 1, [`a${REPLACEMENT}#2`]: 2 },
      sanitised: true,
    });
  });
});
