// The web console in a real browser (Debian's chromium through
// playwright-core). The main suite signs people in through a real OAuth 2.0
// server in this process (oidc-provider as the Keycloak realm nt24-idp, see
// test/support/oauthServer.ts): the console is the public client
// webhook-console, and the browser goes through the realm's login page with
// the authorization code flow and PKCE. An integration developer sees only
// their organization's endpoints, gets a validation error next to the field
// it names, registers an endpoint and copies its secret, edits, pauses and
// rotates it, and signs out; they do it all again with the keyboard alone;
// on a phone-sized screen they delete it; an
// auditor sees every webhook at a past instant, a timeline with its diff,
// and the tamper check, which names the stream of an event altered in the
// file. A last suite runs the server as `npm start` starts
// it, with no OIDC_ISSUER: the development sign-in. axe-core checks the
// WCAG 2.1 A and AA rules on the main screens.
// Screenshots go to test-results/console/ (ignored by git).
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { AxeBuilder } from '@axe-core/playwright';
import Database from 'better-sqlite3';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConsole } from '../../console/build.ts';
import { CONSOLE_CLIENT_ID } from '../../src/http/devSignIn.ts';
import { loadConfig } from '../../src/config.ts';
import { EVENTS_FILE } from '../../src/runtime.ts';
import { webhookStreamName } from '../../src/stores/eventStore.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { BROWSER_SETUP_TIMEOUT_MS, ensureChromium } from '../support/browser.ts';
import { REPO_ROOT } from '../support/cli.ts';
import { startOAuthServer, type OAuthServer } from '../support/oauthServer.ts';
import { freePort } from '../support/ports.ts';
import { DEFAULT_CLIENTS, PARTNER_A, SQLITE_ENGINES, tempDataDir } from '../support/registry.ts';

const SHOTS = path.join(REPO_ROOT, 'test-results', 'console');
/** Evaluated in the page (a string: this file is compiled without the DOM's types): the focused element's id. */
const ACTIVE_ID = 'document.activeElement && document.activeElement.id';
const PASSWORDS = { ada: 'ada-password-1', grace: 'grace-password-1' } as const;

let browser: Browser;

