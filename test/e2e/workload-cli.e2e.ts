import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { requestCommand } from '../../apps/cli/request.js';
import { startOidcIssuer, type OidcIssuer } from '../support/oidc-issuer.js';
import { policyDirFromFixture } from '../support/policy-fixture.js';
import { clientAs, enrollAll, startStack, waitFor, type TestStack } from '../support/stack.js';

// Issue 21 points 4 and 5: the CLI a CI job runs (`npm run cli -- request`, called in-process here) against a
// real broker, worker, PostgreSQL and Redis, with tokens from a local OIDC issuer; a person decides through
// the API with a real passkey step-up; admins and auditors see the workload on GET /api/admin/workloads.

const SUBJECT = 'repo:org/app:ref:refs/heads/main';

describe('workload CLI: request, wait, activate (real broker, PostgreSQL, Redis)', () => {
  let issuer: OidcIssuer;
  let stack: TestStack;
  let dir: string;
  let policyDir: string;

  beforeAll(async () => {
    issuer = await startOidcIssuer();
    policyDir = await policyDirFromFixture('workload-cli', { ISSUER: issuer.issuer });
    dir = await mkdtemp(path.join(tmpdir(), 'workload-cli-'));
    stack = await startStack({ policyDir });
    await enrollAll(stack, ['alice', 'bob', 'carol', 'admin', 'audrey'], {
      admin: ['admin'],
      audrey: ['auditor'],
    });
  }, 90_000);

  afterAll(async () => {
    await stack?.close();
    await issuer?.close();
    await rm(dir, { recursive: true, force: true });
    await rm(policyDir, { recursive: true, force: true });
  }, 60_000);

  async function tokenFile(name: string, claims: { sub?: string; aud?: string } = {}): Promise<string> {
    const file = path.join(dir, name);
    const token = await issuer.token({ sub: claims.sub ?? SUBJECT, aud: claims.aud ?? 'jit-broker' });
    await writeFile(file, `${token}\n`, { mode: 0o600 });
    return file;
  }

  /** Runs the CLI in-process; resolves with its exit code and what it printed. */
  async function cli(token: string, task: string, extra: string[]) {
    const out: string[] = [];
    const err: string[] = [];
    const args = ['--broker', stack.baseUrl, '--token-file', token, '--entitlement', 'db-deploy'];
    const code = await requestCommand([...args, '--duration', '10m', '--task', task, ...extra], {
      log: (line) => out.push(line),
      error: (line) => err.push(line),
    });
    return { code, out: out.join('\n'), err: err.join('\n') };
  }

  /** The workload's pending request with this task, as bob's inbox shows it. */
  function inInbox(task: string) {
    return waitFor(
      async () => {
        const inbox = await clientAs(stack, 'bob').get('/api/approvals/inbox');
        return (inbox.body.items as any[]).find((item) => item.justification === task);
      },
      15_000,
      `the workload request "${task}" in bob's inbox`,
    );
  }

  it('files, waits for bob, activates and writes the credential to a new 0600 file', async () => {
    const token = await tokenFile('approve.jwt');
    const out = path.join(dir, 'cred.json');
    const running = cli(token, 'migrate schema v42', ['--wait', '--wait-timeout', '2m', '--out', out]);
    const request = await inInbox('migrate schema v42');
    expect(request).toMatchObject({
      requesterKind: 'workload',
      requester: 'workload:deploy-bot',
      workload: { id: 'deploy-bot', ownerGroup: 'platform', subject: SUBJECT, issuer: issuer.issuer },
      state: 'PENDING',
    });
    expect((await clientAs(stack, 'bob').decide(request.id, 'approve')).status).toBe(200);
    const result = await running;
    expect(result).toMatchObject({ code: 0, out: '' });
    expect((await stat(out)).mode & 0o777).toBe(0o600);
    const credential = JSON.parse(await readFile(out, 'utf8'));
    expect(Object.keys(credential).length).toBeGreaterThan(0);
    const tokenText = (await readFile(token, 'utf8')).trim();
    expect(result.err).not.toContain(tokenText);
    const view = await clientAs(stack, 'bob').get(`/api/requests/${request.id}`);
    expect(view.body.state).toBe('ACTIVE');
  }, 60_000);

  it('exits 2 when bob denies it, and activates nothing', async () => {
    const token = await tokenFile('deny.jwt');
    const running = cli(token, 'drop the prod table', ['--wait', '--wait-timeout', '2m']);
    const request = await inInbox('drop the prod table');
    const denied = await clientAs(stack, 'bob').decide(request.id, 'deny', { reason: 'not today' });
    expect(denied.status).toBe(200);
    const result = await running;
    expect(result.code).toBe(2);
    expect(result.err).toMatch(/is DENIED/);
    expect(result.out).toBe('');
    const { rows } = await stack.db.query(`SELECT count(*)::int AS n FROM grants WHERE request_id = $1`, [
      request.id,
    ]);
    expect(rows[0].n).toBe(0);
  }, 60_000);

  it('exits 1 with the broker problem on a token for another audience, and files nothing', async () => {
    const before = await stack.db.query(`SELECT count(*)::int AS n FROM elevation_requests`);
    const token = await tokenFile('wrong-aud.jwt', { aud: 'someone-else' });
    const result = await cli(token, 'should not be filed', ['--wait']);
    expect(result.code).toBe(1);
    expect(result.err).toMatch(/POST \/api\/requests: 401 /);
    const after = await stack.db.query(`SELECT count(*)::int AS n FROM elevation_requests`);
    expect(after.rows[0].n).toBe(before.rows[0].n);
  }, 30_000);

  it('exits 1 with the 422 when the duration is above workloadMaxDuration', async () => {
    const token = await tokenFile('too-long.jwt');
    const args = ['--broker', stack.baseUrl, '--token-file', token, '--entitlement', 'db-deploy'];
    const err: string[] = [];
    const code = await requestCommand([...args, '--duration', '30m', '--task', 'too long'], {
      log: () => {},
      error: (line) => err.push(line),
    });
    expect(code).toBe(1);
    expect(err.join('\n')).toMatch(/: 422 /);
  }, 30_000);

  it('lists the workload and its latest requests to admins and auditors only', async () => {
    const admin = await clientAs(stack, 'admin').get('/api/admin/workloads');
    expect(admin.status).toBe(200);
    expect(admin.body.workloads).toEqual([
      expect.objectContaining({
        id: 'deploy-bot',
        title: 'Deploy pipeline',
        issuer: issuer.issuer,
        audience: 'jit-broker',
        subject: 'repo:org/app:ref:refs/heads/*',
        ownerGroup: 'platform',
        entitlements: ['db-deploy'],
      }),
    ]);
    const tasks = (admin.body.workloads[0].recentRequests as any[]).map((item) => item.justification);
    expect(tasks).toEqual(expect.arrayContaining(['migrate schema v42', 'drop the prod table']));
    expect(admin.body.workloads[0].recentRequests.length).toBeLessThanOrEqual(10);
    expect((await clientAs(stack, 'audrey').get('/api/admin/workloads')).status).toBe(200);
    expect((await clientAs(stack, 'alice').get('/api/admin/workloads')).status).toBe(403);
    expect((await clientAs(stack, 'bob').get('/api/admin/workloads')).status).toBe(403);
  }, 30_000);
});
