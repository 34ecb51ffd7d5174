import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT } from './stack.js';

const PLACEHOLDER = /\$\{([A-Z][A-Z0-9_]*)\}/g;

/**
 * A copy of test/fixtures/policies/<fixture>/ in a fresh temp dir, each `${NAME}` replaced by values[NAME]:
 * for what is only known at run time (a receiver's port, a per-run role name). The caller removes the dir.
 */
export async function policyDirFromFixture(fixture: string, values: Record<string, string>): Promise<string> {
  const source = path.join(PROJECT_ROOT, 'test', 'fixtures', 'policies', fixture);
  const dir = await mkdtemp(path.join(tmpdir(), `jit-policy-${fixture}-`));
  for (const file of (await readdir(source)).filter((name) => /\.ya?ml$/.test(name))) {
    const text = (await readFile(path.join(source, file), 'utf8')).replace(PLACEHOLDER, (_, name: string) => {
      const value = values[name];
      if (value === undefined) throw new Error(`${fixture}/${file}: no value for \${${name}}`);
      return value;
    });
    await writeFile(path.join(dir, file), text);
  }
  return dir;
}
