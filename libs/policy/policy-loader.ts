import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { policyHash, type Policy } from '../domain/policy.js';
import type { PolicyLimits } from './policy-checks.js';
import { PolicyError } from './policy-error.js';
import { parsePolicy } from './policy-parser.js';
import type { PolicyFile } from './yaml-lines.js';

/**
 * Reads every `*.yaml` / `*.yml` in `dir` (sorted by name, not recursive) and parses them as one policy;
 * throws PolicyError when the directory is missing or empty, or the policy is invalid.
 */
export async function loadPolicyDir(
  dir: string,
  limits: PolicyLimits,
): Promise<{ policy: Policy; hash: string; files: PolicyFile[] }> {
  const refuse = (reason: string) => new PolicyError([{ file: dir, line: null, path: '', reason }]);

  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw refuse(`policy directory "${dir}" does not exist`);
    if (code === 'ENOTDIR') throw refuse(`policy directory "${dir}" is not a directory`);
    throw error;
  }

  // Dot entries are skipped and symlinks followed: a Kubernetes ConfigMap mount is `..data/` plus links.
  const candidates = names.filter((name) => !name.startsWith('.') && /\.ya?ml$/.test(name)).sort();
  const files: PolicyFile[] = [];
  for (const name of candidates) {
    const filePath = path.join(dir, name);
    if (!(await stat(filePath)).isFile()) continue;
    files.push({ name: filePath, text: await readFile(filePath, 'utf8') });
  }
  if (files.length === 0) throw refuse(`policy directory "${dir}" has no *.yaml or *.yml files`);

  const policy = parsePolicy(files, limits);
  return { policy, hash: policyHash(policy), files };
}
