import type { BenchOutcome } from './report.js';

/** What every benchmark gets from the runner. */
export interface BenchContext {
  /** Scaled down (a few seconds, tens of grants) so that a test can run every benchmark. */
  quick: boolean;
  /** Progress lines on stderr, prefixed with the benchmark's name. */
  log(message: string): void;
}

/**
 * One benchmark: `run` starts its own services (startBenchStack/startServices), measures its floor before
 * and after the project, stops everything it started, and returns the figures.
 */
export interface Benchmark {
  name: string;
  description: string;
  run(context: BenchContext): Promise<BenchOutcome>;
}