/** axe-core's WCAG 2.1 A and AA rules on the page as it is now: each violation as "rule: the elements". */
async function accessibilityViolations(page: Page): Promise<string[]> {
  const result = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  return result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

beforeAll(async () => {
  const chromiumPath = await ensureChromium();
  await buildConsole();
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
}, BROWSER_SETUP_TIMEOUT_MS);

afterAll(async () => {
  await browser?.close();
});

/**
 * A page that records every console error, page error, failed request, and
 * request to an origin other than `origins`; API answers of 400 and above
 * separately (the browser reports each in its console too, as "Failed to
 * load resource", so those lines are left to that list).
 */
async function openPage(origins: string[], width = 1280, height = 800): Promise<{ page: Page; problems: string[]; apiErrors: string[] }> {
  const context = await browser.newContext({ viewport: { width, height } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: origins[0]! });
  const page = await context.newPage();
  const problems: string[] = [];
  const apiErrors: string[] = [];
  page.on('response', (response) => {
    if (response.status() >= 400) {
      const route = new URL(response.url()).pathname.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, ':id');
      apiErrors.push(`${response.request().method()} ${route} ${response.status()}`);
    }
  });
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    if (/^Failed to load resource: the server responded with a status of 4\d\d/.test(message.text())) return;
    problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page: ${error.message}`));
  page.on('requestfailed', (request) => problems.push(`failed: ${request.url()}`));
  page.on('request', (request) => {
    if (!origins.some((origin) => request.url().startsWith(`${origin}/`))) problems.push(`foreign: ${request.url()}`);
  });
  return { page, problems, apiErrors };
}

describe('the web console in chromium, signed in through the OAuth server (Keycloak realm stand-in)', () => {
  let oauth: OAuthServer;
  let server: RunningServer;
  let dataDir: string;
  let base: string;
  /** An instant while the developer's endpoint was paused (the auditor asks for the state then). */
  let pausedAt: string | undefined;

  beforeAll(async () => {
    // The console's redirect URI must be registered exactly, so the registry's port is chosen first.
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    oauth = await startOAuthServer({
      // Short enough that the console renews a token within a test (it does so a minute before expiry).
      tokenTtlSeconds: 66,
      clients: DEFAULT_CLIENTS,
      publicClients: [{ clientId: CONSOLE_CLIENT_ID, redirectUris: [`${base}/console/`] }],
      users: [
        { username: 'ada', password: PASSWORDS.ada, name: 'Ada Lovelace', orgId: 'acme', partnerIds: [PARTNER_A], scopes: ['webhooks:read', 'webhooks:write'] },
        // As Keycloak gives her: read and write are not role-gated (they refuse a token without an org), audit is.
        { username: 'grace', password: PASSWORDS.grace, name: 'Grace Hopper', scopes: ['webhooks:read', 'webhooks:write', 'webhooks:audit'] },
      ],
    });
    dataDir = tempDataDir();
    server = await startRegistryAt(port, oauth.audience);
  }, BROWSER_SETUP_TIMEOUT_MS);

  const startRegistryAt = (port: number, audience: string) =>
    startServer(
      loadConfig({
        ...SQLITE_ENGINES,
        NODE_ENV: 'test',
        DATA_DIR: dataDir,
        HOST: '127.0.0.1',
        PORT: String(port),
        LOG_LEVEL: 'silent',
        OIDC_ISSUER: oauth.issuer,
        OIDC_AUDIENCE: audience,
      }),
    );

  afterAll(async () => {
    await server?.close();
    await oauth?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const open = (width?: number, height?: number) => openPage([base, oauth.origin], width, height);

  async function signIn(page: Page, username: keyof typeof PASSWORDS): Promise<void> {
    await page.goto(`${base}/console`);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL((url) => url.href.startsWith(`${oauth.issuer}/login-actions/authenticate/`));
    await page.getByLabel('Username or email').fill(username);
    await page.getByLabel('Password').fill(PASSWORDS[username]);
    await page.getByRole('button', { name: 'Sign In' }).click();
    await page.getByText('Signed in as').waitFor();
  }

  it('signs a developer in, shows only their endpoints, and registers one whose secret is copied once', { timeout: 90_000 }, async () => {
    // Another organization's endpoint, registered over the API by its integration's service account.
    const globexToken = await oauth.getToken('globex-integration');
    const other = await fetch(`${base}/v1/webhooks`, {
      method: 'POST',
      headers: { authorization: `Bearer ${globexToken}`, 'content-type': 'application/json', 'idempotency-key': 'console-test-globex' },
      body: JSON.stringify({ url: 'https://globex.example.com/hooks', events: ['kyc.*'] }),
    });
    expect(other.status).toBe(201);

    const { page, problems, apiErrors } = await open();
    // A wrong password is refused at the login page.
    await page.goto(`${base}/console`);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByLabel('Username or email').fill('ada');
    await page.getByLabel('Password').fill('not-her-password');
    await page.getByRole('button', { name: 'Sign In' }).click();
    await page.getByRole('alert').filter({ hasText: 'Invalid username or password.' }).waitFor();
    await signIn(page, 'ada');
    // The code and state are off the address bar once used, and the name comes from the ID token.
    expect(new URL(page.url()).search).toBe('');
    await expect(page.getByText('Signed in as').innerText()).resolves.toContain('Ada Lovelace');
    // Her roles allow no webhooks:audit: the realm left it out of her token, and the console shows no compliance screens.
    expect(await page.getByRole('heading', { name: 'Compliance' }).count()).toBe(0);
    await page.getByText('No endpoints yet.').waitFor();
    expect(await page.content()).not.toContain('globex.example.com');
    await page.screenshot({ path: path.join(SHOTS, '1-signed-in.png'), fullPage: true });
    expect(await accessibilityViolations(page)).toEqual([]);

    // A URL the policy refuses: the words appear next to the URL field, which gets the focus.
    await page.getByLabel('Endpoint URL (https)').fill('http://plain.example.com/hooks');
    await page.getByLabel('Event types').fill('kyc.*');
    await page.getByRole('button', { name: 'Register' }).click();
    const urlError = page.locator('#new-url-error');
    await urlError.waitFor();
    expect(await urlError.innerText()).toMatch(/https/i);
    await expect(page.getByLabel('Endpoint URL (https)').getAttribute('aria-invalid')).resolves.toBe('true');
    await expect.poll(() => page.evaluate(ACTIVE_ID), { timeout: 5000 }).toBe('new-url');
    await page.screenshot({ path: path.join(SHOTS, '2-validation-error.png'), fullPage: true });

    await page.getByLabel('Endpoint URL (https)').fill('https://acme.example.com/hooks');
    await page.getByRole('button', { name: 'Register' }).click();
    const secret = page.getByTestId('secret');
    await secret.waitFor();
    const shown = await secret.innerText();
    expect(shown).toMatch(/^whsec_[A-Za-z0-9+/=]+$/);
    await expect.poll(() => page.evaluate(ACTIVE_ID), { timeout: 5000 }).toBe('secret-heading');
    expect(await page.getByText('it is shown only this once').count()).toBe(1);
    await page.getByRole('button', { name: 'Copy secret' }).click();
    await page.getByText('Copied to the clipboard.').waitFor();
    await expect(page.evaluate('navigator.clipboard.readText()')).resolves.toBe(shown);
    const row = page.locator('tr', { hasText: 'https://acme.example.com/hooks' });
    await row.waitFor();
    expect(await row.innerText()).toContain('ACTIVE');
    await page.screenshot({ path: path.join(SHOTS, '3-secret-shown-once.png'), fullPage: true });
    expect(await accessibilityViolations(page)).toEqual([]);

    // Once dismissed, the secret is nowhere on the page.
    await page.getByRole('button', { name: 'I have stored it' }).click();
    expect(await page.content()).not.toContain(shown);

    // Manage it: an edit the API refuses shows its words at the events field, then a good edit, a pause and a rotation.
    await page.getByRole('button', { name: 'Manage https://acme.example.com/hooks' }).click();
    await expect.poll(() => page.evaluate(ACTIVE_ID), { timeout: 5000 }).toBe('manage-heading');
    await page.locator('#edit-events').fill('kyc.*, trading.nothing');
    await page.getByRole('button', { name: 'Save changes' }).click();
    const eventsError = page.locator('#edit-events-error');
    await eventsError.waitFor();
    expect(await eventsError.innerText()).toMatch(/^Entry 2 /);
    await expect.poll(() => page.evaluate(ACTIVE_ID), { timeout: 5000 }).toBe('edit-events');
    await page.screenshot({ path: path.join(SHOTS, '4-edit-error.png'), fullPage: true });
    expect(await accessibilityViolations(page)).toEqual([]);
    await page.locator('#edit-events').fill('kyc.*, compliance.case.opened');
    // The edit form says what each pattern covers, from the catalog, as the create form does.
    const help = page.locator('section[aria-labelledby="manage-heading"] .pattern-help');
    await expect(help.innerText()).resolves.toBe('kyc.*: 6 event types\ncompliance.case.opened: one event type');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    await row.filter({ hasText: 'compliance.case.opened' }).waitFor();
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.getByRole('status').filter({ hasText: 'Paused' }).waitFor();
    await row.filter({ hasText: 'PAUSED' }).waitFor();
    pausedAt = new Date().toISOString();
    await page.getByLabel('Grace period for the current secret').selectOption('3600');
    await page.getByRole('button', { name: 'Rotate secret' }).click();
    await page.getByText('New signing secret').waitFor();
    const rotated = await page.getByTestId('secret').innerText();
    expect(rotated).toMatch(/^whsec_/);
    expect(rotated).not.toBe(shown);
    await expect.poll(() => page.evaluate(ACTIVE_ID), { timeout: 5000 }).toBe('secret-heading');
    await page.screenshot({ path: path.join(SHOTS, '5-paused-and-rotated.png'), fullPage: true });
    await page.getByRole('button', { name: 'I have stored it' }).click();
    await page.getByRole('button', { name: 'Resume' }).click();
    await row.filter({ hasText: 'ACTIVE' }).waitFor();

    // Filters: an event pattern nobody used lists nothing.
    await page.getByLabel('Event pattern').fill('compliance.*');
    await page.getByLabel('Event pattern').press('Enter');
    await page.getByText('No endpoints match these filters.').waitFor();
    // A pattern the API refuses: its words next to the filter.
    await page.getByLabel('Event pattern').fill('kyc.');
    await page.getByLabel('Event pattern').press('Enter');
    await page.locator('#filter-event-error').waitFor();
    await expect(page.getByLabel('Event pattern').getAttribute('aria-invalid')).resolves.toBe('true');

    // Signing out ends the realm's session too: signing in again asks for the password.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${base}/console/`);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByLabel('Password').waitFor();
    expect(problems).toEqual([]);
    // The answers of 400 and above: the registration the URL policy refused, the refused edit and the refused filter.
    expect(apiErrors).toEqual(['POST /v1/webhooks 400', 'PATCH /v1/webhooks/:id 400', 'GET /v1/webhooks 400']);
  });

  it('works with the keyboard alone: register, manage and delete an endpoint', { timeout: 60_000 }, async () => {
    const { page, problems, apiErrors } = await open();
    await signIn(page, 'ada');
    await page.locator('#list-heading').waitFor();
    /** Tab (at most 60 times) until the focused element is the one with this id or accessible name. */
    const tabTo = async (target: string) => {
      const focused = `(() => { const e = document.activeElement; return e ? [e.id, e.getAttribute('aria-label') || e.textContent.trim()] : []; })()`;
      for (let i = 0; i < 60; i++) {
        await page.keyboard.press('Tab');
        if ((await page.evaluate<string[]>(focused)).includes(target)) return;
      }
      throw new Error(`Tab never reached ${target}`);
    };
    await tabTo('new-url');
    await page.keyboard.type('https://acme.example.com/keyboard');
    await tabTo('new-events');
    await page.keyboard.type('kyc.verification.approved');
    await page.keyboard.press('Enter');
    await page.getByTestId('secret').waitFor();
    await expect.poll(() => page.evaluate(ACTIVE_ID), { timeout: 5000 }).toBe('secret-heading');
    await tabTo('I have stored it');
    await page.keyboard.press('Enter');
    const row = page.locator('tr', { hasText: 'https://acme.example.com/keyboard' });
    await row.waitFor();
    await tabTo('Manage https://acme.example.com/keyboard');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.evaluate(ACTIVE_ID), { timeout: 5000 }).toBe('manage-heading');
    await tabTo('Delete…');
    await page.keyboard.press('Enter');
    await tabTo('Yes, delete it');
    await page.keyboard.press('Enter');
    await row.waitFor({ state: 'detached' });
    await expect.poll(() => page.evaluate(ACTIVE_ID), { timeout: 5000 }).toBe('list-heading');
    expect(problems).toEqual([]);
    expect(apiErrors).toEqual([]);
  });

  it('is usable on a phone-sized screen, and deletes after a confirmation', { timeout: 60_000 }, async () => {
    const { page, problems, apiErrors } = await open(390, 844);
    await signIn(page, 'ada');
    await page.locator('tr', { hasText: 'https://acme.example.com/hooks' }).waitFor();
    // Nothing wider than the screen.
    const overflow = await page.evaluate('document.documentElement.scrollWidth - window.innerWidth');
    expect(overflow).toBeLessThanOrEqual(0);
    await page.screenshot({ path: path.join(SHOTS, '6-phone.png'), fullPage: true });
    expect(await accessibilityViolations(page)).toEqual([]);
    // Delete, after a confirmation: the row goes, and the focus returns to the list.
    await page.getByRole('button', { name: 'Manage https://acme.example.com/hooks' }).click();
    await page.getByRole('button', { name: 'Delete…' }).click();
    await page.getByRole('button', { name: 'Yes, delete it' }).click();
    await page.getByText('No endpoints yet.').waitFor();
    await expect.poll(() => page.evaluate(ACTIVE_ID), { timeout: 5000 }).toBe('list-heading');
    expect(problems).toEqual([]);
    expect(apiErrors).toEqual([]);
  });

  it('shows an auditor every webhook at a past instant, one webhook’s timeline with its changes, and the tamper check', { timeout: 60_000 }, async () => {
    expect(pausedAt, 'the developer test ran first').toBeDefined();
    const { page, problems, apiErrors } = await open();
    await signIn(page, 'grace');
    await page.getByRole('heading', { name: 'Compliance' }).waitFor();

    await page.getByLabel('Instant (RFC 3339)').fill(pausedAt!);
    await page.getByRole('button', { name: 'Show the state' }).click();
    const acme = page.locator('tr', { hasText: 'https://acme.example.com/hooks' });
    await acme.waitFor();
    // Deleted since, but paused at that instant; another organization's webhook is there too.
    expect(await acme.innerText()).toContain('PAUSED');
    await page.locator('tr', { hasText: 'https://globex.example.com/hooks' }).waitFor();
    await page.getByLabel('Organization (optional)').fill('globex');
    await page.getByRole('button', { name: 'Show the state' }).click();
    await acme.waitFor({ state: 'detached' });
    await page.getByLabel('Organization (optional)').fill('');
    await page.getByRole('button', { name: 'Show the state' }).click();
    await page.screenshot({ path: path.join(SHOTS, '7-state-at-instant.png'), fullPage: true });

    await page.getByRole('button', { name: 'History of https://acme.example.com/hooks' }).click();
    await expect.poll(() => page.evaluate(ACTIVE_ID), { timeout: 5000 }).toBe('timeline-heading');
    await page.getByText('Hash chain intact').waitFor();
    const timeline = page.locator('.timeline');
    for (const title of ['Registered', 'Updated', 'Paused', 'Secret rotated', 'Resumed', 'Deleted']) {
      await timeline.getByText(title, { exact: true }).first().waitFor();
    }
    const text = await timeline.innerText();
    expect(text).toContain('compliance.case.opened');
    expect(text).toContain('[redacted]');
    // Who did it: the console, as Ada's user id in the realm.
    expect(text).toContain(`${CONSOLE_CLIENT_ID} (${oauth.userIdFor('ada')})`);
    expect(await page.content()).not.toMatch(/whsec_/);
    await page.screenshot({ path: path.join(SHOTS, '8-timeline.png'), fullPage: true });

    // The tamper check: nothing altered yet; then an event changed in the file is named by its stream and revision.
    const webhookId = (await page.locator('#timeline-heading').innerText()).replace('History of ', '');
    const check = page.getByRole('button', { name: 'Run the tamper check' });
    await check.click();
    const verdict = page.locator('#verify-result');
    await verdict.waitFor();
    expect(await verdict.innerText()).toMatch(/^No damage found: \d+ events in \d+ streams checked/);
    await expect.poll(() => page.evaluate(ACTIVE_ID), { timeout: 5000 }).toBe('verify-result');
    const events = new Database(path.join(dataDir, EVENTS_FILE));
    try {
      const altered = events
        .prepare("UPDATE events SET data = json_set(data, '$.changes.url', 'https://evil.example.com/x') WHERE stream_id = ? AND revision = 1")
        .run(webhookStreamName(webhookId));
      expect(altered.changes).toBe(1);
    } finally {
      events.close();
    }
    await check.click();
    await verdict.filter({ hasText: 'Damage found' }).waitFor();
    expect(await verdict.innerText()).toBe(`Damage found: 1 stream altered, the first is ${webhookStreamName(webhookId)} at revision 1.`);
    expect(await page.locator('.findings').innerText()).toContain(`Stream ${webhookStreamName(webhookId)}: broken at revision 1: the event is not the one that was written`);
    await page.screenshot({ path: path.join(SHOTS, '9-tamper-check.png'), fullPage: true });
    expect(await accessibilityViolations(page)).toEqual([]);
    expect(problems).toEqual([]);
    expect(apiErrors).toEqual([]);
  });

  it('renews the access token with the refresh token, and says so when the registry refuses the session', { timeout: 60_000 }, async () => {
    const { page, problems, apiErrors } = await open();
    /** The Authorization header of each request the registry refused with 401. */
    const refusedWith: string[] = [];
    page.on('response', (response) => {
      if (response.status() === 401) refusedWith.push(response.request().headers().authorization ?? '');
    });
    const renewal = page.waitForResponse(
      (response) => response.url() === oauth.tokenEndpoint && (response.request().postData() ?? '').includes('grant_type=refresh_token'),
      { timeout: 20_000 },
    );
    await signIn(page, 'ada');
    // A minute before the 66 s token expires, the console trades its refresh token for a new one, and uses it.
    const renewed = (await (await renewal).json()) as { access_token: string; refresh_token?: string };
    expect(renewed.refresh_token).toBeDefined();
    // Every access token renewed from here on (another renewal may come 6 s after this one).
    const laterTokens: string[] = [];
    page.on('response', (response) => {
      if (response.url() === oauth.tokenEndpoint && response.status() === 200) {
        void response.json().then((body: { access_token: string }) => laterTokens.push(body.access_token));
      }
    });
    const listed = page.waitForRequest((request) => new URL(request.url()).pathname === '/v1/webhooks');
    await page.getByLabel('Event pattern').fill('kyc.*');
    await page.getByLabel('Event pattern').press('Enter');
    const sent = (await listed).headers().authorization;
    expect([renewed.access_token, ...laterTokens].map((t) => `Bearer ${t}`)).toContain(sent);
    await page.getByText('No endpoints match these filters.').waitFor();

    // The registry now wants another audience: its 401 makes the console renew once and try again, then end the session.
    const port = Number(new URL(base).port);
    await server.close();
    server = await startRegistryAt(port, 'another-registry');
    await page.getByLabel('Event pattern').fill('compliance.*');
    await page.getByLabel('Event pattern').press('Enter');
    await page.getByRole('alert').filter({ hasText: 'Your session has ended: sign in again.' }).waitFor();
    await page.getByRole('button', { name: 'Sign in again' }).waitFor();
    expect(problems).toEqual([]);
    expect(apiErrors).toEqual(['GET /v1/webhooks 401', 'GET /v1/webhooks 401']);
    // The retry carried a token renewed in between.
    expect(refusedWith).toHaveLength(2);
    expect(refusedWith[1]).not.toBe(refusedWith[0]);
    expect(refusedWith[1]).toMatch(/^Bearer ey/);
  });
});

