// Every page of the web UI, for each role, on a phone and to a screen reader's eyes: at 390×844 nothing
// scrolls sideways, and axe-core finds no serious or critical WCAG violation. Plus the request page: a
// denied requester, following a deep link through sign-in, reads why it was denied; the request form tells
// refusals in words next to their field; an approver's review list holds a finished break-glass use.
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  enrollThroughUi,
  fileFromPage,
  personAtBrowser,
  seriousAxeFindings,
  startBrowserStack,
  type BrowserPerson,
  type BrowserStack,
} from '../support/browser.js';
import { inviteToken, PROJECT_ROOT } from '../support/stack.js';

const SHOTS = '/tmp/u2-shots';
const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 800 };
/** Pages fetch after their heading renders; this lets their data arrive before the page is judged. */
const SETTLE_MS = 600;
/** The example policy plus a break-glass entitlement whose credential (a JWT) needs no target system. */
const BREAK_GLASS_POLICY = `entitlements:
  - id: api-breakglass-token
    title: Admin API, read/write token (break-glass)
    description: The admin API at once, for an outage; an approver reviews the use afterwards.
    connector: api-token
    scope: { scopes: ['admin:write'] }
    eligible: [oncall]
    maxDuration: 30m
    breakGlass: { notify: [approvers], postReviewWithin: 24h }
`;

