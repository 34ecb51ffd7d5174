import path from 'node:path';
import { fileURLToPath } from 'node:url';

// This file runs as <outDir>/bench/lib/paths.js; `npm run bench` builds into <checkout>/dist with
// tsconfig.bench.json. A build elsewhere (the quick test's temp outDir) names the checkout with BENCH_ROOT.
/** The compiled tree: <outDir>/apps/broker/main.js, <outDir>/bench/run.js. */
export const DIST_DIR = fileURLToPath(new URL('../../', import.meta.url));
/** The checkout: the apps' working directory (dist/web), bench/policies, bench/results. */
export const ROOT_DIR = path.resolve(process.env.BENCH_ROOT || path.join(DIST_DIR, '..'));
/** Where `<name>.json` goes: bench/results, or BENCH_RESULTS_DIR. */
export const RESULTS_DIR = path.resolve(
  process.env.BENCH_RESULTS_DIR || path.join(ROOT_DIR, 'bench', 'results'),
);
/** The bench policy: self-service jwt and postgres entitlements, and an approval-gated one. */
export const BENCH_POLICY_DIR = path.join(ROOT_DIR, 'bench', 'policies');
