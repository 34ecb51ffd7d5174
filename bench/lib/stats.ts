/** Figures of one measurement, by name (`rps`, `p99Ms`, `cpuMsPerRevocation`...); ratios pair equal names. */
export type Measurement = Record<string, number>;

/** The q-quantile (0..1) of `values` by nearest rank; NaN for none. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank];
}

/** p50, p99 and max of latencies (ms), with their count, as `<prefix>P50Ms` etc. */
export function latencySummary(values: readonly number[], prefix = ''): Measurement {
  const name = (suffix: string) =>
    prefix === '' ? suffix[0].toLowerCase() + suffix.slice(1) : prefix + suffix;
  return {
    [name('Count')]: values.length,
    [name('P50Ms')]: round(quantile(values, 0.5)),
    [name('P99Ms')]: round(quantile(values, 0.99)),
    [name('MaxMs')]: round(values.length === 0 ? Number.NaN : Math.max(...values)),
  };
}

/** Rounds to 3 significant decimals at most (figures for people, not for further arithmetic). */
export function round(value: number): number {
  if (!Number.isFinite(value)) return value;
  return Math.abs(value) >= 100 ? Math.round(value * 10) / 10 : Math.round(value * 1000) / 1000;
}
