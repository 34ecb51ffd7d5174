import type { Benchmark } from './lib/registry.js';
import { apiBench } from './api.bench.js';
import { approveBench } from './approve.bench.js';
import { exportBench } from './export.bench.js';
import { revocationJwtBench } from './revocation-jwt.bench.js';
import { revocationPostgresBench } from './revocation-postgres.bench.js';
import { tlogBench } from './tlog.bench.js';
import { verifyBench } from './verify.bench.js';

/** Every benchmark `npm run bench` knows, in the order it runs them; add a new one here. */
export const BENCHMARKS: readonly Benchmark[] = [
  apiBench,
  revocationJwtBench,
  revocationPostgresBench,
  approveBench,
  exportBench,
  verifyBench,
  tlogBench,
];
