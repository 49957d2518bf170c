/**
 * The local runner's batching window (`batchWindowMs`, the projection consumer's
 * PROJECTION_BATCH_WINDOW_MS; like the event source's MaximumBatchingWindowInSeconds): while
 * records arrive, a shard is polled once per window and its batch holds what arrived meanwhile;
 * no record waits much past the window; a full batch is read on at once; wakes do not multiply
 * polls; partial-batch retry, checkpoints and stop() work as without a window. Fake Kinesis (one
 * shard, tests/helpers/fake-shard.ts): what is checked is timing, which the emulator would blur.
 */
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import type { KinesisStreamEvent, KinesisStreamBatchResponse } from 'aws-lambda';
import type { CheckpointStore } from '../../processors/checkpoints';
import { StreamRunner } from '../../processors/runner';
import { fakeShard, memoryCheckpoints, silentLog, sleep } from '../helpers/fake-shard';

interface Batch {
  at: number;
  ns: number[];
}

function windowed(kinesis: KinesisClient, o: {
  windowMs: number;
  batchSize?: number;
  checkpoints?: CheckpointStore;
  handle?: (ns: number[], event: KinesisStreamEvent) => KinesisStreamBatchResponse;
}) {
  const batches: Batch[] = [];
  const runner = new StreamRunner({
    kinesis, stream: 's', region: 'us-east-1', checkpoints: o.checkpoints ?? memoryCheckpoints(), log: silentLog,
    batchSize: o.batchSize ?? 500, batchWindowMs: o.windowMs, pollIntervalMs: 10, idlePollMaxMs: 400, retryDelayMs: 10, shardRefreshMs: 60_000,
    handler: async (event: KinesisStreamEvent) => {
      const ns = event.Records.map((r) => Number(Buffer.from(r.kinesis.data, 'base64').toString()));
      batches.push({ at: Date.now(), ns });
      return o.handle?.(ns, event) ?? { batchItemFailures: [] };
    },
  });
  const delivered = () => batches.flatMap((b) => b.ns);
  return { runner, batches, delivered };
}

/** Writes one record every `everyMs` for `forMs`, waking the runner after each (as a `queued` ack does); returns when each was written. */
async function steadyWrites(k: ReturnType<typeof fakeShard>, runner: StreamRunner, everyMs: number, forMs: number): Promise<number[]> {
  const written: number[] = [];
  const start = Date.now();
  while (Date.now() - start < forMs) {
    k.put(written.length);
    written.push(Date.now());
    runner.wake();
    await sleep(everyMs);
  }
  return written;
}

async function until(cond: () => boolean, ms = 3000) {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await sleep(5);
}

