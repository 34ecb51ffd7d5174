import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { PolicyError, type PolicyProblem } from './policy-error.js';
import { loadPolicyDir } from './policy-loader.js';

const LIMITS = { hardMaxDurationSeconds: 8 * 60 * 60 };

const PEOPLE = 'groups:\n  devs: [alice, bob]\n  leads: [carol, dave]\n';
const ACCESS = `connectors:
  db: { type: postgres, urlEnv: DB_URL }
entitlements:
  - id: db-read
    connector: db
    scope: { grantRoles: [app_read] }
    eligible: [devs]
    maxDuration: 1h
    approval: { approvals: 1, approverGroups: [leads] }
`;

async function problemsOf(dir: string): Promise<PolicyProblem[]> {
  try {
    await loadPolicyDir(dir, LIMITS);
  } catch (error) {
    if (error instanceof PolicyError) return error.problems;
    throw error;
  }
  throw new Error('the policy was accepted');
}

describe('loadPolicyDir', () => {
  let root: string;
  let dir: string;

  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'policy-loader-'));
    dir = path.join(root, 'policies');
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('refuses a missing directory', async () => {
    expect(await problemsOf(dir)).toEqual([
      { file: dir, line: null, path: '', reason: `policy directory "${dir}" does not exist` },
    ]);
  });

  it('refuses a file given as the directory', async () => {
    await writeFile(dir, PEOPLE);
    expect((await problemsOf(dir)).map((problem) => problem.reason)).toEqual([
      `policy directory "${dir}" is not a directory`,
    ]);
  });

  it('refuses a directory without policy files', async () => {
    await mkdir(dir);
    await writeFile(path.join(dir, 'README.md'), '# not a policy');
    await mkdir(path.join(dir, 'nested.yaml'));
    expect(await problemsOf(dir)).toEqual([
      { file: dir, line: null, path: '', reason: `policy directory "${dir}" has no *.yaml or *.yml files` },
    ]);
  });

  it('merges every *.yaml and *.yml file in name order, and nothing else', async () => {
    await mkdir(path.join(dir, 'sub'), { recursive: true });
    await writeFile(path.join(dir, 'b-access.yml'), ACCESS);
    await writeFile(path.join(dir, 'a-people.yaml'), PEOPLE);
    await writeFile(path.join(dir, 'notes.txt'), 'not: [valid');
    await writeFile(path.join(dir, '.hidden.yaml'), 'not: [valid');
    await writeFile(path.join(dir, 'sub', 'c.yaml'), 'not: [valid');

    const { policy, hash, files } = await loadPolicyDir(dir, LIMITS);
    expect(files.map((file) => file.name)).toEqual([
      path.join(dir, 'a-people.yaml'),
      path.join(dir, 'b-access.yml'),
    ]);
    expect(files[0].text).toBe(PEOPLE);
    expect(Object.keys(policy.groups)).toEqual(['devs', 'leads']);
    expect(policy.entitlements.map((entitlement) => entitlement.id)).toEqual(['db-read']);
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('follows symlinked files (a Kubernetes ConfigMap mount)', async () => {
    await mkdir(path.join(dir, '..data'), { recursive: true });
    await writeFile(path.join(dir, '..data', 'people.yaml'), PEOPLE);
    await writeFile(path.join(dir, '..data', 'access.yaml'), ACCESS);
    await symlink(path.join('..data', 'people.yaml'), path.join(dir, 'people.yaml'));
    await symlink(path.join('..data', 'access.yaml'), path.join(dir, 'access.yaml'));
    const { policy } = await loadPolicyDir(dir, LIMITS);
    expect(policy.entitlements).toHaveLength(1);
  });

  it('names problems by the directory as given joined with the file name', async () => {
    await mkdir(dir);
    await writeFile(path.join(dir, 'access.yaml'), ACCESS);
    expect(await problemsOf(dir)).toEqual([
      {
        file: path.join(dir, 'access.yaml'),
        line: 7,
        path: 'entitlements[0].eligible[0]',
        reason: 'entitlement "db-read" lists unknown group "devs" in eligible',
      },
      {
        file: path.join(dir, 'access.yaml'),
        line: 9,
        path: 'entitlements[0].approval.approverGroups[0]',
        reason: 'entitlement "db-read" lists unknown group "leads" in approval.approverGroups',
      },
    ]);
  });

  it('hashes the same policy the same way however it is split into files', async () => {
    await mkdir(dir);
    await writeFile(path.join(dir, 'a.yaml'), PEOPLE);
    await writeFile(path.join(dir, 'b.yaml'), ACCESS);
    const split = await loadPolicyDir(dir, LIMITS);
    const single = path.join(root, 'single');
    await mkdir(single);
    await writeFile(path.join(single, 'all.yaml'), PEOPLE + ACCESS);
    expect((await loadPolicyDir(single, LIMITS)).hash).toBe(split.hash);
  });
});
