// The built web UI in Debian's Chromium (DESIGN §11): each person gets a browser context with Chrome's own
// virtual authenticator (CDP), so enrollment, sign-in and step-ups are the real WebAuthn ceremonies of a
// browser, checked by the broker exactly as for a person at a keyboard.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { chromium, type Browser, type BrowserContext, type CDPSession, type Page } from 'playwright-core';
import { inviteToken, PROJECT_ROOT, startStack, type TestStack } from '../support/stack.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const BUILD_TIMEOUT_MS = 60_000;
/** How long one UI step (a click and the answer it waits for) may take. */
const STEP_TIMEOUT_MS = 10_000;

const EXPECTED_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const execFileAsync = promisify(execFile);

/** One person at their own browser: a context (own cookies) with its own virtual passkey authenticator. */
interface BrowserPerson {
  username: string;
  context: BrowserContext;
  page: Page;
  cdp: CDPSession;
  authenticatorId: string;
  /** Console errors and uncaught exceptions (a CSP violation shows up here). */
  problems: string[];
}

describe('the web UI with passkeys in Chromium', () => {
  let webDir: string | undefined;
  let stack: TestStack | undefined;
  let browser: Browser | undefined;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `Chromium is not installed at ${CHROMIUM}: install it with \`sudo apt-get install -y chromium\` ` +
          '(Debian/Ubuntu); the browser tests drive it through playwright-core.',
      );
    }
    webDir = await mkdtemp(path.join(tmpdir(), 'jit-web-'));
    await execFileAsync(
      process.execPath,
      [
        path.join(PROJECT_ROOT, 'node_modules', 'vite', 'bin', 'vite.js'),
        'build',
        '--config',
        path.join(PROJECT_ROOT, 'apps', 'web', 'vite.config.ts'),
        '--outDir',
        webDir,
        '--logLevel',
        'warn',
      ],
      { cwd: PROJECT_ROOT, timeout: BUILD_TIMEOUT_MS },
    );
    stack = await startStack({ env: { WEB_DIR: webDir } });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await stack?.close();
    if (webDir) await rm(webDir, { recursive: true, force: true });
  }, 30_000);

  /** A fresh context and page for `username`, with a virtual authenticator added before any ceremony. */
  async function personAtBrowser(username: string): Promise<BrowserPerson> {
    const context = await browser!.newContext({ baseURL: stack!.origin });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: stack!.origin });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    const problems: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });
    return { username, context, page, cdp, authenticatorId, problems };
  }

  /** Opens the invite link, creates the passkey and lands signed in on the home page. */
  async function enrollThroughUi(person: BrowserPerson, invite: string): Promise<void> {
    const answer = await person.page.goto(`/enroll?invite=${invite}`);
    expect(answer?.status()).toBe(200);
    expect(answer?.headers()['referrer-policy']).toBe('no-referrer');
    await person.page.getByRole('button', { name: 'Create passkey' }).click();
    await expect(person.page.getByTestId('signed-in-as').textContent()).resolves.toBe(person.username);
    // The one-time token is gone from the address bar (and the history entry) once read.
    expect(new URL(person.page.url()).pathname).toBe('/');
    expect(person.page.url()).not.toContain(invite);
  }

  it('serves the UI with its security headers and leaves the API paths to the API', async () => {
    const page = await fetch(`${stack!.baseUrl}/approvals`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toBe(EXPECTED_CSP);
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    const html = await page.text();
    const script = html.match(/<script type="module" crossorigin src="(\/assets\/[^"]+\.js)"/)?.[1];
    expect(script).toBeDefined();

    const asset = await fetch(`${stack!.baseUrl}${script}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toMatch(/javascript/);
    expect(asset.headers.get('cache-control')).toContain('immutable');
    expect(asset.headers.get('content-security-policy')).toBe(EXPECTED_CSP);

    const missingAsset = await fetch(`${stack!.baseUrl}/assets/missing-0000.js`);
    expect(missingAsset.status).toBe(404);
    expect(missingAsset.headers.get('content-type')).toMatch(/^text\/plain/);

    // The API keeps its JSON envelope for unknown and protected paths alike; no HTML fallback there.
    for (const route of [
      '/api/nothing-here',
      '/api/me',
      '/health/nothing-here',
      '/.well-known/nothing-here',
    ]) {
      const answer = await fetch(`${stack!.baseUrl}${route}`);
      expect([401, 404]).toContain(answer.status);
      expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
      expect(answer.headers.get('content-security-policy')).toBeNull();
    }
  }, 30_000);

  it('enrolls alice and bob by invite; bob approves alice’s request with his passkey; alice activates it and sees the token once', async () => {
    const alice = await personAtBrowser('alice');
    const bob = await personAtBrowser('bob');

    await enrollThroughUi(alice, await inviteToken(stack!, 'alice'));
    await enrollThroughUi(bob, await inviteToken(stack!, 'bob'));

    // Sign out and back in: the discoverable passkey alone says who she is.
    await alice.page.getByRole('button', { name: 'Sign out' }).click();
    await alice.page.waitForURL('**/login');
    await alice.page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await expect(alice.page.getByTestId('signed-in-as').textContent()).resolves.toBe('alice');

    // alice files a request.
    await alice.page.getByLabel('Entitlement', { exact: true }).selectOption('api-admin-token');
    await alice.page.getByLabel(/^Duration in minutes/).fill('30');
    await alice.page.getByLabel(/^Justification/).fill('Rotate the admin API keys (browser test)');
    await alice.page.getByRole('button', { name: 'Request access' }).click();
    await alice.page.getByRole('status').filter({ hasText: 'It waits for 1 approval' }).waitFor();
    const aliceRow = alice.page.locator('tr[data-request-id]').filter({ hasText: 'api-admin-token' });
    await aliceRow.locator('[data-state="PENDING"]').waitFor();
    const requestId = (await aliceRow.getAttribute('data-request-id'))!;
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);

    // bob opens it from his inbox and approves with his passkey.
    await bob.page.getByRole('link', { name: 'Approvals' }).click();
    await bob.page
      .locator(`tr[data-request-id="${requestId}"]`)
      .getByRole('button', { name: /^Open/ })
      .click();
    const decision = bob.page.locator(`section[data-request-id="${requestId}"]`);
    await decision.getByText('Rotate the admin API keys (browser test)').waitFor();
    await decision.getByLabel('Comment (optional)').fill('Go ahead');
    await decision.getByRole('button', { name: 'Approve with passkey' }).click();
    await bob.page.getByRole('status').filter({ hasText: 'it is now APPROVED' }).waitFor();
    await bob.page.getByText('Nothing waits for you.').waitFor();

    // alice sees it approved and activates it with her passkey: the token is shown, once.
    await alice.page.getByRole('button', { name: 'Refresh' }).click();
    await aliceRow.locator('[data-state="APPROVED"]').waitFor();
    await aliceRow.getByRole('button', { name: 'Activate' }).click();
    const tokenField = alice.page.locator('[data-credential-field="token"]');
    await tokenField.waitFor();
    const token = (await tokenField.textContent())!;
    expect(token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    await alice.page.getByText('it is shown only this once and cannot be shown again').waitFor();
    await alice.page.getByRole('button', { name: 'Copy access token' }).click();
    await alice.page.getByText('Copied', { exact: true }).waitFor();
    await expect(alice.page.evaluate('navigator.clipboard.readText()')).resolves.toBe(token);
    await aliceRow.locator('[data-state="ACTIVE"]').waitFor();
    await alice.page.getByRole('button', { name: 'I have copied it' }).click();
    await tokenField.waitFor({ state: 'detached' });
    await alice.page.reload();
    await aliceRow.locator('[data-state="ACTIVE"]').waitFor();
    expect(await alice.page.content()).not.toContain(token);

    // The database holds bob's approval with its WebAuthn evidence, made by the passkey in bob's browser.
    const { rows: approvals } = await stack!.db.query(
      `SELECT a.decision, a.comment, u.username AS approver, a.credential_id AS "credentialId",
              convert_from(a.client_data_json, 'UTF8') AS "clientDataJson",
              length(a.signature) > 0 AS signed, length(a.authenticator_data) >= 37 AS "hasAuthenticatorData",
              a.nonce, a.subject_digest AS "subjectDigest"
         FROM approvals a JOIN users u ON u.id = a.approver_id
        WHERE a.request_id = $1`,
      [requestId],
    );
    expect(approvals).toHaveLength(1);
    const [approval] = approvals;
    expect(approval).toMatchObject({
      decision: 'approve',
      comment: 'Go ahead',
      approver: 'bob',
      signed: true,
      hasAuthenticatorData: true,
      nonce: expect.stringMatching(/^[\w-]+$/),
      subjectDigest: expect.stringMatching(/^[\w-]{43}$/),
    });
    const clientData = JSON.parse(approval.clientDataJson);
    expect(clientData).toMatchObject({ type: 'webauthn.get', origin: stack!.origin });
    const { credentials } = await bob.cdp.send('WebAuthn.getCredentials', {
      authenticatorId: bob.authenticatorId,
    });
    expect(credentials).toHaveLength(1);
    expect(credentials[0].isResidentCredential).toBe(true);
    expect(Buffer.from(credentials[0].credentialId, 'base64').toString('base64url')).toBe(
      approval.credentialId,
    );

    const { rows: state } = await stack!.db.query(
      `SELECT r.state, g.id AS "grantId", g.state AS "grantState"
         FROM elevation_requests r JOIN grants g ON g.request_id = r.id
        WHERE r.id = $1`,
      [requestId],
    );
    expect(state).toEqual([{ state: 'ACTIVE', grantId: expect.any(String), grantState: 'ACTIVE' }]);
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
    expect(claims).toMatchObject({ jti: state[0].grantId, aud: 'https://api.example.com' });

    // An early revoke takes one more step-up, bound to the same request.
    await aliceRow.getByRole('button', { name: 'Revoke…' }).click();
    await aliceRow.getByLabel('Why revoke now?').fill('Done early');
    await aliceRow.getByRole('button', { name: 'Revoke', exact: true }).click();
    await aliceRow.locator('[data-state="REVOKED"]').waitFor();

    expect([...alice.problems, ...bob.problems]).toEqual([]);
    await alice.context.close();
    await bob.context.close();
  }, 60_000);

  it('lets an admin invite someone, suspend and reinstate them, and reload the policy, each with a step-up', async () => {
    const admin = await personAtBrowser('erin');
    await enrollThroughUi(admin, await inviteToken(stack!, 'erin', ['admin']));

    // The invite's step-up signs exactly the body the page then sends (invite.create, subject the username).
    await admin.page.getByRole('link', { name: 'Admin' }).click();
    await admin.page.getByLabel('Username').fill('frank');
    await admin.page.getByLabel('Display name (optional)').fill('Frank');
    await admin.page.getByLabel('auditor').check();
    await admin.page.getByRole('button', { name: 'Create invite with passkey' }).click();
    const link = (await admin.page.getByTestId('invite-url').textContent())!;
    expect(link).toMatch(new RegExp(`^${stack!.origin}/enroll\\?invite=[\\w-]{43}$`));

    const frank = await personAtBrowser('frank');
    await enrollThroughUi(frank, new URL(link).searchParams.get('invite')!);
    const { rows: created } = await stack!.db.query(
      `SELECT display_name AS "displayName", roles, status FROM users WHERE username = 'frank'`,
    );
    expect(created).toEqual([{ displayName: 'Frank', roles: ['auditor'], status: 'active' }]);

    // Suspending ends frank's session at once; his next page load lands on the sign-in page (after a 401,
    // which the console reports: frank's console is checked before that).
    expect(frank.problems).toEqual([]);
    const frankRow = admin.page.locator('tr').filter({ hasText: 'frank' });
    await frankRow.getByRole('button', { name: 'Suspend…' }).click();
    await frankRow.getByLabel('Why suspend?').fill('Laptop lost');
    await frankRow.getByRole('button', { name: 'Suspend with passkey' }).click();
    await admin.page.getByRole('status').filter({ hasText: 'frank is now suspended' }).waitFor();
    await frank.page.reload();
    await frank.page.waitForURL('**/login');

    await frankRow.getByRole('button', { name: 'Reinstate…' }).click();
    await frankRow.getByLabel('Why reinstate?').fill('Laptop found');
    await frankRow.getByRole('button', { name: 'Reinstate with passkey' }).click();
    await admin.page.getByRole('status').filter({ hasText: 'frank is now active' }).waitFor();

    await admin.page.getByRole('button', { name: 'Reload policy with passkey' }).click();
    await admin.page.getByRole('status').filter({ hasText: 'have not changed' }).waitFor();

    const { rows: events } = await stack!.db.query(
      `SELECT action FROM audit_events
        WHERE action IN ('invite.created', 'user.suspended', 'user.reinstated') ORDER BY seq`,
    );
    expect(events.map((event) => event.action)).toEqual(
      expect.arrayContaining(['invite.created', 'user.suspended', 'user.reinstated']),
    );
    expect(admin.problems).toEqual([]);
    await admin.context.close();
    await frank.context.close();
  }, 45_000);
});
