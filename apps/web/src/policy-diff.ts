// A line diff of two policy documents (issue 17): no diff library is installed, so a plain longest common
// subsequence over lines, which policy files (hundreds of lines) keep small.

/** One line of a diff: kept in both, only in the old version, or only in the new one. */
export interface DiffLine {
  kind: 'same' | 'removed' | 'added';
  text: string;
}

/** Above this many lines on each side the table (old × new) gets too big for a browser tab: lines are compared whole. */
export const MAX_DIFF_LINES = 5000;

/** The LCS length table: lengths[i][j] is the LCS of before[i..] and after[j..]. */
function lcsTable(before: readonly string[], after: readonly string[]): Uint32Array[] {
  const lengths = Array.from({ length: before.length + 1 }, () => new Uint32Array(after.length + 1));
  for (let i = before.length - 1; i >= 0; i -= 1) {
    for (let j = after.length - 1; j >= 0; j -= 1) {
      lengths[i][j] =
        before[i] === after[j] ? lengths[i + 1][j + 1] + 1 : Math.max(lengths[i + 1][j], lengths[i][j + 1]);
    }
  }
  return lengths;
}

/** The lines of `after` against `before`: removals come before additions at each change. */
export function diffLines(before: readonly string[], after: readonly string[]): DiffLine[] {
  if (before.length > MAX_DIFF_LINES || after.length > MAX_DIFF_LINES) {
    return [
      ...before.map((text): DiffLine => ({ kind: 'removed', text })),
      ...after.map((text): DiffLine => ({ kind: 'added', text })),
    ];
  }
  const lengths = lcsTable(before, after);
  const out: DiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < before.length && j < after.length) {
    if (before[i] === after[j]) {
      out.push({ kind: 'same', text: before[i] });
      i += 1;
      j += 1;
    } else if (lengths[i + 1][j] >= lengths[i][j + 1]) {
      out.push({ kind: 'removed', text: before[i] });
      i += 1;
    } else {
      out.push({ kind: 'added', text: after[j] });
      j += 1;
    }
  }
  for (; i < before.length; i += 1) out.push({ kind: 'removed', text: before[i] });
  for (; j < after.length; j += 1) out.push({ kind: 'added', text: after[j] });
  return out;
}

/** A policy document as the diff compares it: pretty JSON with object keys sorted, one value per line. */
export function policyLines(document: unknown): string[] {
  return JSON.stringify(sortKeys(document), null, 2).split('\n');
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1));
  return Object.fromEntries(entries.map(([key, inner]) => [key, sortKeys(inner)]));
}

/** A diff line or a gap marker standing for `skipped` unchanged lines left out. */
export type DiffRow = DiffLine | { kind: 'gap'; skipped: number };

/** The changed lines with `context` unchanged lines around each change; the rest collapse into gaps. */
export function withContext(lines: readonly DiffLine[], context: number): DiffRow[] {
  const keep = lines.map(() => false);
  lines.forEach((line, index) => {
    if (line.kind === 'same') return;
    for (
      let near = Math.max(0, index - context);
      near <= Math.min(lines.length - 1, index + context);
      near += 1
    )
      keep[near] = true;
  });
  const rows: DiffRow[] = [];
  let skipped = 0;
  lines.forEach((line, index) => {
    if (!keep[index]) {
      skipped += 1;
      return;
    }
    if (skipped > 0) rows.push({ kind: 'gap', skipped });
    skipped = 0;
    rows.push(line);
  });
  if (skipped > 0) rows.push({ kind: 'gap', skipped });
  return rows;
}
