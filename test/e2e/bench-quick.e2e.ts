// `npm run bench -- --quick` keeps working: every registered benchmark runs scaled down against its own
// PostgreSQL, Redis, broker and worker, and writes its results JSON. No timing is asserted: only that each
// benchmark measured its project and its floor (before and after) and computed ratios.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { PROJECT_ROOT } from '../support/stack.js';
import { sharedBuild } from '../support/temp-build.js';

const execFileAsync = promisify(execFile);
const BUILD_TIMEOUT_MS = 180_000;
const RUN_TIMEOUT_MS = 20 * 60_000;

describe('npm run bench -- --quick', () => {
  let buildDir: string;
  let runJs: string;
  let resultsDir: string | undefined;

  beforeAll(async () => {
    // BENCH_ROOT (below) points the temp build back at the checkout.
    buildDir = await sharedBuild(BUILD_TIMEOUT_MS);
    resultsDir = await mkdtemp(path.join(tmpdir(), 'jit-bench-results-'));
    runJs = path.join(buildDir, 'dist', 'bench', 'run.js');
  }, BUILD_TIMEOUT_MS);

  afterAll(async () => {
    if (resultsDir) await rm(resultsDir, { recursive: true, force: true });
  });

  it(
    'runs every registered benchmark and writes its figures, floors and ratios',
    async () => {
      const env = {
        ...process.env,
        BENCH_ROOT: PROJECT_ROOT,
        BENCH_RESULTS_DIR: resultsDir,
      };
      const listed = await execFileAsync(process.execPath, [runJs, '--list'], { env });
      const names = listed.stdout
        .split('\n')
        .filter(Boolean)
        .map((line) => line.split(/\s+/)[0]);
      expect(names).toEqual(expect.arrayContaining(['api', 'revocation-jwt', 'revocation-postgres']));

      await execFileAsync(process.execPath, [runJs, '--quick'], {
        env,
        timeout: RUN_TIMEOUT_MS,
        maxBuffer: 2 ** 26,
      });

      for (const name of names) {
        const result = JSON.parse(await readFile(path.join(resultsDir!, `${name}.json`), 'utf8'));
        expect(result).toMatchObject({ name, quick: true, machine: { cores: expect.any(Number) } });
        expect(result.comparisons.length).toBeGreaterThan(0);
        for (const comparison of result.comparisons) {
          const figures = Object.values(comparison.project) as number[];
          expect(figures.length).toBeGreaterThan(0);
          expect(Object.keys(comparison.floor.before).length).toBeGreaterThan(0);
          expect(Object.keys(comparison.floor.after).length).toBeGreaterThan(0);
          expect(Object.keys(result.ratios[comparison.label]).length).toBeGreaterThan(0);
        }
      }
    },
    RUN_TIMEOUT_MS,
  );
});