describe('the web console in chromium, with the development sign-in (npm start without OIDC_ISSUER)', () => {
  let server: RunningServer;
  let dataDir: string;
  let base: string;

  beforeAll(async () => {
    dataDir = tempDataDir();
    server = await startServer(loadConfig({ ...SQLITE_ENGINES, NODE_ENV: 'development', DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'silent' }));
    base = server.url.replace('[::1]', '127.0.0.1');
  }, BROWSER_SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await server?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('signs a developer in through the marked development page, registers an endpoint and signs out', { timeout: 60_000 }, async () => {
    const { page, problems, apiErrors } = await openPage([base]);
    await page.goto(`${base}/console`);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/dev\/sign-in\/authorize/);
    await expect(page.getByRole('note').innerText()).resolves.toContain('Development sign-in');
    await page.getByLabel('Your name').fill('Ada');
    await page.getByLabel('Role').selectOption('developer');
    await page.getByLabel('Organization id').fill('acme');
    await page.getByLabel('Authorized partners').fill(PARTNER_A);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('Signed in as').waitFor();
    expect(new URL(page.url()).search).toBe('');
    await page.getByText('No endpoints yet.').waitFor();
    await page.getByLabel('Endpoint URL (https)').fill('https://acme.example.com/dev-hooks');
    await page.getByLabel('Event types').fill('kyc.*');
    await page.getByRole('button', { name: 'Register' }).click();
    await expect(page.getByTestId('secret').innerText()).resolves.toMatch(/^whsec_/);
    await page.getByRole('button', { name: 'I have stored it' }).click();
    await page.locator('tr', { hasText: 'https://acme.example.com/dev-hooks' }).waitFor();
    await page.screenshot({ path: path.join(SHOTS, '0-development-sign-in.png'), fullPage: true });
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    expect(problems).toEqual([]);
    expect(apiErrors).toEqual([]);
  });
});
