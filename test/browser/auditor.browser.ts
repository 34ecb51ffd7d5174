// The auditor's workspace in Chromium (issue 17): navigation by role, the events page with its filters and
// details drawer, a finished request's approval chain with every binding re-checked, and a signed NDJSON
// export downloaded through the UI that the CLI verifier accepts against the broker's published audit keys.
// Each person has their own browser context and virtual passkey; screenshots at 1280×800 go to artifacts/.
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Page } from 'playwright-core';
import { auditVerify } from '../../apps/cli/audit-verify.js';
import {
  enrollThroughUi,
  fileFromPage,
  personAtBrowser,
  seriousAxeFindings,
  startBrowserStack,
  type BrowserPerson,
  type BrowserStack,
} from '../support/browser.js';
import { inviteToken, PROJECT_ROOT, waitFor } from '../support/stack.js';

const ARTIFACTS = path.join(PROJECT_ROOT, 'test', 'browser', 'artifacts');
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const REVOKE_TIMEOUT_MS = 15_000;
/** Lets a page render an answer it has received. */
const SETTLE_MS = 200;

type Name = 'alice' | 'bob' | 'audrey' | 'root';

describe('the auditor’s workspace', () => {
  let env: BrowserStack | undefined;
  let downloads = '';
  const people: Partial<Record<Name, BrowserPerson>> = {};
  const person = (name: Name) => people[name]!;

  beforeAll(async () => {
    env = await startBrowserStack();
    downloads = await mkdtemp(path.join(tmpdir(), 'jit-audit-downloads-'));
    await mkdir(ARTIFACTS, { recursive: true });
    const roles = { alice: [], bob: [], audrey: ['auditor'], root: ['admin', 'auditor'] } as const;
    for (const [name, granted] of Object.entries(roles)) {
      const someone = await personAtBrowser(env, name);
      await someone.page.setViewportSize(DESKTOP);
      await enrollThroughUi(someone, await inviteToken(env.stack, name, [...granted]));
      people[name as Name] = someone;
    }
  }, 120_000);

  afterAll(async () => {
    await env?.close();
    if (downloads) await rm(downloads, { recursive: true, force: true });
  }, 30_000);

  /** The main navigation's link names, once the policy's answer has settled them. */
  async function navOf(name: Name): Promise<string[]> {
    const { page } = person(name);
    // The requester items follow GET /api/entitlements: read the links once that answer is rendered.
    const answered = page.waitForResponse((response) => response.url().endsWith('/api/entitlements'));
    await page.goto('/me/passkeys');
    await answered;
    const nav = page.getByRole('navigation', { name: 'Main' });
    await nav.getByRole('link', { name: 'Passkeys' }).waitFor();
    await page.waitForTimeout(SETTLE_MS);
    return nav.getByRole('link').allTextContents();
  }

  /** A full-page screenshot at 1280×800 under test/browser/artifacts/, and axe's serious findings there. */
  async function shootAndJudge(page: Page, name: string): Promise<string[]> {
    await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
    return (await seriousAxeFindings(page)).map((finding) => `${name}: ${finding}`);
  }

  /** The CLI's `audit verify <file> --jwks <broker>/.well-known/audit-jwks.json`: exit code and output. */
  async function verifyWithCli(file: string): Promise<{ code: number; lines: string[] }> {
    const lines: string[] = [];
    const output = { log: (line: string) => lines.push(line), error: (line: string) => lines.push(line) };
    const jwks = `${env!.stack.origin}/.well-known/audit-jwks.json`;
    return { code: await auditVerify([file, '--jwks', jwks], output), lines };
  }

  it('shows each person the navigation of their roles: Audit to auditors, the union to an admin-auditor', async () => {
    expect(await navOf('audrey')).toEqual(['Audit', 'Workloads', 'Passkeys', 'Notifications']);
    expect(await navOf('root')).toEqual(expect.arrayContaining(['Audit', 'Admin', 'Passkeys']));
    const alice = await navOf('alice');
    expect(alice).toContain('Requests');
    expect(alice).not.toContain('Audit');
    expect(alice).not.toContain('Admin');
    expect(alice).not.toContain('Workloads');
    expect(alice).not.toContain('Approvals');
    expect(await navOf('bob')).toEqual(expect.arrayContaining(['Approvals', 'Reviews']));
    // `/` is the requester's page: an auditor who may request nothing lands on Audit instead.
    const { page } = person('audrey');
    await page.goto('/');
    await page.waitForURL('**/audit');
    await page.getByRole('heading', { level: 1, name: 'Audit events' }).waitFor();
  }, 30_000);

  let requestId = '';

  it('runs a request to its end: bob approves, alice activates and revokes, the worker confirms', async () => {
    const alice = person('alice');
    const bob = person('bob');
    requestId = await fileFromPage(alice, {
      entitlementId: 'api-admin-token',
      durationSeconds: 1800,
      justification: 'Rotate the admin API keys (auditor browser test)',
      ticket: 'CHG-4711',
    });
    await bob.page.goto('/approvals');
    await bob.page
      .locator(`tr[data-request-id="${requestId}"]`)
      .getByRole('button', { name: /^Open/ })
      .click();
    const decision = bob.page.locator(`section[data-request-id="${requestId}"]`);
    await decision.getByLabel('Comment (optional)').fill('Go ahead, one rotation');
    await decision.getByRole('button', { name: 'Approve with passkey' }).click();
    await bob.page.getByRole('status').filter({ hasText: 'it is now APPROVED' }).waitFor();

    await alice.page.goto('/');
    const row = alice.page.locator(`tr[data-request-id="${requestId}"]`);
    await row.getByRole('button', { name: 'Activate' }).click();
    await alice.page.getByRole('button', { name: 'I have stored it' }).click();
    await row.getByRole('button', { name: 'Revoke…' }).click();
    await row.getByLabel('Why revoke now?').fill('Rotation done');
    await row.getByRole('button', { name: 'Revoke', exact: true }).click();
    await waitFor(
      async () => {
        const { rows } = await env!.stack.db.query('SELECT state FROM grants WHERE request_id = $1', [
          requestId,
        ]);
        return rows[0]?.state === 'REVOKED' ? true : undefined;
      },
      REVOKE_TIMEOUT_MS,
      'the grant to be revoked',
    );
  }, 60_000);

  it('lets the auditor find the request by filters and read an event with its hash link', async () => {
    const { page } = person('audrey');
    const findings: string[] = [];
    await page.goto('/audit');
    await page.getByRole('heading', { name: 'Audit events', level: 1 }).waitFor();

    // A bad filter is a clear refusal, not an empty page.
    await page.getByLabel('Actor (username)').fill('nobody-here');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('alert').filter({ hasText: 'No user named nobody-here' }).waitFor();

    await page.getByLabel('Actor (username)').fill('alice');
    await page.getByLabel('Action').fill('request.revoked');
    await page.getByLabel('Entitlement id').fill('api-admin-token');
    await page.getByRole('button', { name: 'Search' }).click();
    const rows = page.locator('[data-testid="audit-events"] tbody tr');
    await rows.first().waitFor();
    await expect(rows.count()).resolves.toBe(1);
    const row = rows.first();
    await expect(row.getAttribute('data-action')).resolves.toBe('request.revoked');
    await expect(row.locator('td').nth(2).textContent()).resolves.toBe('alice');
    expect(new URL(page.url()).search).toContain('action=request.revoked');
    findings.push(...(await shootAndJudge(page, 'audit-events')));

    await row.getByRole('button', { name: /^Details/ }).click();
    const drawer = page.getByRole('dialog', { name: /^Event \d+$/ });
    await drawer
      .getByTestId('hash-link-verdict')
      .filter({ hasText: /^Links to event \d+/ })
      .waitFor();
    const json = JSON.parse((await drawer.getByTestId('event-json').textContent())!);
    expect(json).toMatchObject({ action: 'request.revoked', requestId, data: { reason: 'Rotation done' } });
    findings.push(...(await shootAndJudge(page, 'audit-event-drawer')));
    await drawer.getByRole('button', { name: 'Close' }).click();
    await drawer.waitFor({ state: 'detached' });

    await row.getByRole('link', { name: /approval chain of request/ }).click();
    await page.waitForURL(`**/requests/${requestId}/chain`);
    expect(findings).toEqual([]);
  }, 60_000);

  it('shows the approval chain: every approval with its approver and a verified binding, then the revoke lag', async () => {
    const { page } = person('audrey');
    await page.goto(`/requests/${requestId}/chain`);
    const chain = page.getByTestId('chain');
    await chain.waitFor();
    await expect(page.title()).resolves.toBe('Approval chain — JIT access');
    const requested = chain.getByTestId('step-requested');
    await expect(requested.getByTestId('step-actor').textContent()).resolves.toBe('alice');
    await expect(requested.textContent()).resolves.toContain('CHG-4711');

    const approvals = chain.locator('li[data-kind="approval"]');
    await expect(approvals.count()).resolves.toBe(1);
    for (const approval of await approvals.all()) {
      await expect(approval.getByTestId('step-actor').textContent()).resolves.toBe('bob');
      await expect(approval.getByTestId('binding-verified').textContent()).resolves.toContain(
        'binding verified',
      );
      await expect(approval.getByTestId('step-comment').textContent()).resolves.toBe(
        '“Go ahead, one rotation”',
      );
    }
    await expect(chain.getByTestId('binding-failed').count()).resolves.toBe(0);
    await expect(
      chain.locator('li[data-kind="activated"]').getByTestId('binding-verified').count(),
    ).resolves.toBe(1);
    await expect(chain.getByTestId('fingerprint').textContent()).resolves.toMatch(/\S{16,}/);
    await expect(chain.getByTestId('revocation-lag').textContent()).resolves.toMatch(
      /^Confirmed revoked [\d.]+ m?s after the revoke was asked\.$/,
    );
    expect(await shootAndJudge(page, 'audit-chain')).toEqual([]);

    // The signed bundle, downloaded as a file, verifies offline.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download bundle' }).click(),
    ]);
    expect(download.suggestedFilename()).toBe(`bundle-${requestId}.json`);
    const bundleFile = path.join(downloads, download.suggestedFilename());
    await download.saveAs(bundleFile);
    const verified = await verifyWithCli(bundleFile);
    expect(verified).toMatchObject({
      code: 0,
      lines: expect.arrayContaining([expect.stringMatching(/^OK: /)]),
    });
  }, 60_000);

  it('exports NDJSON through the UI with a step-up, and `audit verify --jwks` accepts the downloaded file', async () => {
    const { page } = person('audrey');
    await page.goto('/audit/export');
    await page.getByRole('heading', { name: 'Export the audit trail', level: 1 }).waitFor();
    await expect(page.getByRole('radio', { name: /^NDJSON/ }).isChecked()).resolves.toBe(true);
    await page.getByLabel('Request id').fill(requestId);
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export with passkey' }).click(),
    ]);
    const fileName = download.suggestedFilename();
    expect(fileName).toMatch(/^audit-\d{8}T\d{6}Z\.ndjson$/);
    const file = path.join(downloads, fileName);
    await download.saveAs(file);

    const lines = (await readFile(file, 'utf8')).trimEnd().split('\n');
    const events = lines.length - 1;
    expect(events).toBeGreaterThanOrEqual(7);
    await expect(page.getByTestId('export-counts').textContent()).resolves.toMatch(
      new RegExp(`^[\\d.]+ (B|KiB) received, ${events} events$`),
    );
    const command = `npm run cli -- audit verify ${fileName} --jwks ${env!.stack.origin}/.well-known/audit-jwks.json`;
    await expect(page.getByTestId('verify-command').textContent()).resolves.toBe(command);
    expect(await shootAndJudge(page, 'audit-export')).toEqual([]);

    const verified = await verifyWithCli(file);
    expect(verified).toMatchObject({
      code: 0,
      lines: expect.arrayContaining([expect.stringMatching(/^OK: /)]),
    });
    expect(verified.lines.join('\n')).toContain('pinned by --jwks');
    expect(person('audrey').problems.filter((problem) => !problem.includes('400'))).toEqual([]);
  }, 60_000);

  it('refuses bad filters and unknown requests with a clear 4xx, and the audit API to a requester', async () => {
    const statusOf = (someone: BrowserPerson, url: string) =>
      someone.page.evaluate(async (target) => {
        const response = await fetch(target, { headers: { accept: 'application/json' } });
        return { status: response.status, body: (await response.json()) as { error?: { message?: string } } };
      }, url);
    const audrey = person('audrey');
    const refusals = {
      '/api/audit/events?actor=alice&actorId=system': 400,
      '/api/audit/events?from=2026-12-05T00:00:00Z&to=2026-12-04T00:00:00Z': 400,
      '/api/audit/events?requestId=not-a-uuid': 400,
      '/api/audit/events?cursor=-1': 400,
      '/api/audit/events?sort=desc': 400,
      '/api/audit/requests/not-a-uuid/chain': 400,
      '/api/audit/requests/01900000-0000-7000-8000-000000000000/chain': 404,
    };
    for (const [url, status] of Object.entries(refusals)) {
      const answer = await statusOf(audrey, url);
      expect({ url, status: answer.status, hasMessage: typeof answer.body.error?.message }).toEqual({
        url,
        status,
        hasMessage: 'string',
      });
    }
    await expect(statusOf(person('alice'), `/api/audit/requests/${requestId}/chain`)).resolves.toMatchObject({
      status: 403,
    });
  }, 30_000);

  it('fits the new pages into a phone’s 390 px without sideways scrolling', async () => {
    const { page } = person('audrey');
    await page.setViewportSize(PHONE);
    const overflowing: string[] = [];
    for (const target of ['/audit', `/requests/${requestId}/chain`, '/audit/export']) {
      await page.goto(target);
      await page.locator('main h1').first().waitFor();
      await page.waitForTimeout(SETTLE_MS);
      const scrollWidth = (await page.evaluate('document.documentElement.scrollWidth')) as number;
      if (scrollWidth > PHONE.width) overflowing.push(`${target}: ${scrollWidth}`);
    }
    expect(overflowing).toEqual([]);
  }, 30_000);
});
