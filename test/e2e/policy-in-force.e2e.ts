import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../../libs/config/config.js';
import { PolicyService } from '../../libs/policy/policy.service.js';
import { clientAs, enrollAll, PROJECT_ROOT, startStack, type TestStack } from '../support/stack.js';

// Decisions follow the policy in force when they are made, not the one a request was filed under.
describe('decisions under a reloaded policy', () => {
  let policyDir: string;
  let stack: TestStack;
  let original: string;

  const policyFile = () => path.join(policyDir, 'example.yaml');
  async function reloadWith(edit: (text: string) => string): Promise<void> {
    await writeFile(policyFile(), edit(original));
    await stack.broker.get(PolicyService).loadFromDirectory('test');
  }

  beforeAll(async () => {
    policyDir = await mkdtemp(path.join(tmpdir(), 'jit-policy-'));
    await cp(path.join(PROJECT_ROOT, 'policies'), policyDir, { recursive: true });
    original = await readFile(policyFile(), 'utf8');
    stack = await startStack({ policyDir, worker: false });
    await enrollAll(stack, ['alice', 'bob', 'dave', 'admin']);
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    if (policyDir) await rm(policyDir, { recursive: true, force: true });
  }, 60_000);

  it('does not count an approval by someone who is no longer an approver', async () => {
    await reloadWith((text) => text);
    const created = await clientAs(stack, 'alice').post('/api/requests', {
      entitlementId: 'demo-db-write',
      durationSeconds: 600,
      justification: 'quorum test',
    });
    expect(created.status).toBe(201);
    expect((await clientAs(stack, 'bob').decide(created.body.id, 'approve')).body.state).toBe('PENDING');
    await reloadWith((text) =>
      text.replace(/approvers: \[bob, dave, admin\]/, 'approvers: [carol, dave, admin]'),
    );
    expect(await readFile(policyFile(), 'utf8')).not.toBe(original);
    const second = await clientAs(stack, 'dave').decide(created.body.id, 'approve');
    expect(second.status).toBe(200);
    expect(second.body.state).toBe('PENDING');
    const third = await clientAs(stack, 'admin').decide(created.body.id, 'approve');
    expect(third.body.state).toBe('APPROVED');
  }, 30_000);

  it('refuses activation once the policy in force no longer grants the entitlement', async () => {
    await reloadWith((text) => text);
    const created = await clientAs(stack, 'alice').post('/api/requests', {
      entitlementId: 'api-admin-token',
      durationSeconds: 600,
      justification: 'eligibility test',
    });
    expect((await clientAs(stack, 'bob').decide(created.body.id, 'approve')).body.state).toBe('APPROVED');
    await reloadWith((text) =>
      text.replace(/engineers: \[alice, carol, admin\]/, 'engineers: [carol, admin]'),
    );
    const activated = await clientAs(stack, 'alice').decide(created.body.id, 'activate');
    expect(activated.status).toBe(403);
    expect(activated.body.error.code).toBe('NOT_ELIGIBLE');
    const { rows } = await stack.db.query('SELECT count(*)::int AS n FROM grants WHERE request_id = $1', [
      created.body.id,
    ]);
    expect(rows[0].n).toBe(0);
  }, 30_000);

  it("caches the version in force and drops it on another instance's activation", async () => {
    await reloadWith((text) => text);
    const dataSource = stack.broker.get(DataSource);
    // Another broker instance: its own cache and LISTEN connection, on the same database.
    const other = new PolicyService(stack.broker.get<AppConfig>(APP_CONFIG), dataSource);
    const reads = jest.spyOn(dataSource, 'query');
    try {
      const readsOf = async () => {
        const before = reads.mock.calls.length;
        const version = await other.inForce();
        return { hash: version.hash, reads: reads.mock.calls.length - before };
      };
      const original = await readsOf();
      expect(original.reads).toBe(1);
      await waitFor(async () => (await readsOf()).reads === 0);
      await reloadWith((text) =>
        text.replace(/engineers: \[alice, carol, admin\]/, 'engineers: [carol, admin]'),
      );
      const changed = (await stack.broker.get(PolicyService).inForce()).hash;
      expect(changed).not.toBe(original.hash);
      await waitFor(async () => (await readsOf()).hash === changed);
    } finally {
      reads.mockRestore();
      await other.onModuleDestroy();
    }
  }, 30_000);
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