describe('every page on a phone and under axe-core', () => {
  let env: BrowserStack | undefined;
  const people: Record<'alice' | 'bob' | 'admin' | 'audrey', BrowserPerson | undefined> = {
    alice: undefined,
    bob: undefined,
    admin: undefined,
    audrey: undefined,
  };

  let policyDir = '';

  beforeAll(async () => {
    policyDir = await mkdtemp(path.join(tmpdir(), 'jit-pages-policy-'));
    await copyFile(path.join(PROJECT_ROOT, 'policies', 'example.yaml'), path.join(policyDir, 'example.yaml'));
    await writeFile(path.join(policyDir, 'break-glass.yaml'), BREAK_GLASS_POLICY);
    // A denial's cool-down long enough to be seen counting down.
    env = await startBrowserStack({ policyDir, env: { DENIAL_COOLDOWN_SECONDS: '600' } });
    const roles = { alice: [], bob: [], admin: ['admin'], audrey: ['auditor'] } as const;
    for (const [name, granted] of Object.entries(roles)) {
      const person = await personAtBrowser(env, name);
      await enrollThroughUi(person, await inviteToken(env.stack, name, [...granted]));
      people[name as keyof typeof people] = person;
    }
  }, 120_000);

  afterAll(async () => {
    await env?.close();
    if (policyDir) await rm(policyDir, { recursive: true, force: true });
  }, 30_000);

  /** bob denies the request from his inbox, with his passkey and a reason. */
  async function denyInUi(requestId: string, reason: string): Promise<void> {
    const bob = people.bob!;
    await bob.page.goto('/approvals');
    await bob.page
      .locator(`tr[data-request-id="${requestId}"]`)
      .getByRole('button', { name: /^Open/ })
      .click();
    const panel = bob.page.locator(`section[data-request-id="${requestId}"]`);
    await panel.getByTestId('requester-history').waitFor();
    await panel.getByRole('button', { name: 'Deny…' }).click();
    await panel.getByLabel('Why deny it? (the requester sees this)').fill(reason);
    await panel.getByRole('button', { name: 'Deny with passkey' }).click();
    await bob.page.getByRole('status').filter({ hasText: 'it is now DENIED' }).waitFor();
  }

  let deniedId = '';

  it('shows a denied requester the denial reason on the request page, after a deep link through sign-in', async () => {
    const alice = people.alice!;
    deniedId = await fileFromPage(alice, {
      entitlementId: 'demo-db-write',
      durationSeconds: 900,
      justification: 'Fix one row in orders (browser test)',
      ticket: 'CHG-1234',
    });
    await denyInUi(deniedId, 'Use the read-only role for this');

    // Signed out, alice is told so; the link to the request survives the sign-in.
    await alice.page.getByRole('button', { name: 'Sign out' }).click();
    await alice.page.getByRole('status').filter({ hasText: 'You have signed out.' }).waitFor();
    await alice.page.goto(`/requests/${deniedId}`);
    await alice.page.waitForURL(/\/login\?next=/);
    await alice.page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await alice.page.waitForURL(`**/requests/${deniedId}`);

    const page = alice.page.locator(`section[data-request-id="${deniedId}"]`);
    await page.locator('[data-state="DENIED"]').waitFor();
    await expect(page.getByTestId('denial-reason').textContent()).resolves.toBe(
      'Denied by bob. Reason: “Use the read-only role for this”',
    );
    await expect(page.getByTestId('decisions').textContent()).resolves.toContain('0 of 2 approvals');
    await expect(alice.page.title()).resolves.toBe('Request — JIT access');
    await page.getByRole('heading', { name: 'Request for Demo database, read/write' }).waitFor();
    expect(alice.problems.filter((problem) => !problem.includes('401'))).toEqual([]);
  }, 60_000);

  let activeId = '';

  it('activates a self-service request from its page, which then offers an extension within the cap', async () => {
    const alice = people.alice!;
    activeId = await fileFromPage(alice, {
      entitlementId: 'api-read-token',
      durationSeconds: 300,
      justification: 'Read the audit API (browser test)',
    });
    await alice.page.goto(`/requests/${activeId}`);
    const page = alice.page.locator(`section[data-request-id="${activeId}"]`);
    await page.locator('[data-state="APPROVED"]').waitFor();
    await page.getByRole('button', { name: 'Activate' }).click();
    await alice.page.getByTestId('credential-dialog').waitFor();
    await alice.page.getByRole('button', { name: 'I have stored it' }).click();
    await page.locator('[data-state="ACTIVE"]').waitFor();
    // 15 min at most from activation, 5 taken: 10 more.
    await page.getByLabel('More minutes (at most 10 more)').waitFor();
    await expect(page.locator('.timeline').textContent()).resolves.toContain('Activated');
  }, 30_000);

  it('tells a refused request in words next to its field, and clears the news of a filing on the next edit', async () => {
    const { page } = people.alice!;
    await page.setViewportSize(DESKTOP);
    await page.goto('/');
    const form = page.locator('form', { has: page.getByRole('button', { name: 'Request access' }) });
    await page.getByLabel('Entitlement', { exact: true }).selectOption('demo-db-read');
    // The ticket format in the policy's words, never its pattern.
    await expect(form.textContent()).resolves.toContain('an incident or change number, like INC-1234');
    await expect(form.textContent()).resolves.not.toContain('^(INC|CHG)');
    await form.getByLabel(/^Justification/).fill('Look up one order (browser test)');
    const ticket = form.getByLabel(/^Ticket/);
    await ticket.fill('nope');
    await form.getByRole('button', { name: 'Request access' }).click();
    const ticketError = form.locator('[data-field-error="ticket"]');
    await expect(ticketError.textContent()).resolves.toBe(
      'This is not an incident or change number, like INC-1234 or CHG-1234.',
    );
    await expect(ticket.getAttribute('aria-invalid')).resolves.toBe('true');
    await expect(ticket.getAttribute('aria-describedby')).resolves.toBe(await ticketError.getAttribute('id'));
    await expect(page.evaluate('document.activeElement?.id')).resolves.toBe(await ticket.getAttribute('id'));
    await expect(seriousAxeFindings(page)).resolves.toEqual([]);

    // Fixing the ticket clears its problem; a duration past the cap is told on the duration field.
    await ticket.fill('INC-1234');
    expect(await ticketError.count()).toBe(0);
    const minutes = form.getByLabel(/^Duration in minutes/);
    await minutes.fill('999');
    await form.getByRole('button', { name: 'Request access' }).click();
    await expect(form.locator('[data-field-error="minutes"]').textContent()).resolves.toBe(
      'Demo database, read-only lasts at most 1 h.',
    );
    await minutes.fill('30');
    await form.getByRole('button', { name: 'Request access' }).click();
    const filed = form.getByRole('status').filter({ hasText: 'Filed. It waits for 1 approval.' });
    await filed.waitFor();
    await form.getByLabel(/^Justification/).fill('The next one');
    await filed.waitFor({ state: 'detached' });
  }, 30_000);

  it('shows a denial cool-down as a countdown next to the entitlement', async () => {
    const { page } = people.alice!;
    await page.goto('/');
    const form = page.locator('form', { has: page.getByRole('button', { name: 'Request access' }) });
    // demo-db-write was denied in the first test, and the cool-down is 10 minutes.
    await page.getByLabel('Entitlement', { exact: true }).selectOption('demo-db-write');
    await form.getByLabel(/^Justification/).fill('Fix one row again (browser test)');
    await form.getByRole('button', { name: 'Request access' }).click();
    const problem = form.locator('[data-field-error="entitlement"]');
    await expect(problem.textContent()).resolves.toMatch(
      /^Your last request for Demo database, read\/write was denied\. You may ask again in (10 min|9 min [0-9]+ s)\.$/,
    );
    const first = await problem.locator('[data-countdown]').textContent();
    // It ticks: read again until the second changes (the page's CSP forbids a string waitForFunction).
    const deadline = Date.now() + 5000;
    while ((await problem.locator('[data-countdown]').textContent()) === first) {
      if (Date.now() > deadline) throw new Error(`the cool-down stayed at ${first}`);
      await page.waitForTimeout(100);
    }
    await expect(page.getByLabel('Entitlement', { exact: true }).getAttribute('aria-invalid')).resolves.toBe(
      'true',
    );
    await expect(seriousAxeFindings(page)).resolves.toEqual([]);
  }, 30_000);

  it('puts a finished break-glass use in the approver’s review list, and the entitlement’s description before the passkey prompt', async () => {
    const alice = people.alice!;
    await alice.page.goto('/');
    const form = alice.page.locator('form', { has: alice.page.getByLabel('Entitlement', { exact: true }) });
    await alice.page.getByLabel('Entitlement', { exact: true }).selectOption('api-breakglass-token');
    await form.getByLabel(/^Justification/).fill('The admin API is down for everyone (browser test)');
    await form.getByRole('button', { name: 'Use break-glass' }).click();
    await alice.page.getByTestId('credential-dialog').waitFor();
    await alice.page.getByRole('button', { name: 'I have stored it' }).click();
    const row = alice.page
      .locator('tr[data-request-id]')
      .filter({ hasText: 'Admin API, read/write token (break-glass)' })
      .first();
    const usedId = (await row.getAttribute('data-request-id'))!;
    await row.getByRole('button', { name: 'Revoke…' }).click();
    await row.getByLabel('Why revoke now?').fill('Outage over');
    await row.getByRole('button', { name: 'Revoke', exact: true }).click();
    await alice.page.locator(`tr[data-request-id="${usedId}"] [data-state="REVOKED"]`).waitFor();

    const bob = people.bob!;
    await bob.page.goto('/reviews');
    const review = bob.page.locator(`article[data-request-id="${usedId}"]`);
    await review.getByRole('heading', { name: 'alice: Admin API, read/write token (break-glass)' }).waitFor();
    await expect(review.textContent()).resolves.toContain('The admin API is down for everyone');

    await bob.page.goto('/approvals');
    await bob.page
      .locator('tr[data-request-id]')
      .filter({ hasText: 'Demo database, read-only' })
      .first()
      .getByRole('button', { name: /^Open/ })
      .click();
    await expect(bob.page.getByTestId('entitlement-description').textContent()).resolves.toBe(
      'A database login that can read every table of the demo application, change none.',
    );
  }, 60_000);

  /** The pages each person can reach, by path (and a step that opens part of it, for the approver's panel). */
  function pagesOf(name: keyof typeof people, pendingId: string): Array<{ path: string; open?: string }> {
    const common = ['/', '/approvals', '/reviews', '/me/passkeys', '/me/notifications', '/no-such-page'].map(
      (p) => ({ path: p }),
    );
    switch (name) {
      case 'alice':
        return [
          ...common,
          { path: `/requests/${deniedId}` },
          { path: `/requests/${pendingId}` },
          { path: `/requests/${activeId}` },
        ];
      case 'bob':
        return [...common, { path: '/approvals', open: pendingId }, { path: `/requests/${pendingId}` }];
      case 'admin':
        return [
          ...common,
          { path: '/admin' },
          { path: '/admin/people' },
          { path: '/admin/access' },
          { path: '/admin/workloads' },
        ];
      case 'audrey':
        return [...common, { path: `/requests/${deniedId}` }, { path: '/admin/workloads' }];
    }
  }

  /**
   * Loads `path` once, then at each size (a resize, no reload: the layout is CSS) screenshots it and returns
   * its horizontal overflow and axe's serious findings.
   */
  async function judge(person: BrowserPerson, target: { path: string; open?: string }) {
    const { page } = person;
    await page.setViewportSize(DESKTOP);
    await page.goto(target.path);
    await page.locator('main h1').first().waitFor();
    if (target.open) {
      await page
        .locator(`tr[data-request-id="${target.open}"]`)
        .getByRole('button', { name: /^Open/ })
        .click();
      await page
        .locator(`section[data-request-id="${target.open}"]`)
        .getByTestId('requester-history')
        .waitFor();
    }
    await page.waitForTimeout(SETTLE_MS);
    const named = target.path.startsWith('/requests/') ? `request-${target.path.slice(-4)}` : target.path;
    const slug = `${named.replace(/[^a-zA-Z0-9]+/g, '-')}${target.open ? '-open' : ''}`.replace(
      /^-+|-+$/g,
      '',
    );
    const judged: Array<{ size: typeof PHONE; scrollWidth: number; serious: string[] }> = [];
    for (const size of [DESKTOP, PHONE]) {
      await page.setViewportSize(size);
      // Two frames: the resize's layout and paint are done before anything is measured.
      await page.evaluate('new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))');
      await page.screenshot({
        path: `${SHOTS}/${person.username}-${slug || 'home'}-${size.width}.png`,
        fullPage: true,
      });
      const scrollWidth = (await page.evaluate('document.documentElement.scrollWidth')) as number;
      judged.push({ size, scrollWidth, serious: await seriousAxeFindings(page) });
    }
    return judged;
  }

  it('fits every page of every role into 390 px without sideways scrolling, with no serious axe finding', async () => {
    const pendingId = await fileFromPage(people.alice!, {
      entitlementId: 'api-admin-token',
      durationSeconds: 1800,
      justification:
        'Rotate the admin API keys, a rather long justification to wrap on a phone (browser test)',
    });
    const findings: string[] = [];
    for (const name of Object.keys(people) as Array<keyof typeof people>) {
      const person = people[name]!;
      for (const target of pagesOf(name, pendingId)) {
        for (const { size, scrollWidth, serious } of await judge(person, target)) {
          const where = `${name} ${target.path}${target.open ? ' (open)' : ''} at ${size.width}`;
          if (size === PHONE && scrollWidth > PHONE.width)
            findings.push(`${where}: scrollWidth ${scrollWidth}`);
          findings.push(...serious.map((finding) => `${where}: ${finding}`));
        }
      }
    }
    // The pages without a session: sign-in (after sign-out, with its message) and enrollment without an invite.
    const visitor = await personAtBrowser(env!, 'visitor');
    for (const target of [{ path: '/login?signedOut=1' }, { path: '/enroll' }]) {
      for (const { size, scrollWidth, serious } of await judge(visitor, target)) {
        if (size === PHONE && scrollWidth > PHONE.width)
          findings.push(`${target.path}: scrollWidth ${scrollWidth}`);
        findings.push(...serious.map((finding) => `visitor ${target.path} at ${size.width}: ${finding}`));
      }
    }
    await visitor.context.close();
    expect(findings).toEqual([]);
  }, 180_000);

  it('folds the navigation behind a Menu button on a phone, and the skip link leads to the content', async () => {
    const { page } = people.admin!;
    await page.setViewportSize(PHONE);
    await page.goto('/');
    await page.locator('main h1').first().waitFor();
    const nav = page.getByRole('navigation', { name: 'Main' });
    expect(await nav.isVisible()).toBe(false);
    await page.getByRole('button', { name: 'Menu' }).click();
    await nav.getByRole('link', { name: 'Admin' }).click();
    await page.getByRole('heading', { name: 'Administration', level: 1 }).first().waitFor();
    await expect(page.title()).resolves.toBe('Administration — JIT access');
    expect(await nav.isVisible()).toBe(false);
    // Focus follows the navigation to the new page's heading.
    await expect(page.evaluate('document.activeElement?.tagName')).resolves.toBe('H1');
    await page.goto('/');
    await page.locator('main h1').first().waitFor();
    await page.keyboard.press('Tab');
    await expect(page.evaluate('document.activeElement?.textContent')).resolves.toBe('Skip to content');
  }, 30_000);
});
