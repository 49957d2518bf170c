/**
 * The operator console, black-box: its HTTP contract (page public, feed behind an operator token)
 * and, in a real headless Chromium (Debian's /usr/bin/chromium driven by playwright-core), a test
 * write whose two acks show up, then real traffic (writes, reads, a dead letter) and every panel's
 * figure as the services' metrics give it. `UPDATE_SCREENSHOTS=1` also saves docs/img/console.png.
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { type Browser, chromium } from 'playwright-core';
import { createSqs } from '../core/aws';
import { request } from './helpers/http';
import { freePort } from '../scripts/local-stack';
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
  const processorsMetrics = `${stack.services.get('processors')!.url!}/metrics`;
  // The ack service reads its own /metrics too (as under npm start): it gets a known port first.
  stack.env.ACK_PORT = String(await freePort());
  const ackMetrics = `http://127.0.0.1:${stack.env.ACK_PORT}/metrics`;
  stack.env.CONSOLE_METRICS_URLS = [`${stack.gatewayUrl}/metrics`, `${stack.readUrl}/metrics`, processorsMetrics, ackMetrics, DEAD_METRICS].join(',');
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

  it('answers the feed to an operator token, in the header or as ?access_token, from every service that answers', async () => {
    const byHeader = await request(`${consoleUrl}/api/snapshot`, { token: operator });
    expect(byHeader.status).toBe(200);
    const byQuery = await request(`${consoleUrl}/api/snapshot?access_token=${operator}`);
    expect(byQuery.status).toBe(200);
    const dead = byHeader.body.sources.find((s: { url: string }) => s.url === DEAD_METRICS);
    expect(dead).toMatchObject({ ok: false });
    // The read API serves /metrics too; only the dead endpoint is n/a.
    expect(byHeader.body.sources.filter((s: { ok: boolean }) => !s.ok)).toEqual([dead]);
    // Real figures before any traffic: an empty dead-letter queue, items served from v1, no reads yet.
    expect(byHeader.body).toMatchObject({ dlqDepth: 0, readHitRatio: null, replay: [{ projection: 'items', live: 1, rebuilding: [] }] });
    expect(byHeader.body.openWebSockets).toEqual({ value: 0, source: 'metrics' });
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

  it('submits a test write and shows its acks; under traffic every panel shows its figure', async () => {
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
    await expect(page.getByTestId('dlq').textContent()).resolves.toBe('0');

    await page.getByTestId('test-write').click();
    const row = page.locator('[data-testid="writes-log"] tbody tr').first();
    await row.locator('td[data-stage="queued"]').waitFor({ timeout: 10_000 });
    await row.locator('td[data-stage="committed"]').waitFor({ timeout: 15_000 });
    // acks/s is a mean over the last 5 full seconds: it shows the ack within ~2 s and drops back
    // ~5 s later, so it is checked first, before the slower counters.
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="acks-committed"]')?.textContent) > 0, undefined, { timeout: 5_000 });
    // The page's own socket got both acks pushed (the ack service's ackstream_acks_pushed_total).
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="acks-pushed"]')?.textContent) > 0, undefined, { timeout: 5_000 });
    const cells = await row.locator('td').allTextContents();
    expect(cells[2]).toBe('202');
    expect(cells[3]).toMatch(/^queued \+\d+ ms$/);
    expect(cells[4]).toMatch(/^committed v1 \+\d+ ms$/);

    // Counters fed by the ack log and the open-sockets gauge move on the next polls.
    await page.waitForFunction(() => document.querySelector('[data-testid="ack-totals"]')?.textContent?.includes('1 committed'), undefined, { timeout: 10_000 });
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="sockets"]')?.textContent) >= 1, undefined, { timeout: 10_000 });
    await page.waitForFunction(() => !document.querySelector('[data-testid="lat-committed"]')?.textContent?.includes('n/a'), undefined, { timeout: 10_000 });

    // The write is real: the read API serves it (the first of the three hot reads below).
    const id = cells[0]!;
    const item = await request(`${stack.readUrl}/v1/collections/console-test/items/${id}`, { token: operator });
    expect(item.status).toBe(200);
    expect(item.body.data).toMatchObject({ source: 'operator console' });

    // Traffic: a burst of writes, item reads (3 from the hot copy with the one above, 1 miss), a dead letter.
    const text = (id: string) => page.getByTestId(id).textContent();
    const number = async (id: string) => Number(await text(id));
    const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => request(`${stack.gatewayUrl}/v1/collections/load/items/w${i}`, {
      method: 'PUT', token: operator, body: JSON.stringify({ i }), headers: { 'content-type': 'application/json' },
    })));
    expect(burst.map((r) => r.status)).toEqual(Array(20).fill(202));
    // writes/s and processor records/s are rates over the last seconds: seen while the burst is in the window.
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="writes"]')?.textContent) > 0, undefined, { timeout: 8_000 });
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="records"]')?.textContent) > 0, undefined, { timeout: 8_000 });
    // The acks/s chart draws the committed acks above its baseline.
    await page.waitForFunction(() => {
      const pts = document.querySelector('[data-testid="spark"] polyline[data-stage="committed"]')?.getAttribute('points') ?? '';
      return pts.split(' ').some((p) => Number(p.split(',')[1]) < 77);
    }, undefined, { timeout: 8_000 });
    const queued = await page.getByTestId('lat-queued').locator('td').allTextContents();
    expect(queued).toEqual(['p50', expect.stringMatching(/^\d+(\.\d+)? ms$/), 'p95', expect.stringMatching(/ ms$/), 'p99', expect.stringMatching(/ ms$/)]);
    // Per consumer and shard: ms behind and the iterator age (once a record of that shard was handled).
    await page.waitForFunction(() => {
      const rows = Array.from(document.querySelectorAll('[data-testid="shards"] tbody tr'));
      return rows.length === 4 && rows.every((r) => Array.from(r.querySelectorAll('td')).slice(1).every((td) => /^\d+$/.test(td.textContent ?? '')));
    }, undefined, { timeout: 8_000 });

    for (let i = 0; i < 2; i++) expect((await request(`${stack.readUrl}/v1/collections/console-test/items/${id}`, { token: operator })).status).toBe(200);
    expect((await request(`${stack.readUrl}/v1/collections/console-test/items/not-there`, { token: operator })).status).toBe(404);
    await page.getByTestId('hit').filter({ hasText: /^75\.0 %$/ }).waitFor({ timeout: 15_000 });

    const sqs = createSqs({ region: 'us-east-1', endpoint: stack.emulators.sqsEndpoint });
    await sqs.send(new SendMessageCommand({ QueueUrl: stack.env.DLQ_URL!, MessageBody: JSON.stringify({ kind: 'malformed', error: 'record data is not JSON', attempts: 1, data: 'AAEC', parkedAt: new Date().toISOString() }) }));
    sqs.destroy();
    await page.getByTestId('dlq').filter({ hasText: /^1$/ }).waitFor({ timeout: 10_000 });

    await expect(text('replay')).resolves.toBe('items: live v1 · no rebuild running');
    expect(await number('sockets')).toBeGreaterThanOrEqual(1);

    if (process.env.UPDATE_SCREENSHOTS === '1') {
      mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
    }
    expect(errors).toEqual([]);
    await page.close();
  }, 90_000);

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
