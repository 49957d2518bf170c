/**
 * The stage figures of the system-growth scenario (bench/stage-metrics.ts, issue #20) describe the
 * measurement window and nothing before it: a histogram's observations between two scrapes, the
 * event-loop delay since the previous scrape (less Node's sampling period), and what the emulators'
 * LevelDB logged (flushes, compactions) after a mark. Checked against the real parts: prom-client
 * served over HTTP, and dynalite's LevelDB on disk driven with the AWS SDK.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo, Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { eventLoopLag, histogramBetween, type LevelLogMark, levelLogSince, markLevelLog, scrapeAll } from '../bench/stage-metrics';
import { createDynamo } from '../core/aws';
import { createRegistry, Histogram, LATENCY_BUCKETS, type Registry } from '../core/metrics';
import { ensureTable, requestsTableDefinition } from '../core/read-store';
import { dynamoEmulator } from '../scripts/local-stack';

const listen = (server: Server) =>
  new Promise<string>((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));
const close = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A registry served on /metrics, as the services serve theirs. */
async function serve(registry: Registry): Promise<{ url: string; server: Server }> {
  const server = http.createServer((_req, res) => {
    void registry.metrics().then((text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text));
  });
  return { url: `${await listen(server)}/metrics`, server };
}

describe('histograms between two scrapes', () => {
  it('count, mean and quantiles of the observations made between them, not of those before', async () => {
    const registry = createRegistry('stage-test');
    const h = new Histogram({ name: 'stage_test_seconds', help: 'test', labelNames: ['route'], buckets: LATENCY_BUCKETS, registers: [registry] });
    const { url, server } = await serve(registry);
    try {
      for (let i = 0; i < 100; i++) h.observe({ route: 'a' }, 0.005);
      const before = await scrapeAll(url);
      for (let i = 0; i < 98; i++) h.observe({ route: 'a' }, 0.02);
      h.observe({ route: 'a' }, 0.9);
      h.observe({ route: 'a' }, 0.9);
      for (let i = 0; i < 50; i++) h.observe({ route: 'b' }, 2);
      const after = await scrapeAll(url);

      const a = histogramBetween(before, after, 'stage_test_seconds', (k) => k.includes('route="a"'));
      expect(a.count).toBe(100);
      expect(a.meanMs).toBeCloseTo((98 * 20 + 2 * 900) / 100, 1);
      // Quantiles fall in the bucket that holds them (20 ms: 15–20 ms; the two 900 ms: 500 ms–1 s).
      expect(a.p50Ms).toBeGreaterThan(15);
      expect(a.p50Ms).toBeLessThanOrEqual(20);
      expect(a.p99Ms).toBeGreaterThan(500);
      expect(a.p99Ms).toBeLessThanOrEqual(1000);

      // Without a filter every label set counts.
      expect(histogramBetween(before, after, 'stage_test_seconds').count).toBe(150);
    } finally {
      await close(server);
    }
  });

  it('a service that does not answer gives no samples, and an empty window zeros', async () => {
    const none = await scrapeAll('http://127.0.0.1:1/metrics');
    expect(none.size).toBe(0);
    expect(histogramBetween(none, none, 'stage_test_seconds')).toEqual({ count: 0, meanMs: 0, p50Ms: 0, p99Ms: 0 });
  });
});

describe('event-loop delay since the previous scrape', () => {
  it('shows a blocked event loop, without the sampling period, and only once', async () => {
    const registry = createRegistry('stage-lag', { processMetrics: true });
    const { url, server } = await serve(registry);
    try {
      await scrapeAll(url); // the window starts here (prom-client resets its histogram at each collect)
      await sleep(300);
      const t0 = Date.now();
      while (Date.now() - t0 < 400) {
        // the event loop is blocked for 400 ms
      }
      await sleep(300);
      const blocked = eventLoopLag(await scrapeAll(url));
      expect(blocked).toBeDefined();
      expect(blocked!.maxMs).toBeGreaterThan(250);
      expect(blocked!.maxMs).toBeLessThan(1000);
      // Most samples waited for nothing: the 100 ms sampling period is not counted as delay.
      expect(blocked!.p50Ms).toBeLessThan(50);

      await sleep(500);
      const next = eventLoopLag(await scrapeAll(url));
      expect(next!.maxMs).toBeLessThan(250);
    } finally {
      await close(server);
    }
  });

  it('a process that does not report it gives none', () => {
    expect(eventLoopLag(new Map([['ackstream_acks_pushed_total', 3]]))).toBeUndefined();
  });
});

describe("LevelDB's account of its background work after a mark", () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'stage-leveldb-'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("counts the flushes and compactions of dynalite's store after the mark, not those before", async () => {
    const dir = path.join(root, 'dynamodb');
    // LevelDB's defaults (a 4 MB write buffer): every 6 MB burst below flushes at least once.
    const server = dynamoEmulator(dir, {});
    const dynamo = createDynamo({ region: 'us-east-1', endpoint: await listen(server) });
    const burst = async (round: number) => {
      for (let i = 0; i < 20; i++) {
        await dynamo.send(new PutItemCommand({ TableName: 'stage', Item: { pk: { S: `r${round}-${i}` }, doc: { S: String(i).padEnd(300_000, 'x') } } }));
      }
    };
    let mark: LevelLogMark | undefined;
    try {
      await ensureTable(dynamo, requestsTableDefinition('stage'));
      await burst(0);
      await sleep(500); // its flush is logged before the mark
      mark = markLevelLog(dir);
      expect(mark.offset).toBeGreaterThan(0);
      for (let round = 1; round <= 5; round++) await burst(round);
      await sleep(500);
    } finally {
      dynamo.destroy();
      await close(server);
    }
    const since = levelLogSince(mark!);
    const whole = levelLogSince({ file: mark!.file, offset: 0 });
    // 30 MB put after the mark: several flushes, and level 0 reaching 4 files is compacted.
    expect(since.flushes).toBeGreaterThanOrEqual(4);
    expect(since.flushes).toBeLessThan(whole.flushes);
    expect(since.compactions).toBeGreaterThanOrEqual(1);
    expect(since.compactedMB).toBeGreaterThan(0); // the padding compresses well: MB written, not MB put
  });

  it('a store that has no LOG (an in-memory emulator) reports nothing', () => {
    expect(levelLogSince(markLevelLog(path.join(root, 'none')))).toEqual({ flushes: 0, compactions: 0, compactedMB: 0, stalls: 0 });
  });
});
