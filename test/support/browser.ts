// The browser tests' setup (DESIGN §11): the web UI built once per file, the stack serving it, and Debian's
// Chromium with one context per person, each with Chrome's own virtual authenticator (CDP), so that
// enrollment, sign-in and step-ups are the real WebAuthn ceremonies of a browser.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from '@jest/globals';
import { chromium, type Browser, type BrowserContext, type CDPSession, type Page } from 'playwright-core';
import { PROJECT_ROOT, startStack, type TestStack } from './stack.js';

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

const execFileAsync = promisify(execFile);

/** One person at their own browser: a context (own cookies) with its own virtual passkey authenticator. */
export interface BrowserPerson {
  username: string;
  context: BrowserContext;
  page: Page;
  cdp: CDPSession;
  authenticatorId: string;
  /** Console errors and uncaught exceptions (a CSP violation shows up here). */
  problems: string[];
}

/** The built UI served by a fresh stack, and Chromium to look at it; `close()` in afterAll. */
export interface BrowserStack {
  stack: TestStack;
  browser: Browser;
  close(): Promise<void>;
}

/** Builds the web UI into a temporary directory, starts the stack serving it and launches Chromium. */
/** `options` go to startStack (a suite's own policy directory and environment); WEB_DIR is added. */
export async function startBrowserStack(
  options: { policyDir?: string; env?: Record<string, string> } = {},
): Promise<BrowserStack> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM}: install it with \`sudo apt-get install -y chromium\` ` +
        '(Debian/Ubuntu); the browser tests drive it through playwright-core.',
    );
  }
  const webDir = await mkdtemp(path.join(tmpdir(), 'jit-web-'));
  let stack: TestStack | undefined;
  try {
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
    stack = await startStack({ ...options, env: { ...options.env, WEB_DIR: webDir } });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
    const started = stack;
    return {
      stack: started,
      browser,
      async close() {
        await browser.close();
        await started.close();
        await rm(webDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await stack?.close();
    await rm(webDir, { recursive: true, force: true });
    throw error;
  }
}

/** A fresh context and page for `username`, with a virtual authenticator added before any ceremony. */
export async function personAtBrowser(
  { browser, stack }: BrowserStack,
  username: string,
): Promise<BrowserPerson> {
  const context = await browser.newContext({ baseURL: stack.origin });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: stack.origin });
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

/** Opens the invite link, creates the passkey and lands signed in (on `/`, or on the first workspace of someone who may request nothing). */
export async function enrollThroughUi(person: BrowserPerson, invite: string): Promise<void> {
  const answer = await person.page.goto(`/enroll?invite=${invite}`);
  expect(answer?.status()).toBe(200);
  expect(answer?.headers()['referrer-policy']).toBe('no-referrer');
  await person.page.getByRole('button', { name: 'Create passkey' }).click();
  await expect(person.page.getByTestId('signed-in-as').textContent()).resolves.toBe(person.username);
  // The one-time token is gone from the address bar (and the history entry) once read.
  expect(new URL(person.page.url()).pathname).not.toBe('/enroll');
  expect(person.page.url()).not.toContain(invite);
}

/** Files a request from the person's page (same origin, their session), as a script on the page would. */
export async function fileFromPage(person: BrowserPerson, body: Record<string, unknown>): Promise<string> {
  const answer = await person.page.evaluate(async (sent) => {
    const response = await fetch('/api/requests', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(sent),
    });
    return { status: response.status, body: (await response.json()) as { id: string } };
  }, body);
  expect(answer.status).toBe(201);
  return answer.body.id;
}

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: Array<{ target: unknown[] }>;
}

let axeSource: Promise<string> | undefined;

/** axe-core's serious and critical findings on the page as it is now, each `id: help at target`. */
export async function seriousAxeFindings(page: Page): Promise<string[]> {
  axeSource ??= readFile(path.join(PROJECT_ROOT, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
  // Evaluated over CDP, so the page's CSP (script-src 'self') does not apply to the checker itself.
  await page.evaluate(await axeSource);
  const violations = (await page.evaluate(
    `axe.run(document, { resultTypes: ['violations'] }).then((result) => result.violations)`,
  )) as AxeViolation[];
  return violations
    .filter((violation) => violation.impact === 'serious' || violation.impact === 'critical')
    .map(
      (violation) => `${violation.id}: ${violation.help} at ${JSON.stringify(violation.nodes[0]?.target)}`,
    );
}
