import { execFile } from 'node:child_process';
import { mkdtemp, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from './stack.js';

const execFileAsync = promisify(execFile);

/**
 * Compiles the checkout with `tsconfig` into <new temp dir>/dist, never the shared dist/, and returns the temp
 * dir. Node finds packages and the module type in the directories above a file: the temp dir gets what
 * <checkout>/dist has above it (node_modules, a package.json of type module).
 */
export async function buildToTempDir(prefix: string, tsconfig: string, timeoutMs: number): Promise<string> {
  const buildDir = await mkdtemp(path.join(tmpdir(), prefix));
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
  return buildDir;
}
