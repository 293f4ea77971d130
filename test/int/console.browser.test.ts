// The web console in a real browser (Debian's chromium through
// playwright-core), on a server started as `npm start` starts it: no
// OIDC_ISSUER, so the console signs in through the development sign-in with
// the authorization code flow and PKCE. An integration developer signs in,
// sees only their organization's endpoints, gets a validation error next to
// the field it names, registers an endpoint and copies its secret, and signs
// out. Screenshots go to test-results/console/ (ignored by git).
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConsole } from '../../console/build.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { BROWSER_SETUP_TIMEOUT_MS, ensureChromium } from '../support/browser.ts';
import { REPO_ROOT } from '../support/cli.ts';
import { PARTNER_A, SQLITE_ENGINES, tempDataDir } from '../support/registry.ts';

const SHOTS = path.join(REPO_ROOT, 'test-results', 'console');
/** Evaluated in the page (a string: this file is compiled without the DOM's types): the focused element's id. */
const ACTIVE_ID = 'document.activeElement && document.activeElement.id';

describe('the web console in chromium (development sign-in)', () => {
  let server: RunningServer;
  let config: Config;
  let dataDir: string;
  let base: string;
  let browser: Browser;
  let chromiumPath: string;
  /** An instant while the developer's endpoint was paused (the auditor asks for the state then). */
  let pausedAt: string | undefined;

  beforeAll(async () => {
    chromiumPath = await ensureChromium();
    await buildConsole();
    mkdirSync(SHOTS, { recursive: true });
    dataDir = tempDataDir();
    config = loadConfig({ ...SQLITE_ENGINES, NODE_ENV: 'development', DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'silent' });
    server = await startServer(config);
    base = server.url.replace('[::1]', '127.0.0.1');
    browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    });
  }, BROWSER_SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  /**
   * A page that records every console error, page error, failed or foreign
   * request; API answers of 400 and above separately (the browser reports
   * each in its console too, as "Failed to load resource", so those lines
   * are left to that list).
   */
  async function openPage(width = 1280, height = 800): Promise<{ page: Page; problems: string[]; apiErrors: string[] }> {
    const context = await browser.newContext({ viewport: { width, height } });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
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
      if (!request.url().startsWith(`${base}/`)) problems.push(`foreign: ${request.url()}`);
    });
    return { page, problems, apiErrors };
  }

  async function signIn(page: Page, organization: string | undefined, role: 'developer' | 'auditor' = 'developer'): Promise<void> {
    await page.goto(`${base}/console`);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/dev\/sign-in\/authorize/);
    await expect(page.getByRole('note').innerText()).resolves.toContain('Development sign-in');
    await page.getByLabel('Your name').fill(role === 'developer' ? 'Ada' : 'Grace');
    await page.getByLabel('Role').selectOption(role);
    if (organization !== undefined) await page.getByLabel('Organization id').fill(organization);
    await page.getByLabel('Authorized partners').fill(PARTNER_A);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('Signed in as').waitFor();
  }

  it('signs a developer in, shows only their endpoints, and registers one whose secret is copied once', { timeout: 90_000 }, async () => {
    // Another organization's endpoint, registered over the API.
    const globexToken = await server.identity.devIssuer!.mint({
      audience: config.OIDC_AUDIENCE,
      orgClaim: config.ORG_CLAIM,
      partnersClaim: config.PARTNERS_CLAIM,
      organizationId: 'globex',
      partnerIds: [PARTNER_A],
      scopes: ['webhooks:write', 'webhooks:read'],
    });
    const other = await fetch(`${base}/v1/webhooks`, {
      method: 'POST',
      headers: { authorization: `Bearer ${globexToken}`, 'content-type': 'application/json', 'idempotency-key': 'console-test-globex' },
      body: JSON.stringify({ url: 'https://globex.example.com/hooks', events: ['kyc.*'] }),
    });
    expect(other.status).toBe(201);

    const { page, problems, apiErrors } = await openPage();
    await signIn(page, 'acme');
    // The code and state are off the address bar once used.
    expect(new URL(page.url()).search).toBe('');
    await page.getByText('No endpoints yet.').waitFor();
    expect(await page.content()).not.toContain('globex.example.com');
    await page.screenshot({ path: path.join(SHOTS, '1-signed-in.png'), fullPage: true });

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
    await page.locator('#edit-events').fill('kyc.*, compliance.case.opened');
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

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    expect(problems).toEqual([]);
    // The answers of 400 and above: the registration the URL policy refused, the refused edit and the refused filter.
    expect(apiErrors).toEqual(['POST /v1/webhooks 400', 'PATCH /v1/webhooks/:id 400', 'GET /v1/webhooks 400']);
  });

  it('is usable on a phone-sized screen, and deletes after a confirmation', { timeout: 60_000 }, async () => {
    const { page, problems, apiErrors } = await openPage(390, 844);
    await signIn(page, 'acme');
    await page.locator('tr', { hasText: 'https://acme.example.com/hooks' }).waitFor();
    // Nothing wider than the screen.
    const overflow = await page.evaluate('document.documentElement.scrollWidth - window.innerWidth');
    expect(overflow).toBeLessThanOrEqual(0);
    await page.screenshot({ path: path.join(SHOTS, '6-phone.png'), fullPage: true });
    // Delete, after a confirmation: the row goes, and the focus returns to the list.
    await page.getByRole('button', { name: 'Manage https://acme.example.com/hooks' }).click();
    await page.getByRole('button', { name: 'Delete…' }).click();
    await page.getByRole('button', { name: 'Yes, delete it' }).click();
    await page.getByText('No endpoints yet.').waitFor();
    await expect.poll(() => page.evaluate(ACTIVE_ID), { timeout: 5000 }).toBe('list-heading');
    expect(problems).toEqual([]);
    expect(apiErrors).toEqual([]);
  });

  it('shows an auditor every webhook at a past instant, and one webhook’s timeline with its changes and chain', { timeout: 60_000 }, async () => {
    expect(pausedAt, 'the developer test ran first').toBeDefined();
    const { page, problems, apiErrors } = await openPage();
    await signIn(page, undefined, 'auditor');
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
    expect(text).toContain('dev-user:Ada');
    expect(await page.content()).not.toMatch(/whsec_/);
    await page.screenshot({ path: path.join(SHOTS, '8-timeline.png'), fullPage: true });
    expect(problems).toEqual([]);
    expect(apiErrors).toEqual([]);
  });
});
