// The admin's workspace in Chromium (issue 17): an active grant with its time left on Access now; the
// stuck-revocation banner while the webhook receiver is down, cleared by a retry with the admin's passkey;
// a pending invite revoked from People (its link then fails); a person's page where a session is ended and a
// passkey disabled with the admin's step-up; and a policy diff after a reload on Admin.
// The admin has their own browser context and virtual passkey; alice and bob act through the API with their
// own soft passkeys. Screenshots at 1280×800 go to test/browser/artifacts/, and axe-core judges each page.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Page } from 'playwright-core';
import type { WebhookEvent } from '../../libs/connectors/webhook.connector.js';
import {
  enrollThroughUi,
  personAtBrowser,
  seriousAxeFindings,
  startBrowserStack,
  type BrowserPerson,
  type BrowserStack,
} from '../support/browser.js';
import { policyDirFromFixture } from '../support/policy-fixture.js';
import {
  clientAs,
  enrollAll,
  httpClient,
  inviteToken,
  PROJECT_ROOT,
  waitFor,
  type TestStack,
} from '../support/stack.js';

const ARTIFACTS = path.join(PROJECT_ROOT, 'test', 'browser', 'artifacts');
const DESKTOP = { width: 1280, height: 800 };
const SECRET = 'whsec_admin_browser_7c41e9';
const ENTITLEMENT = 'ticketing-admin';
// 8 attempts from 50 ms, doubling: REVOKE_FAILED within ~7 s of the grant's end.
const REVOKE_BACKOFF_MS = 50;
const REVOKE_FAILED_TIMEOUT_MS = 30_000;
/** Lets a page render an answer it has received. */
const SETTLE_MS = 300;

/** The external system: answers mints and revokes while it is up; closed to take it down. */
function receiverServer(): Server {
  return createServer((incoming, response) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.on('end', () => {
      const event = JSON.parse(Buffer.concat(chunks).toString('utf8')) as WebhookEvent;
      if (event.event === 'mint') {
        const externalRef = `${event.subject}|${event.entitlementId}|${Date.now()}`;
        response.writeHead(201, { 'Content-Type': 'application/json' });
        response.end(JSON.stringify({ credential: { group: 'ticketing-admins' }, externalRef }));
        return;
      }
      response.writeHead(204).end();
    });
  });
}