describe('the batching window (the projection consumer\'s cadence)', () => {
  it('hands over one batch per window while records arrive, each holding what arrived meanwhile, however many wakes come', async () => {
    const k = fakeShard();
    const { runner, batches, delivered } = windowed(k.client, { windowMs: 200 });
    await runner.start();
    const written = await steadyWrites(k, runner, 5, 1200);
    await until(() => delivered().length === written.length);
    await runner.stop();
    // Every record once, in order.
    expect(delivered()).toEqual(written.map((_, i) => i));
    // ~1.2 s of writes at one batch per 200 ms (plus the first record's, at once after the wake): about 7
    // batches instead of one per record (without a window, a 10 ms runner hands over ~100 here).
    expect(batches.length).toBeGreaterThanOrEqual(5);
    expect(batches.length).toBeLessThanOrEqual(10);
    expect(Math.max(...batches.map((b) => b.ns.length))).toBeGreaterThan(20);
    // One GetRecords per batch, and the empty polls of a quiet shard after the writes stopped.
    const during = k.polls.filter((p) => p <= batches.at(-1)!.at);
    expect(during.length).toBeLessThanOrEqual(batches.length + 2);
    const gaps = batches.slice(1).map((b, i) => b.at - batches[i]!.at);
    expect(Math.min(...gaps.slice(1))).toBeGreaterThanOrEqual(190);
  });

  it('delays no record much past the window', async () => {
    const k = fakeShard();
    const { runner, batches, delivered } = windowed(k.client, { windowMs: 200 });
    await runner.start();
    const written = await steadyWrites(k, runner, 7, 1000);
    await until(() => delivered().length === written.length);
    await runner.stop();
    const deliveredAt = new Map(batches.flatMap((b) => b.ns.map((n) => [n, b.at] as const)));
    const waits = written.map((t, n) => deliveredAt.get(n)! - t);
    expect(Math.max(...waits)).toBeLessThan(200 + 80);
  });

  it('hands over the first record after a quiet spell at once when woken (the window starts with a poll that found records)', async () => {
    const k = fakeShard();
    const { runner, batches } = windowed(k.client, { windowMs: 1000 });
    await runner.start();
    await sleep(600); // idle: backing off
    const t = Date.now();
    k.put(1);
    runner.wake();
    await until(() => batches.length === 1);
    await runner.stop();
    expect(batches[0]!.ns).toEqual([1]);
    expect(batches[0]!.at - t).toBeLessThan(100);
  });

  it('reads on at once while a batch comes back full: a backlog is not held to one batch per window', async () => {
    const k = fakeShard();
    for (let n = 0; n < 50; n++) k.put(n);
    const { runner, batches, delivered } = windowed(k.client, { windowMs: 1000, batchSize: 10 });
    const t = Date.now();
    await runner.start();
    await until(() => delivered().length === 50);
    await runner.stop();
    expect(delivered()).toEqual([...Array(50).keys()]);
    expect(batches.map((b) => b.ns.length)).toEqual([10, 10, 10, 10, 10]);
    expect(batches.at(-1)!.at - t).toBeLessThan(500);
  });

  it('retries a partly failed batch from its first failed record and checkpoints only what succeeded', async () => {
    const k = fakeShard();
    const checkpoints = memoryCheckpoints();
    let failOnce = true;
    const { runner, delivered } = windowed(k.client, {
      windowMs: 200,
      checkpoints,
      handle: (ns, event) => {
        const i = ns.indexOf(3);
        if (!failOnce || i < 0) return { batchItemFailures: [] };
        failOnce = false;
        return { batchItemFailures: event.Records.slice(i).map((r) => ({ itemIdentifier: r.kinesis.sequenceNumber })) };
      },
    });
    const seqs = [0, 1, 2, 3, 4, 5].map((n) => k.put(n));
    await runner.start();
    await until(() => delivered().length === 9);
    await sleep(50);
    await runner.stop();
    // 0..5, then 3..5 again from the failed record: per-key order kept, nothing skipped.
    expect(delivered()).toEqual([0, 1, 2, 3, 4, 5, 3, 4, 5]);
    expect(checkpoints.at.get('shard-0')?.sequenceNumber).toBe(seqs[5]);
  });

  it('reads records it handed back (not decided yet) again with the next window, not sooner', async () => {
    const k = fakeShard();
    let failOnce = true;
    const { runner, batches, delivered } = windowed(k.client, {
      windowMs: 300,
      handle: (ns, event) => {
        if (!failOnce) return { batchItemFailures: [] };
        failOnce = false;
        return { batchItemFailures: event.Records.slice(2).map((r) => ({ itemIdentifier: r.kinesis.sequenceNumber })) };
      },
    });
    for (let n = 0; n < 4; n++) k.put(n);
    await runner.start();
    await until(() => batches.length === 1);
    await sleep(100);
    k.put(4);
    await until(() => delivered().length === 7);
    await runner.stop();
    // One retry, together with what arrived meanwhile, a window after the first poll (retryDelayMs is 10 ms).
    expect(batches.map((b) => b.ns)).toEqual([[0, 1, 2, 3], [2, 3, 4]]);
    expect(batches[1]!.at - batches[0]!.at).toBeGreaterThanOrEqual(280);
  });

  it('stops at once, also in the middle of a window', async () => {
    const k = fakeShard();
    const { runner, batches } = windowed(k.client, { windowMs: 5000 });
    k.put(1);
    await runner.start();
    await until(() => batches.length === 1);
    const t = Date.now();
    await runner.stop();
    expect(Date.now() - t).toBeLessThan(200);
  });
});
