/**
 * attachments (issue #16): uploads/s and upload-landed → `committed` latency (p50/p99) for 100 KB
 * and 1 MB objects, through the whole path: POST …/attachments → presigned PUT to the object store
 * (fauxqs) → local notification bridge (lists uploads/ every 100 ms: up to 100 ms of the latency is
 * the bridge's, which S3 notifications do not have) → SQS work queue → worker process (sha256,
 * magic numbers, copy to objects/) → Kinesis → processors → `committed` ack on the WebSocket.
 *
 * Baseline in the same run: the object store's own PUT throughput (the same presigned PUTs of the
 * same sizes, nothing else). The objects are PDFs (magic number + random bytes) so no thumbnail is
 * made: the figure is the pipeline's, not sharp's. Run: `npm run bench -- attachments [--quick]`.
 */
import { randomBytes } from 'node:crypto';
import { mapLimit } from '../../core/map-limit';
import { request } from '../../tests/helpers/http';
import { startAttachmentStack } from '../../tests/helpers/attachments';
import { TestSocket } from '../../tests/helpers/ws-client';
import { percentiles, round } from '../stats';
import type { BenchContext, Figure, ScenarioResult } from '../types';

const CONCURRENCY = 8;

function pdf(size: number): Buffer {
  const b = randomBytes(size);
  b.write('%PDF-1.4\n', 0, 'latin1');
  return b;
}

