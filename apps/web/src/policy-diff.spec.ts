import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { diffLines, policyLines, withContext, type DiffLine } from './policy-diff';

const side = (lines: DiffLine[], kind: 'removed' | 'added') =>
  lines.filter((line) => line.kind === 'same' || line.kind === kind).map((line) => line.text);

describe('policy line diff', () => {
  it('marks one changed line as removed then added, and keeps the rest', () => {
    expect(diffLines(['a', 'b', 'c'], ['a', 'x', 'c'])).toEqual([
      { kind: 'same', text: 'a' },
      { kind: 'removed', text: 'b' },
      { kind: 'added', text: 'x' },
      { kind: 'same', text: 'c' },
    ]);
  });

  it('handles empty sides', () => {
    expect(diffLines([], ['a'])).toEqual([{ kind: 'added', text: 'a' }]);
    expect(diffLines(['a'], [])).toEqual([{ kind: 'removed', text: 'a' }]);
    expect(diffLines([], [])).toEqual([]);
  });

  it('rebuilds both versions from the diff, keeping a longest common subsequence', () => {
    const lines = fc.array(fc.constantFrom('a', 'b', 'c', 'd'), { maxLength: 30 });
    fc.assert(
      fc.property(lines, lines, (before, after) => {
        const diff = diffLines(before, after);
        expect(side(diff, 'removed')).toEqual(before);
        expect(side(diff, 'added')).toEqual(after);
      }),
    );
    const same = diffLines(['a', 'b', 'c', 'd'], ['b', 'c', 'd', 'a']).filter((l) => l.kind === 'same');
    expect(same.map((line) => line.text)).toEqual(['b', 'c', 'd']);
  });

  it('compares policies with sorted keys, so key order is no change', () => {
    const diff = diffLines(policyLines({ b: 1, a: [2] }), policyLines({ a: [2], b: 1 }));
    expect(diff.every((line) => line.kind === 'same')).toBe(true);
    const changed = diffLines(policyLines({ a: 1 }), policyLines({ a: 2 }));
    expect(changed.filter((line) => line.kind !== 'same').map((line) => line.text.trim())).toEqual([
      '"a": 1',
      '"a": 2',
    ]);
  });

  it('keeps the context around each change and collapses the rest into gaps', () => {
    const before = ['1', '2', '3', '4', '5', '6', '7', '8'];
    const after = ['1', '2', '3', '4', 'x', '6', '7', '8'];
    expect(withContext(diffLines(before, after), 1)).toEqual([
      { kind: 'gap', skipped: 3 },
      { kind: 'same', text: '4' },
      { kind: 'removed', text: '5' },
      { kind: 'added', text: 'x' },
      { kind: 'same', text: '6' },
      { kind: 'gap', skipped: 2 },
    ]);
    expect(withContext(diffLines(['a'], ['a']), 3)).toEqual([{ kind: 'gap', skipped: 1 }]);
  });
});
