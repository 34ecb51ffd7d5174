import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from './stack.js';

const execFileAsync = promisify(execFile);
/** The widest build (apps, libs, bench and the soft authenticator): every suite that runs dist/ can use it. */
const SHARED_TSCONFIG = 'tsconfig.bench.json';

/**
 * Compiles the checkout with `tsconfig` into <new temp dir>/dist, never the shared dist/, and returns the temp
 * dir. Node finds packages and the module type in the directories above a file: the temp dir gets what
 * <checkout>/dist has above it (node_modules, a package.json of type module).
 */
export async function buildToTempDir(prefix: string, tsconfig: string, timeoutMs: number): Promise<string> {
  const buildDir = await mkdtemp(path.join(tmpdir(), prefix));
  await compileInto(buildDir, tsconfig, timeoutMs);
  return buildDir;
}

async function compileInto(buildDir: string, tsconfig: string, timeoutMs: number): Promise<void> {
  await execFileAsync(
    process.execPath,
    [
      path.join('node_modules', 'typescript', 'bin', 'tsc'),
      '-p',
      tsconfig,
      '--outDir',
      path.join(buildDir, 'dist'),
    ],
    { cwd: PROJECT_ROOT, timeout: timeoutMs },
  );
  await symlink(path.join(PROJECT_ROOT, 'node_modules'), path.join(buildDir, 'node_modules'), 'dir');
  await writeFile(path.join(buildDir, 'package.json'), '{ "type": "module" }\n');
}

/**
 * One build of the checkout for the whole test run (apps, libs and bench), in the dir the global setup names
 * (JIT_SHARED_BUILD_DIR, removed by its teardown): the first suite to ask compiles it, the others wait for it.
 * Callers read it and never remove it. Without the global setup, a build of this process's own, removed at exit.
 */
export async function sharedBuild(timeoutMs: number): Promise<string> {
  const dir = process.env.JIT_SHARED_BUILD_DIR;
  if (dir === undefined) {
    const own = await buildToTempDir('jit-build-', SHARED_TSCONFIG, timeoutMs);
    process.once('exit', () => rmSync(own, { recursive: true, force: true }));
    return own;
  }
  try {
    await mkdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return waitForBuild(dir, timeoutMs);
  }
  try {
    await compileInto(dir, SHARED_TSCONFIG, timeoutMs);
    await writeFile(path.join(dir, 'ready'), '');
  } catch (error) {
    await writeFile(path.join(dir, 'failed'), String(error));
    throw error;
  }
  return dir;
}

/** Waits for another suite's shared build: its `ready` marker, or its `failed` one with the reason. */
async function waitForBuild(dir: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await exists(path.join(dir, 'ready'))) return dir;
    if (await exists(path.join(dir, 'failed'))) {
      throw new Error(`The shared build failed: ${await readFile(path.join(dir, 'failed'), 'utf8')}`);
    }
    if (Date.now() > deadline) throw new Error(`No shared build in ${dir} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}
