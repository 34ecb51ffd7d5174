// Workload requests in Chromium (issue 21 point 5): a deploy bot files a request with its OIDC token (from
// the suite's local issuer); bob's inbox shows it with a "workload" badge, the owner group and the task, on a
// phone too and with no serious axe finding; the admin's Workloads page lists the bot and its request.
// Screenshots at 1280×800 go to artifacts/.
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  enrollThroughUi,
  personAtBrowser,
  seriousAxeFindings,
  startBrowserStack,
  type BrowserPerson,
  type BrowserStack,
} from '../support/browser.js';
import { startOidcIssuer, type OidcIssuer } from '../support/oidc-issuer.js';
import { policyDirFromFixture } from '../support/policy-fixture.js';
import { inviteToken, PROJECT_ROOT } from '../support/stack.js';

const ARTIFACTS = path.join(PROJECT_ROOT, 'test', 'browser', 'artifacts');
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
/** Lets a page render an answer it has received. */
const SETTLE_MS = 300;
const TASK = 'Run migration 0042_add_invoice_index for release v3.8.1';

describe('workload requests in the web UI', () => {
  let issuer: OidcIssuer | undefined;
  let env: BrowserStack | undefined;
  let policyDir = '';
  let requestId = '';
  const people: Partial<Record<'bob' | 'admin', BrowserPerson>> = {};

  beforeAll(async () => {
    issuer = await startOidcIssuer();
    policyDir = await policyDirFromFixture('workload-cli', { ISSUER: issuer.issuer });
    env = await startBrowserStack({ policyDir });
    await mkdir(ARTIFACTS, { recursive: true });
    for (const [name, roles] of [
      ['bob', []],
      ['admin', ['admin']],
    ] as const) {
      const someone = await personAtBrowser(env, name);
      await someone.page.setViewportSize(DESKTOP);
      await enrollThroughUi(someone, await inviteToken(env.stack, name, [...roles]));
      people[name] = someone;
    }
    const token = await issuer.token({ sub: 'repo:org/app:ref:refs/heads/main', aud: 'jit-broker' });
    const filed = await fetch(`${env.stack.baseUrl}/api/requests`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ entitlementId: 'db-deploy', durationSeconds: 600, justification: TASK }),
    });
    expect(filed.status).toBe(201);
    requestId = ((await filed.json()) as { id: string }).id;
  }, 120_000);

  afterAll(async () => {
    await env?.close();
    await issuer?.close();
    if (policyDir) await rm(policyDir, { recursive: true, force: true });
  }, 30_000);

  /** Screenshot at both sizes; returns the phone's sideways overflow and axe's serious findings at each. */
  async function judge(someone: BrowserPerson, name: string) {
    const { page } = someone;
    const findings: string[] = [];
    let phoneWidth = 0;
    for (const size of [DESKTOP, PHONE]) {
      await page.setViewportSize(size);
      await page.evaluate('new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))');
      await page.screenshot({ path: path.join(ARTIFACTS, `${name}-${size.width}.png`), fullPage: true });
      phoneWidth = (await page.evaluate('document.documentElement.scrollWidth')) as number;
      findings.push(
        ...(await seriousAxeFindings(page)).map((finding) => `${name} ${size.width}: ${finding}`),
      );
    }
    await page.setViewportSize(DESKTOP);
    return { phoneWidth, findings };
  }

  it('shows bob the workload request with its badge, owner group and task', async () => {
    const { page, problems } = people.bob!;
    await page.goto('/approvals');
    const row = page.locator(`tr[data-request-id="${requestId}"]`);
    await row.getByTestId('workload-badge').waitFor();
    await expect(row.textContent()).resolves.toMatch(/deploy-bot\s*workload\s*owner: platform/);
    await row.getByRole('button', { name: /^Open/ }).click();
    const panel = page.locator(`section[data-request-id="${requestId}"]`);
    await panel.getByTestId('workload-facts').waitFor();
    await expect(panel.textContent()).resolves.toContain(TASK);
    await expect(panel.textContent()).resolves.toMatch(/Owner group\s*platform/);
    await page.waitForTimeout(SETTLE_MS);
    const judged = await judge(people.bob!, 'workload-inbox');
    expect(judged.findings).toEqual([]);
    expect(judged.phoneWidth).toBeLessThanOrEqual(PHONE.width);

    await page.goto(`/requests/${requestId}`);
    await page.getByTestId('workload-badge').waitFor();
    await expect(page.getByTestId('workload-facts').textContent()).resolves.toContain('deploy-bot');
    expect(problems).toEqual([]);
  }, 60_000);

  it("lists the workload and its request on the admin's Workloads page", async () => {
    const { page, problems } = people.admin!;
    await page.goto('/admin');
    await page.getByRole('link', { name: 'Workloads' }).click();
    await page.getByRole('heading', { level: 1, name: 'Workloads' }).waitFor();
    const section = page.locator('section[data-workload-id="deploy-bot"]');
    await section.locator(`tr[data-request-id="${requestId}"]`).waitFor();
    await expect(section.textContent()).resolves.toMatch(/Owner group\s*platform/);
    await expect(section.textContent()).resolves.toContain(TASK);
    await page.waitForTimeout(SETTLE_MS);
    const judged = await judge(people.admin!, 'workloads');
    expect(judged.findings).toEqual([]);
    expect(judged.phoneWidth).toBeLessThanOrEqual(PHONE.width);
    expect(problems).toEqual([]);
  }, 60_000);
});