export async function run(ctx: BenchContext): Promise<ScenarioResult> {
  const sizes = [{ label: '100 KB', bytes: 100 * 1024, n: ctx.quick ? 20 : 300 }, { label: '1 MB', bytes: 1024 * 1024, n: ctx.quick ? 10 : 100 }];
  const stack = await startAttachmentStack('bench-attachments', { maxBytes: 2 * 1024 * 1024, quotaBytes: 64 * 1024 ** 3 });
  const figures: Figure[] = [];
  const baseline: Figure[] = [];
  const throughput: Array<{ label: string; values: Record<string, number> }> = [];
  const latency: Array<{ label: string; values: Record<string, number> }> = [];
  try {
    await stack.startWorker();
    const token = await stack.token({ tenant: 'bench', sub: 'uploader' });
    const socket = await TestSocket.open(`${stack.ackUrl}/v1/acks`, { Authorization: `Bearer ${token}` });
    // When each final ack arrived (TestSocket keeps the messages, not their times).
    const arrivedAt = new Map<string, number>();
    socket.ws.on('message', (data) => {
      const m = JSON.parse(data.toString()) as { requestId?: string; stage?: string };
      if (m.requestId && (m.stage === 'committed' || m.stage === 'rejected')) arrivedAt.set(m.requestId, performance.now());
    });
    const gw = (p: string) => `${stack.gatewayUrl}/v1/collections/files/items/${p}`;
    try {
      for (const size of sizes) {
        const body = pdf(size.bytes);
        // Items first (one attachment each: an item lists at most 50).
        const ids = Array.from({ length: size.n }, (_, i) => `${size.bytes}-${i}`);
        const puts = await mapLimit(ids, CONCURRENCY, async (id) => (await request(gw(id), { method: 'PUT', token, json: { id } })).body.requestId as string);
        for (const r of puts) await socket.finalAck(r, 60_000);
        await waitReadable(stack.readUrl, token, ids.at(-1)!);

        // Baseline: the object store's PUT throughput alone (same URLs, same bytes, same concurrency).
        const urls = await mapLimit(ids, CONCURRENCY, async (id) => {
          const res = await request(`${gw(id)}/attachments`, { method: 'POST', token, json: { name: 'b.pdf', contentType: 'application/pdf', size: size.bytes } });
          return res.body.upload as { url: string; headers: Record<string, string> };
        });
        await stack.stopWorker(); // the baseline's uploads must not be processed meanwhile
        const b0 = performance.now();
        await mapLimit(urls, CONCURRENCY, async (u) => {
          const res = await fetch(u.url.replace('/uploads/', '/baseline/'), { method: 'PUT', headers: u.headers, body: new Uint8Array(body) });
          if (!res.ok) throw new Error(`baseline PUT ${res.status}`);
        });
        const bSeconds = (performance.now() - b0) / 1000;
        baseline.push({ name: `object store PUT ${size.label}`, value: round(size.n / bSeconds), unit: 'objects/s' });
        await stack.startWorker();

        // The whole path.
        const landed = new Map<string, number>();
        const t0 = performance.now();
        let done = 0;
        const requestIds = await mapLimit(ids, CONCURRENCY, async (id) => {
          const res = await request(`${gw(id)}/attachments`, { method: 'POST', token, json: { name: 'a.pdf', contentType: 'application/pdf', size: size.bytes } });
          const put = await fetch(res.body.upload.url, { method: 'PUT', headers: res.body.upload.headers, body: new Uint8Array(body) });
          if (!put.ok) throw new Error(`upload PUT ${put.status}`);
          landed.set(res.body.requestId, performance.now());
          return res.body.requestId as string;
        });
        const latencies: number[] = [];
        for (const r of requestIds) {
          const ack = await socket.finalAck(r, 120_000);
          if (ack.stage !== 'committed') throw new Error(`upload ${r} was ${ack.stage}: ${JSON.stringify(ack.reason)}`);
          ctx.progress(++done, requestIds.length, size.label);
        }
        for (const r of requestIds) latencies.push(arrivedAt.get(r)! - landed.get(r)!);
        const seconds = (performance.now() - t0) / 1000;
        figures.push({ name: `uploads ${size.label}`, value: round(size.n / seconds), unit: 'uploads/s' });
        figures.push({ name: `landed → committed ${size.label}`, value: round(percentiles(latencies).p50), unit: 'ms', latency: percentiles(latencies) });
        throughput.push({ label: size.label, values: { 'object store PUT alone (baseline)': round(size.n / bSeconds), 'uploads through the pipeline': round(size.n / seconds) } });
        const p = percentiles(latencies);
        latency.push({ label: `landed → committed ${size.label}`, values: { p50: round(p.p50), p95: round(p.p95), p99: round(p.p99), max: round(p.max) } });
        ctx.log(`${size.label}: ${round(size.n / seconds)} uploads/s, landed → committed p50 ${round(percentiles(latencies).p50)} ms p99 ${round(percentiles(latencies).p99)} ms; object store alone ${round(size.n / bSeconds)} PUT/s`);
      }
    } finally {
      await socket.close();
    }
  } finally {
    await stack.close();
  }
  return {
    scenario: 'attachments',
    figures,
    baseline: { name: 'object store (fauxqs) presigned PUTs alone, same sizes and concurrency', figures: baseline },
    charts: [
      { file: 'attachments-throughput.svg', title: 'attachments: uploads/s vs the object store alone (same run)', yLabel: 'objects/s',
        keys: ['object store PUT alone (baseline)', 'uploads through the pipeline'], groups: throughput },
      { file: 'attachments-latency.svg', title: 'attachments: upload landed → committed ack (ms)', yLabel: 'ms', keys: ['p50', 'p95', 'p99', 'max'], groups: latency },
    ],
    ratios: figures.filter((f) => f.unit === 'uploads/s').map((f, i) => ({ name: `${f.name} / object store PUT`, value: round(f.value / (baseline[i]?.value ?? 1), 3) })),
    notes: [
      'Local: fauxqs S3 (no notifications) → a bridge polling uploads/ every 100 ms; on AWS S3 notifies SQS directly (typically well under a second).',
      `Concurrency ${CONCURRENCY} uploads in flight; one worker process (batches of up to 10); PDFs, so no thumbnail work.`,
      'Latency: from the upload PUT answered (the bytes landed) to the `committed` ack received on the WebSocket.',
      'Each upload also costs the POST its quota reservation in PostgreSQL and a delayed expiry check on SQS (due after the URL lifetime + grace, 660 s: after this run); the worker reads the request status before and after an upload.',
    ],
  };
}

async function waitReadable(readUrl: string, token: string, id: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await request(`${readUrl}/v1/collections/files/items/${id}`, { token })).status === 200) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}
