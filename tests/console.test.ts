/**
 * The operator console, black-box: its HTTP contract (page public, feed behind an operator token)
 * and, in a real headless Chromium (Debian's /usr/bin/chromium driven by playwright-core), a test
 * write whose two acks and counters show up on the page. Saves docs/img/console.png.
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { request } from './helpers/http';
import { startStack, type Stack } from './helpers/stack';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SCREENSHOT = path.join(__dirname, '..', 'docs', 'img', 'console.png');

let stack: Stack;
let consoleUrl: string;
let operator: string;
/** Nothing listens here: the console must show it as n/a, not fail. */
const DEAD_METRICS = 'http://127.0.0.1:9/metrics';

beforeAll(async () => {
  stack = await startStack('console', { services: ['processors', 'read-model', 'gateway'] });
  // The ack service (which serves the console) needs the gateway's and the other services' URLs.
  stack.env.CONSOLE_GATEWAY_URL = stack.gatewayUrl;
  stack.env.CONSOLE_METRICS_URLS = [`${stack.gatewayUrl}/metrics`, `${stack.readUrl}/metrics`, DEAD_METRICS].join(',');
  await stack.startService('ack-service');
  consoleUrl = `${stack.ackUrl.replace(/^ws/, 'http')}/console`;
  operator = await stack.token({ tenant: 'acme', sub: 'ops', roles: ['operator'] });
}, 60_000);

afterAll(async () => {
  await stack?.close();
});

describe('console over HTTP', () => {
  it('serves the page and its script to anyone, since they hold no data', async () => {
    const page = await fetch(consoleUrl);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(await page.text()).toContain('/console/console.js');
    const script = await fetch(`${consoleUrl}/console.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toMatch(/javascript/);
  });

  it('refuses the feed without a token with a 401 problem', async () => {
    const res = await request(`${consoleUrl}/api/snapshot`);
    expect(res.status).toBe(401);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(res.body).toMatchObject({ status: 401, title: 'Unauthorized' });
  });

  it('refuses the feed to a valid token without the operator role with a 403 problem', async () => {
    const user = await stack.token({ tenant: 'acme', sub: 'alice' });
    const res = await request(`${consoleUrl}/api/snapshot`, { token: user });
    expect(res.status).toBe(403);
    expect(res.body.detail).toContain('operator');
    const test = await request(`${consoleUrl}/api/test-write`, { method: 'POST', token: user });
    expect(test.status).toBe(403);
  });

  it('answers the feed to an operator token, in the header or as ?access_token, with missing metrics as null', async () => {
    const byHeader = await request(`${consoleUrl}/api/snapshot`, { token: operator });
    expect(byHeader.status).toBe(200);
    const byQuery = await request(`${consoleUrl}/api/snapshot?access_token=${operator}`);
    expect(byQuery.status).toBe(200);
    const dead = byHeader.body.sources.find((s: { url: string }) => s.url === DEAD_METRICS);
    expect(dead).toMatchObject({ ok: false });
    expect(byHeader.body).toHaveProperty('dlqDepth', null);
    expect(byHeader.body.openWebSockets).toEqual({ value: 0, source: 'this instance' });
  });

  it('rejects other methods on the feed with 405 and unknown console paths with 404', async () => {
    expect((await request(`${consoleUrl}/api/snapshot`, { method: 'POST', token: operator })).status).toBe(405);
    expect((await request(`${consoleUrl}/api/nothing`, { token: operator })).status).toBe(404);
    // The ack service's own routes are untouched.
    expect((await request(`${stack.ackUrl.replace(/^ws/, 'http')}/healthz`)).body).toMatchObject({ status: 'ok' });
  });
});

describe('console in a browser', () => {
  let browser: Browser;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (CI's .ci/run does)`);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    });
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
  });

  it('submits a test write, shows its queued and committed acks, and the counters move', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${consoleUrl}#token=${operator}`);
    // The token leaves the address bar once read.
    expect(new URL(page.url()).hash).toBe('');
    await page.getByTestId('ack-socket').filter({ hasText: 'ack socket: open' }).waitFor({ timeout: 10_000 });
    await page.getByTestId('status').filter({ hasText: 'live' }).waitFor({ timeout: 10_000 });
    await expect(page.getByTestId('ack-totals').textContent()).resolves.toContain('0 committed');
    // A metrics endpoint that does not answer is shown as n/a, not as an error.
    await expect(page.getByTestId('sources').textContent()).resolves.toContain(`${DEAD_METRICS}: n/a`);
    await expect(page.getByTestId('dlq').textContent()).resolves.toBe('n/a');

    await page.getByTestId('test-write').click();
    const row = page.locator('[data-testid="writes-log"] tbody tr').first();
    await row.locator('td[data-stage="queued"]').waitFor({ timeout: 10_000 });
    await row.locator('td[data-stage="committed"]').waitFor({ timeout: 15_000 });
    // acks/s is a mean over the last 5 full seconds: it shows the ack within ~2 s and drops back
    // ~5 s later, so it is checked first, before the slower counters.
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="acks-committed"]')?.textContent) > 0, undefined, { timeout: 5_000 });
    const cells = await row.locator('td').allTextContents();
    expect(cells[2]).toBe('202');
    expect(cells[3]).toMatch(/^queued \+\d+ ms$/);
    expect(cells[4]).toMatch(/^committed v1 \+\d+ ms$/);

    // Counters fed by the ack log and this instance's sockets move on the next polls.
    await page.waitForFunction(() => document.querySelector('[data-testid="ack-totals"]')?.textContent?.includes('1 committed'), undefined, { timeout: 10_000 });
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="sockets"]')?.textContent) >= 1, undefined, { timeout: 10_000 });
    await page.waitForFunction(() => !document.querySelector('[data-testid="lat-committed"]')?.textContent?.includes('n/a'), undefined, { timeout: 10_000 });

    // The write is real: the read API serves it.
    const id = cells[0]!;
    const item = await request(`${stack.readUrl}/v1/collections/console-test/items/${id}`, { token: operator });
    expect(item.status).toBe(200);
    expect(item.body.data).toMatchObject({ source: 'operator console' });

    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);

  it('asks for a token when there is none, and says why an ordinary token is refused', async () => {
    const page = await browser.newPage();
    await page.goto(consoleUrl);
    await page.getByTestId('login').waitFor({ state: 'visible' });
    const user = await stack.token({ tenant: 'acme', sub: 'bob' });
    await page.fill('#token-input', user);
    await page.click('#login button');
    await page.getByTestId('status').filter({ hasText: '403' }).waitFor({ timeout: 10_000 });
    await page.getByTestId('login').waitFor({ state: 'visible' });
    await page.close();
  }, 30_000);
});