async function listen(server: Server, port = 0): Promise<number> {
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

async function stop(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** alice asks, bob approves, alice activates: the request id. */
async function activeGrant(stack: TestStack, durationSeconds: number): Promise<string> {
  const created = await clientAs(stack, 'alice').post('/api/requests', {
    entitlementId: ENTITLEMENT,
    durationSeconds,
    justification: 'admin workspace browser test',
  });
  expect(created.status).toBe(201);
  const id = created.body.id as string;
  expect((await clientAs(stack, 'bob').decide(id, 'approve')).body.state).toBe('APPROVED');
  expect((await clientAs(stack, 'alice').decide(id, 'activate')).status).toBe(200);
  return id;
}

describe('the admin’s workspace', () => {
  let env: BrowserStack | undefined;
  let receiver = receiverServer();
  let port = 0;
  let policyDir = '';
  let admin: BrowserPerson | undefined;
  const problems: string[] = [];

  beforeAll(async () => {
    port = await listen(receiver);
    policyDir = await policyDirFromFixture('webhook', { RECEIVER_URL: `http://127.0.0.1:${port}/hook` });
    env = await startBrowserStack({
      policyDir,
      // Only the admin's retry may clear a REVOKE_FAILED grant here: the sweeper waits far longer than the suite.
      env: {
        E2E_WEBHOOK_SECRET: SECRET,
        REVOKE_BACKOFF_MS: String(REVOKE_BACKOFF_MS),
        SWEEP_INTERVAL_SECONDS: '3600',
      },
    });
    await mkdir(ARTIFACTS, { recursive: true });
    await enrollAll(env.stack, ['alice', 'bob']);
    admin = await personAtBrowser(env, 'root');
    await admin.page.setViewportSize(DESKTOP);
    await enrollThroughUi(admin, await inviteToken(env.stack, 'root', ['admin']));
    admin.page.on('response', (response) => {
      if (response.status() >= 400) problems.push(`${response.status()} ${response.url()}`);
    });
  }, 180_000);

  afterAll(async () => {
    await env?.close();
    if (receiver.listening) await stop(receiver);
    if (policyDir) await rm(policyDir, { recursive: true, force: true });
  }, 60_000);

  /** A full-page screenshot at 1280×800 under artifacts/, and axe's serious or critical findings there. */
  async function shootAndJudge(page: Page, name: string): Promise<void> {
    await page.waitForTimeout(SETTLE_MS);
    await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
    problems.push(...(await seriousAxeFindings(page)).map((finding) => `${name}: ${finding}`));
  }

  it('shows the REVOKE_FAILED banner while the receiver is down, and clears it after a retry', async () => {
    const stack = env!.stack;
    // First, while alice holds nothing else here: a grant another live one overlaps ends without a webhook call.
    const requestId = await activeGrant(stack, 2);
    await stop(receiver);
    let seen: unknown = null;
    await waitFor(
      async () => {
        const { rows } = await stack.db.query(
          `SELECT state, revoke_attempts, last_error, not_after FROM grants WHERE request_id = $1`,
          [requestId],
        );
        seen = rows[0];
        return rows[0]?.state === 'REVOKE_FAILED' ? true : undefined;
      },
      REVOKE_FAILED_TIMEOUT_MS,
      'the grant to be REVOKE_FAILED',
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}; last seen ${JSON.stringify(seen)}`);
    });
    const { page } = admin!;
    await page.goto('/admin/access');
    const banner = page.getByTestId('revoke-banner');
    await expect(banner.textContent()).resolves.toContain('could not be revoked');
    await shootAndJudge(page, 'admin-revoke-failed');
    // Every admin page carries it.
    await page.goto('/admin');
    await banner.waitFor();

    receiver = receiverServer();
    await listen(receiver, port);
    await banner.getByRole('button', { name: 'Retry revocation with passkey' }).click();
    await waitFor(
      async () => {
        const { rows } = await stack.db.query(`SELECT state FROM grants WHERE request_id = $1`, [requestId]);
        return rows[0]?.state === 'REVOKED' ? true : undefined;
      },
      15_000,
      'the grant to be revoked after the retry',
    );
    await page.reload();
    await page.getByRole('heading', { name: 'Policy' }).waitFor();
    await page.waitForTimeout(SETTLE_MS);
    await expect(banner.count()).resolves.toBe(0);
    const { rows } = await stack.db.query(
      `SELECT count(*)::int AS n FROM audit_events WHERE action = 'grant.revoke-retried'`,
    );
    expect(rows[0].n).toBe(1);
  }, 90_000);

  it('shows an active grant with its person, entitlement and time left', async () => {
    await activeGrant(env!.stack, 600);
    const { page } = admin!;
    await page.goto('/admin/access');
    const row = page.getByTestId('active-grants').locator('tr', { hasText: 'alice' });
    await expect(row.textContent()).resolves.toMatch(new RegExp(`${ENTITLEMENT}.*min.*left.*healthy`));
    await shootAndJudge(page, 'admin-access');
  }, 60_000);

  it('revokes a pending invite from People, and its link then fails', async () => {
    const { page } = admin!;
    await page.goto('/admin/people');
    await page.getByLabel('Username').fill('carol');
    await page.getByRole('button', { name: 'Create invite with passkey' }).click();
    const panel = page.getByTestId('invite-panel');
    await expect(panel.getByRole('heading').textContent()).resolves.toBe('Enrollment link for carol');
    const url = (await panel.getByTestId('invite-url').textContent()) ?? '';
    const token = new URL(url).searchParams.get('invite') ?? '';
    expect(token).not.toBe('');
    const pending = page.getByTestId('open-invites').locator('li', { hasText: 'carol' });
    await expect(pending.textContent()).resolves.toContain('pending enrollment');
    // Not an active account until carol enrolls.
    await expect(page.locator('tr', { hasText: 'carol' }).textContent()).resolves.toContain(
      'invited (pending)',
    );
    // No "Suspend" on one's own row.
    const own = page.locator('tr', { hasText: 'root' });
    await expect(own.getByRole('button', { name: /Suspend/ }).count()).resolves.toBe(0);
    await shootAndJudge(page, 'admin-people');

    await pending.getByRole('button', { name: 'Revoke', exact: true }).click();
    await page.getByTestId('open-invites').locator('li', { hasText: 'carol' }).waitFor({ state: 'detached' });
    // The panel stays until dismissed.
    await expect(panel.isVisible()).resolves.toBe(true);
    const options = await fetch(`${env!.stack.origin}/api/auth/enroll/options`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Origin: env!.stack.origin },
      body: JSON.stringify({ invite: token }),
    });
    expect(options.status).toBe(410);
  }, 60_000);

  it('shows the diff between two policy versions after a reload', async () => {
    const file = path.join(policyDir, 'webhook.yaml');
    const yaml = await readFile(file, 'utf8');
    await writeFile(file, yaml.replace('maxDuration: 1h', 'maxDuration: 2h'));
    const { page } = admin!;
    await page.goto('/admin');
    await page.getByRole('button', { name: 'Reload policy with passkey' }).click();
    await page.getByText('New policy in force').waitFor();
    const diff = page.getByTestId('policy-diff');
    await diff.locator('.diff-added').first().waitFor();
    await expect(diff.locator('.diff-removed').allTextContents()).resolves.toEqual([
      expect.stringContaining('"maxDurationSeconds": 3600'),
    ]);
    await expect(diff.locator('.diff-added').allTextContents()).resolves.toEqual([
      expect.stringContaining('"maxDurationSeconds": 7200'),
    ]);
    await shootAndJudge(page, 'admin-policy');
  }, 60_000);

  it('shows one person: ends a session, disables a passkey with a step-up; nothing to disable on one’s own page', async () => {
    const stack = env!.stack;
    // bob (an approver in the policy) is not needed after this.
    const bob = clientAs(stack, 'bob');
    const signIn = async () => {
      const anonymous = httpClient(stack, null);
      const options = await anonymous.post('/api/auth/login/options', {});
      return anonymous.post('/api/auth/login/verify', {
        response: bob.authenticator.authenticate(options.body),
      });
    };
    expect((await signIn()).status).toBe(200);
    const { page } = admin!;
    await page.goto('/admin/people');
    await page.getByRole('link', { name: 'bob', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'bob' }).waitFor();
    const sessions = page.getByTestId('person-sessions').locator('tbody tr');
    await sessions.nth(1).waitFor();
    await expect(sessions.count()).resolves.toBe(2);

    // Newest first: the last row is the enrollment's session, the one bob's client holds.
    await sessions.last().getByRole('button', { name: 'End session' }).click();
    await page.getByText(/The session started .* has ended/).waitFor();
    await sessions.nth(1).waitFor({ state: 'detached' });
    await expect(sessions.count()).resolves.toBe(1);
    expect((await bob.get('/api/me')).status).toBe(401);

    const passkeys = page.getByTestId('person-passkeys');
    await passkeys.getByRole('button', { name: 'Disable…' }).click();
    await expect(passkeys.getByRole('alert').textContent()).resolves.toContain('last usable passkey');
    await page.getByLabel('Why disable it?').fill('phone lost on the train');
    await shootAndJudge(page, 'admin-person');
    await page.getByRole('button', { name: 'Disable with passkey' }).click();
    await page.getByText(/is disabled; 1 session\(s\) it opened ended/).waitFor();
    await passkeys.getByText(/disabled .*phone lost on the train/).waitFor();
    const refused = await signIn();
    expect({ status: refused.status, code: refused.body?.error?.code }).toEqual({
      status: 401,
      code: 'AUTHENTICATOR_DISABLED',
    });
    const { rows } = await stack.db.query(
      `SELECT action, data FROM audit_events WHERE action IN ('authenticator.disabled', 'session.ended')
          AND data->>'userId' = $1 ORDER BY seq`,
      [bob.userId],
    );
    expect(rows).toEqual([
      { action: 'session.ended', data: { reason: 'ended-by-admin', userId: bob.userId } },
      {
        action: 'authenticator.disabled',
        data: expect.objectContaining({
          reason: 'admin',
          detail: 'phone lost on the train',
          lastUsable: true,
          alert: true,
          evidence: expect.objectContaining({ action: 'authenticator.disable' }),
        }),
      },
    ]);

    // One's own page: passkeys are managed on the Passkeys page, so nothing to disable here.
    await page.goto('/admin/people/root');
    await page.getByText('Your own passkeys are managed on your Passkeys page.').waitFor();
    await expect(page.getByRole('button', { name: 'Disable…' }).count()).resolves.toBe(0);
  }, 60_000);

  it('left no serious accessibility finding and no page error', () => {
    expect(problems).toEqual([]);
    expect(admin!.problems).toEqual([]);
  });
});
