// The built web UI in Debian's Chromium (DESIGN §11): each person gets a browser context with Chrome's own
// virtual authenticator (CDP), so enrollment, sign-in and step-ups are the real WebAuthn ceremonies of a
// browser, checked by the broker exactly as for a person at a keyboard.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Page } from 'playwright-core';
import {
  enrollThroughUi,
  fileFromPage,
  personAtBrowser as personIn,
  startBrowserStack,
  type BrowserPerson,
  type BrowserStack,
} from '../support/browser.js';
import { inviteToken, type TestStack } from '../support/stack.js';

const EXPECTED_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

describe('the web UI with passkeys in Chromium', () => {
  let browserStack: BrowserStack | undefined;
  let stack: TestStack | undefined;

  beforeAll(async () => {
    browserStack = await startBrowserStack();
    stack = browserStack.stack;
  }, 90_000);

  afterAll(async () => {
    await browserStack?.close();
  }, 30_000);

  const personAtBrowser = (username: string) => personIn(browserStack!, username);

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
      // Not the page's policy: /api answers carry the API's own deny-all CSP, the others none.
      expect(answer.headers.get('content-security-policy')).toBe(
        route.startsWith('/api/')
          ? "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
          : null,
      );
    }
  }, 30_000);

  it('enrolls alice and bob by invite; bob approves alice’s request with his passkey; alice activates it and sees the token once', async () => {
    const alice = await personAtBrowser('alice');
    const bob = await personAtBrowser('bob');

    await enrollThroughUi(alice, await inviteToken(stack!, 'alice'));
    await enrollThroughUi(bob, await inviteToken(stack!, 'bob'));

    // Sign out and back in: the discoverable passkey alone says who she is.
    await alice.page.getByRole('button', { name: 'Sign out' }).click();
    await alice.page.waitForURL('**/login?signedOut=1');
    await alice.page.getByRole('status').filter({ hasText: 'You have signed out.' }).waitFor();
    await alice.page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await expect(alice.page.getByTestId('signed-in-as').textContent()).resolves.toBe('alice');

    // alice files a request.
    await alice.page.getByLabel('Entitlement', { exact: true }).selectOption('api-admin-token');
    await alice.page.getByLabel(/^Duration in minutes/).fill('30');
    await alice.page.getByLabel(/^Justification/).fill('Rotate the admin API keys (browser test)');
    await alice.page.getByRole('button', { name: 'Request access' }).click();
    await alice.page.getByRole('status').filter({ hasText: 'It waits for 1 approval' }).waitFor();
    const aliceRow = alice.page
      .locator('tr[data-request-id]')
      .filter({ hasText: 'Admin API, read/write token' });
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
    await alice.page.getByRole('button', { name: 'I have stored it' }).click();
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
    await admin.page.getByRole('link', { name: 'People' }).click();
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
    await frank.page.waitForURL('**/login?next=%2Faudit');

    await frankRow.getByRole('button', { name: 'Reinstate…' }).click();
    await frankRow.getByLabel('Why reinstate?').fill('Laptop found');
    await frankRow.getByRole('button', { name: 'Reinstate with passkey' }).click();
    await admin.page.getByRole('status').filter({ hasText: 'frank is now active' }).waitFor();

    await admin.page.getByRole('link', { name: 'Admin', exact: true }).click();
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

  /** The approver opens the request from the inbox (it appears there live) and approves it with a passkey. */
  async function approveInUi(approver: BrowserPerson, requestId: string): Promise<void> {
    const row = approver.page.locator(`tr[data-request-id="${requestId}"]`);
    await row.getByRole('button', { name: /^Open/ }).click();
    const decision = approver.page.locator(`section[data-request-id="${requestId}"]`);
    await decision.getByRole('button', { name: 'Approve with passkey' }).click();
    await approver.page.getByRole('status').filter({ hasText: 'it is now APPROVED' }).waitFor();
  }

  /** The credential dialog is open, entirely within the viewport, and holds the focus. */
  async function expectDialogInViewWithFocus(page: Page): Promise<void> {
    const dialog = page.getByTestId('credential-dialog');
    await dialog.waitFor();
    // A string: the test files compile without the DOM library.
    const placement = await page.evaluate(`(() => {
      const element = document.querySelector('[data-testid="credential-dialog"]');
      const box = element.getBoundingClientRect();
      return {
        open: element.open,
        inView: box.top >= 0 && box.left >= 0 && box.bottom <= innerHeight && box.right <= innerWidth,
        focused: element.contains(document.activeElement),
      };
    })()`);
    expect(placement).toEqual({ open: true, inView: true, focused: true });
  }

  it('updates the requester’s page live: APPROVED when approved elsewhere, ENDED at notAfter with the token hidden', async () => {
    const carol = await personAtBrowser('carol');
    const dave = await personAtBrowser('dave');
    await enrollThroughUi(carol, await inviteToken(stack!, 'carol'));
    await enrollThroughUi(dave, await inviteToken(stack!, 'dave'));
    await carol.page.setViewportSize({ width: 1280, height: 800 });
    await dave.page.getByRole('link', { name: 'Approvals' }).click();
    await dave.page.getByText('Nothing waits for you.').waitFor();
    // Any reload of carol's page would drop this marker.
    await carol.page.evaluate('window.notReloaded = true');

    // Dave opens a request; carol cancels it meanwhile: dave is told before any passkey prompt.
    const cancelled = await fileFromPage(carol, {
      entitlementId: 'api-admin-token',
      durationSeconds: 60,
      justification: 'Cancelled while open (browser test)',
    });
    await dave.page
      .locator(`tr[data-request-id="${cancelled}"]`)
      .getByRole('button', { name: /^Open/ })
      .click();
    const panel = dave.page.locator(`section[data-request-id="${cancelled}"]`);
    await panel.getByRole('button', { name: 'Approve with passkey' }).waitFor();
    const signCount = async () =>
      (await dave.cdp.send('WebAuthn.getCredentials', { authenticatorId: dave.authenticatorId }))
        .credentials[0].signCount;
    const countBefore = await signCount();
    await carol.page.evaluate((id) => fetch(`/api/requests/${id}/cancel`, { method: 'POST' }), cancelled);
    await panel.getByRole('alert').filter({ hasText: 'it is now CANCELLED' }).waitFor();
    expect(await panel.getByRole('button', { name: 'Approve with passkey' }).count()).toBe(0);
    expect(await signCount()).toBe(countBefore);
    await panel.getByRole('button', { name: 'Close' }).click();

    // A short request: carol's row turns PENDING, then APPROVED, without a reload.
    const requestId = await fileFromPage(carol, {
      entitlementId: 'api-admin-token',
      durationSeconds: 8,
      justification: 'Watch it end (browser test)',
    });
    const row = carol.page.locator(`tr[data-request-id="${requestId}"]`);
    await row.locator('[data-state="PENDING"]').waitFor();
    await approveInUi(dave, requestId);
    await row.locator('[data-state="APPROVED"]').waitFor();

    // Activation: the credential dialog is in view and focused, with a ready-to-run command.
    await row.getByRole('button', { name: 'Activate' }).click();
    await expectDialogInViewWithFocus(carol.page);
    const token = (await carol.page.locator('[data-credential-field="token"]').textContent())!;
    await expect(carol.page.locator('[data-credential-hint="jwt"]').textContent()).resolves.toBe(
      `curl -H "Authorization: Bearer ${token}" https://api.example.com`,
    );
    await carol.page.screenshot({ path: '/tmp/u1-shots/credential-1280.png' });
    // Escape asks first; keeping it open keeps the credential.
    await carol.page.keyboard.press('Escape');
    await carol.page.getByRole('button', { name: 'Keep it open' }).click();
    await carol.page.locator('[data-credential-field="token"]').waitFor();

    // At notAfter (PostgreSQL's clock) the row says ENDED within 2 s and the token is gone from the page.
    const { rows } = await stack!.db.query(
      `SELECT extract(epoch FROM ends_at - clock_timestamp()) * 1000 AS "leftMs" FROM elevation_requests WHERE id = $1`,
      [requestId],
    );
    const endsIn = Math.max(0, Number(rows[0].leftMs));
    await row.locator('[data-state="ENDED"]').waitFor({ timeout: endsIn + 2000 });
    await carol.page.locator('[data-credential-field="token"]').waitFor({ state: 'detached', timeout: 1000 });
    expect(await carol.page.content()).not.toContain(token);
    expect(await row.getByRole('button', { name: 'Revoke…' }).count()).toBe(0);
    await expect(carol.page.evaluate('window.notReloaded')).resolves.toBe(true);
    await carol.page.getByRole('button', { name: 'I have stored it' }).click();

    // On a phone: the dialog fits and takes the focus too.
    await carol.page.setViewportSize({ width: 390, height: 844 });
    const second = await fileFromPage(carol, {
      entitlementId: 'api-admin-token',
      durationSeconds: 600,
      justification: 'On a phone (browser test)',
    });
    await approveInUi(dave, second);
    const phoneRow = carol.page.locator(`tr[data-request-id="${second}"]`);
    await phoneRow.getByRole('button', { name: 'Activate' }).click();
    await expectDialogInViewWithFocus(carol.page);
    await carol.page.screenshot({ path: '/tmp/u1-shots/credential-390.png' });
    await carol.page.getByRole('button', { name: 'I have stored it' }).click();

    expect([...carol.problems, ...dave.problems]).toEqual([]);
    await carol.context.close();
    await dave.context.close();
  }, 60_000);
});
