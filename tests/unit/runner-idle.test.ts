/**
 * The local runner on an idle stream: it polls an empty shard less and less often (up to
 * idlePollMaxMs, as Lambda polls about once a second), a wake() makes it poll at once, and a
 * record that arrives without a wake is still delivered, within idlePollMaxMs. A fake Kinesis
 * client (one shard, records appended by the test) stands in for the emulator: what is checked
 * is the runner's timing, which the emulator would only blur.
 */
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import type { KinesisStreamEvent } from 'aws-lambda';
import { StreamRunner } from '../../processors/runner';
import { fakeShard as fakeKinesis, memoryCheckpoints, silentLog as silent, sleep } from '../helpers/fake-shard';

function runnerOver(kinesis: KinesisClient, delivered: Array<{ n: string; at: number }>) {
  return new StreamRunner({
    kinesis, stream: 's', region: 'us-east-1', checkpoints: memoryCheckpoints(), log: silent,
    batchSize: 100, pollIntervalMs: 10, idlePollMaxMs: 400, retryDelayMs: 10, shardRefreshMs: 60_000,
    handler: async (event: KinesisStreamEvent) => {
      for (const r of event.Records) delivered.push({ n: Buffer.from(r.kinesis.data, 'base64').toString(), at: Date.now() });
      return { batchItemFailures: [] };
    },
  });
}

describe('the local runner on an idle shard', () => {
  it('backs off to idlePollMaxMs between empty polls instead of polling every pollIntervalMs', async () => {
    const k = fakeKinesis();
    const runner = runnerOver(k.client, []);
    await runner.start();
    await sleep(1500);
    await runner.stop();
    // 10, 20, 40, 80, 160, 320, then 400 ms: about 9 polls in 1.5 s (at a fixed 10 ms: ~150).
    expect(k.polls.length).toBeGreaterThanOrEqual(6);
    expect(k.polls.length).toBeLessThanOrEqual(12);
    const gaps = k.polls.slice(1).map((t, i) => t - k.polls[i]!);
    expect(Math.max(...gaps)).toBeGreaterThanOrEqual(350);
    expect(Math.max(...gaps)).toBeLessThan(600);
  });

  it('polls at once when woken, so a queued write is delivered without waiting out the backoff', async () => {
    const k = fakeKinesis();
    const delivered: Array<{ n: string; at: number }> = [];
    const runner = runnerOver(k.client, delivered);
    await runner.start();
    await sleep(1000); // well into the backoff: the next poll is up to 400 ms away
    const t = Date.now();
    k.put(1);
    runner.wake();
    for (let i = 0; i < 100 && delivered.length === 0; i++) await sleep(5);
    await runner.stop();
    expect(delivered.map((d) => d.n)).toEqual(['1']);
    expect(delivered[0]!.at - t).toBeLessThan(100);
  });

  it('still delivers a record that arrives without a wake, within idlePollMaxMs', async () => {
    const k = fakeKinesis();
    const delivered: Array<{ n: string; at: number }> = [];
    const runner = runnerOver(k.client, delivered);
    await runner.start();
    await sleep(1000);
    const t = Date.now();
    k.put(2);
    for (let i = 0; i < 200 && delivered.length === 0; i++) await sleep(5);
    await runner.stop();
    expect(delivered.map((d) => d.n)).toEqual(['2']);
    expect(delivered[0]!.at - t).toBeLessThanOrEqual(400 + 100);
  });

  it('goes back to its short interval after records found without a wake: such a burst is read without backoff delays', async () => {
    const k = fakeKinesis();
    const delivered: Array<{ n: string; at: number }> = [];
    const runner = runnerOver(k.client, delivered);
    await runner.start();
    await sleep(1000);
    k.put(1); // no wake: found by the backoff's next poll
    for (let i = 0; i < 120 && delivered.length === 0; i++) await sleep(5);
    await sleep(50);
    const t = Date.now();
    k.put(2); // no wake either: the runner is at its 10-20 ms interval again after the first record
    for (let i = 0; i < 100 && delivered.length < 2; i++) await sleep(5);
    await runner.stop();
    expect(delivered.map((d) => d.n)).toEqual(['1', '2']);
    expect(delivered[1]!.at - t).toBeLessThan(100);
  });

  it('after a woken batch at the shard\'s tip, waits for the next wake instead of polling the empty shard again', async () => {
    const k = fakeKinesis();
    const delivered: Array<{ n: string; at: number }> = [];
    const runner = runnerOver(k.client, delivered);
    await runner.start();
    await sleep(1000); // backed off to 400 ms
    for (let n = 1; n <= 3; n++) {
      k.put(n);
      runner.wake();
      const t = Date.now();
      for (let i = 0; i < 100 && delivered.length < n; i++) await sleep(5);
      expect(delivered.at(-1)!.n).toBe(String(n));
      expect(delivered.at(-1)!.at - t).toBeLessThan(100);
      await sleep(150);
    }
    const before = k.polls.length;
    await sleep(200);
    const idlePolls = k.polls.length - before;
    await runner.stop();
    // Each wake: one poll with the record. Polling on after each batch (a prefetch, then the
    // backoff from 10 ms) would add an empty poll at once and about four more within 150 ms.
    expect(k.polls.filter((p) => p >= delivered[0]!.at - 100).length).toBeLessThanOrEqual(3 + 2);
    expect(idlePolls).toBeLessThanOrEqual(1);
  });

  it('polls an empty shard at most once per pollIntervalMs however many wakes come (a wake per write must not multiply polls)', async () => {
    const k = fakeKinesis();
    const runner = runnerOver(k.client, []);
    await runner.start();
    const t = Date.now();
    while (Date.now() - t < 500) {
      runner.wake();
      await sleep(1);
    }
    const polls = k.polls.filter((p) => p >= t).length;
    await runner.stop();
    // 500 ms at one poll per 10 ms at most (a few more for timer slack); unbounded, it would poll on every wake.
    expect(polls).toBeGreaterThan(20);
    expect(polls).toBeLessThanOrEqual(55);
  });
});
