import { describe, expect, it } from '@jest/globals';
import { buildScenario } from '../../test/support/audit-chain.js';
import { canonicalJson } from '../domain/canonical-json.js';
import { eventJcs, jcs } from './jcs.js';
import type { ExportedEvent } from './manifest.js';

/** What canonicalJson answers: its text, or the message it throws. */
function outcome(serialise: (value: never) => string, value: unknown): string {
  try {
    return serialise(value as never);
  } catch (error) {
    return `throws ${(error as Error).message}`;
  }
}

const VALUES: unknown[] = [
  { b: 1, a: [true, false, null, 'x'], '': {}, é: 'é', '\u20ac': 1, '\ud83d\ude00': 2, z: [] },
  { quote: 'a"b\\c\u0000\u001f\u007f\n\t/', unicode: 'mañana 日本 \ud83d\ude00', empty: '' },
  { numbers: [0, -0, 1.5, -2e-7, 1e21, 1e-7, 123456789012345680000, 0.1 + 0.2, Number.MAX_SAFE_INTEGER] },
  { nested: { deeper: { deepest: [{ k: 'v', a: 1 }, [[]]] } } },
  [1, 'two', { three: 3 }],
  'a plain string',
  42,
  null,
  { toJSON: 'only a string, not a method' },
  // Left to canonicalJson: its answer, or its error, is the one answer.
  { lone: '\ud800' },
  { ['\udc00']: 1 },
  { when: new Date('2026-03-01T09:00:00.000Z') },
  { skipped: undefined, kept: 1 },
  [undefined, () => 1],
  { infinite: Number.POSITIVE_INFINITY },
  { notANumber: Number.NaN },
  Object.assign(Object.create({ inherited: 1 }) as object, { own: 2 }),
];

describe('jcs', () => {
  it.each(VALUES.map((value, index) => [index, value]))(
    'value %i: byte for byte what canonicalJson answers',
    (_index, value) => {
      expect(outcome(jcs, value)).toBe(outcome(canonicalJson, value));
    },
  );

  it('every value of a parsed export, and its round trip, the same', () => {
    for (const event of buildScenario().chain.events) {
      const parsed = JSON.parse(JSON.stringify(event)) as unknown;
      expect(jcs(parsed)).toBe(canonicalJson(parsed));
    }
  });
});

describe('eventJcs', () => {
  it('is canonicalJson of exported events, including ones with text that must be escaped', () => {
    const events: ExportedEvent[] = buildScenario().chain.events.map((event) => ({ ...event }));
    const [first] = events;
    events.push(
      { ...first, subjectId: 'o\'neil, "jr"\r\nsecond line', requestId: null },
      { ...first, actorId: 'mañana \ud83d\ude00', action: 'a\\b', data: { x: [1, { y: '\u0001' }] } },
      { ...first, data: { when: new Date('2026-03-01T09:00:00.000Z') } as never },
    );
    for (const event of events) expect(eventJcs(event)).toBe(canonicalJson(event));
    const extra = { ...first, extra: 1 } as ExportedEvent;
    expect(eventJcs(extra)).toBe(canonicalJson(extra));
    expect(outcome(eventJcs, { ...first, subjectId: '\ud800' })).toBe(
      outcome(canonicalJson, { ...first, subjectId: '\ud800' }),
    );
  });
});
