/**
 * mixed: the brief's 100:1 reads to writes. Reads hit the read API (autocannon, closed loop);
 * writes go through the gateway at one per 100 successful reads, and each is awaited on an ack
 * WebSocket until `committed`. Baseline, same run, same machine: bare node:http answering a
 * constant body of the same size as an item document, under the same autocannon load.
 *
 * The stack is the real one from tests/helpers/stack.ts (emulators, PostgreSQL, Redis, all four
 * services in this process); the load runs in a worker thread so it has its own event loop.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket } from 'ws';
import { startStack } from '../../tests/helpers/stack';
import { runLoad, type LoadResult } from '../load';
import { percentiles, perSecond, round } from '../stats';
import type { BenchContext, Figure, ScenarioResult, Series } from '../types';

const RATIO = 100;

export async function run(ctx: BenchContext): Promise<ScenarioResult> {
  const plan = ctx.quick
    ? { items: 50, baselineS: 3, mixedS: 8, connections: 10 }
    : { items: 500, baselineS: 10, mixedS: 30, connections: 16 };
  const totalS = plan.baselineS + plan.mixedS;
  ctx.progress(0, totalS, 'starting the stack');

  const stack = await startStack('bench-mixed', { shardCount: 2 });
  let baselineServer: Server | undefined;
  try {
    const token = await stack.token({ tenant: 'bench', sub: 'mixed' });
    const ids = Array.from({ length: plan.items }, (_, i) => `item-${i}`);
    ctx.log(`seeding ${ids.length} items`);
    const sample = await seed(stack.gatewayUrl, stack.ackUrl, token, ids);
    const paths = ids.map((id) => `/v1/collections/bench/items/${id}`);

    // Baseline: what bare node:http does on this machine with the same load and body size.
    const body = Buffer.from(sample);
    baselineServer = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length, etag: '"1"' }).end(body);
    });
    await new Promise<void>((r) => baselineServer!.listen(0, '127.0.0.1', r));
    const baseUrl = `http://127.0.0.1:${(baselineServer.address() as AddressInfo).port}`;
    ctx.log(`baseline: bare node:http, ${plan.connections} connections, ${plan.baselineS}s`);
    const base = await runLoad(
      { mode: 'reads', readUrl: baseUrl, paths, connections: plan.connections, durationS: plan.baselineS },
      (s) => ctx.progress(s, totalS, 'baseline node:http'),
    );
    await new Promise<void>((r) => baselineServer!.close(() => r()));
    baselineServer = undefined;

    ctx.log(`mixed: ${plan.connections} read connections, 1 write per ${RATIO} reads awaiting committed, ${plan.mixedS}s`);
    const mixed = await runLoad(
      {
        mode: 'mixed', readUrl: stack.readUrl, paths, token, connections: plan.connections, durationS: plan.mixedS,
        gatewayUrl: stack.gatewayUrl, ackUrl: stack.ackUrl, writeIds: ids, ratio: RATIO, maxOutstanding: 64,
      },
      (s) => ctx.progress(plan.baselineS + s, totalS, 'mixed'),
    );
    ctx.progress(totalS, totalS, 'closing');
    return summarize(base, mixed, plan);
  } finally {
    if (baselineServer) baselineServer.close();
    await stack.close();
  }
}

function summarize(base: LoadResult, mixed: LoadResult, plan: { mixedS: number; connections: number; items: number }): ScenarioResult {
  const readsPerS = mixed.readLatencies.length / mixed.durationS;
  const committed = mixed.committedLatencies ?? [];
  const writesPerS = committed.length / mixed.durationS;
  const baseReadsPerS = base.readLatencies.length / base.durationS;
  const figures: Figure[] = [
    { name: 'reads (read API, hot item)', value: round(readsPerS, 0), unit: 'req/s', latency: percentiles(mixed.readLatencies) },
    { name: 'writes queued (PUT -> 202)', value: round((mixed.queuedLatencies?.length ?? 0) / mixed.durationS, 1), unit: 'req/s', latency: percentiles(mixed.queuedLatencies ?? []) },
    { name: 'writes committed (PUT -> committed ack)', value: round(writesPerS, 1), unit: 'writes/s', latency: percentiles(committed) },
    { name: 'reads per committed write', value: round(committed.length ? mixed.readLatencies.length / committed.length : 0, 1), unit: 'ratio' },
    { name: 'read errors (non-2xx)', value: mixed.readErrors, unit: 'count' },
    { name: 'write errors + rejected + unfinished', value: (mixed.writeErrors ?? 0) + (mixed.rejected ?? 0) + (mixed.writesUnfinished ?? 0), unit: 'count' },
  ];
  return {
    scenario: 'mixed',
    figures,
    baseline: {
      name: 'bare node:http, constant body',
      figures: [{ name: 'reads (constant body)', value: round(baseReadsPerS, 0), unit: 'req/s', latency: percentiles(base.readLatencies) }],
    },
    ratios: [{ name: 'mixed reads/s ÷ bare node:http reads/s', value: round(baseReadsPerS ? readsPerS / baseReadsPerS : 0, 3) }],
    series: [
      perSecond('reads', 'requests/s', mixed.readTimes, 0, mixed.durationS),
      scale(perSecond(`committed writes ×${RATIO}`, 'requests/s', mixed.committedTimes ?? [], 0, mixed.durationS), RATIO),
      perSecond('baseline reads (node:http)', 'requests/s', base.readTimes, 0, base.durationS),
    ],
    notes: [
      `${plan.connections} autocannon connections on the read API over ${plan.items} items, ${plan.mixedS}s; writes paced at 1 per ${RATIO} reads (at most 64 in flight), each awaited until its committed ack.`,
      'Everything (emulators, four services) runs in one Node process; the load generator has its own worker thread. Both compete for 2 shared cores, so the figures are noisy and a lower bound.',
    ],
  };
}

const scale = (s: Series, k: number): Series => ({ ...s, points: s.points.map(([x, y]) => [x, y * k] as [number, number]) });

/** Writes each item once and waits for every committed ack, so the reads find them; returns one item document as JSON text. */
async function seed(gatewayUrl: string, ackUrl: string, token: string, ids: string[]): Promise<string> {
  const ws = new WebSocket(`${ackUrl}/v1/acks?access_token=${encodeURIComponent(token)}`);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const committed = new Set<string>();
  ws.on('message', (data) => {
    const m = JSON.parse(data.toString()) as { type: string; stage?: string; requestId?: string };
    if (m.type === 'ack' && m.stage === 'committed' && m.requestId) committed.add(m.requestId);
  });
  const requestIds: string[] = [];
  for (let i = 0; i < ids.length; i += 25) {
    const batch = await Promise.all(
      ids.slice(i, i + 25).map(async (id) => {
        const res = await fetch(`${gatewayUrl}/v1/collections/bench/items/${id}`, {
          method: 'PUT',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ name: id, tags: ['bench', 'mixed'], price: 12.5, note: 'a small item document as a read model would serve it' }),
        });
        if (res.status !== 202) throw new Error(`seed PUT ${id}: ${res.status} ${await res.text()}`);
        return ((await res.json()) as { requestId: string }).requestId;
      }),
    );
    requestIds.push(...batch);
  }
  const deadline = Date.now() + 60_000;
  while (requestIds.some((r) => !committed.has(r))) {
    if (Date.now() > deadline) throw new Error(`seed: ${requestIds.filter((r) => !committed.has(r)).length} writes not committed within 60s`);
    await new Promise((r) => setTimeout(r, 50));
  }
  ws.close();
  const doc = { collection: 'bench', id: ids[0], version: 1, updatedAt: new Date().toISOString(), data: { name: ids[0], tags: ['bench', 'mixed'], price: 12.5, note: 'a small item document as a read model would serve it' } };
  return JSON.stringify(doc);
}
