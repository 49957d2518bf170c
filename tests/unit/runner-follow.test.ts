/**
 * A runner that follows another consumer of the same stream (the projection consumer following the
 * commit consumer in one process, PROJECTION_FOLLOW_MAX_WAIT_MS): it hands a batch over once the
 * leader has finished its records, so the follower's handler does not find records undecided and
 * read them again; a stalled leader delays a batch at most `maxWaitMs`; stop() ends the wait; a
 * leader's checkpoint counts as finished. Fake Kinesis (tests/helpers/fake-shard.ts).
 */
import type { KinesisStreamEvent } from 'aws-lambda';
import { ShardProgress, StreamRunner } from '../../processors/runner';
import { fakeShard, memoryCheckpoints, silentLog, sleep } from '../helpers/fake-shard';

const numbers = (event: KinesisStreamEvent) => event.Records.map((r) => Number(Buffer.from(r.kinesis.data, 'base64').toString()));

async function until(cond: () => boolean, ms = 3000) {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await sleep(5);
}

const base = { stream: 's', region: 'us-east-1', log: silentLog, batchSize: 500, pollIntervalMs: 10, idlePollMaxMs: 200, retryDelayMs: 50, shardRefreshMs: 60_000 };

describe('a runner following another consumer (the projection consumer after the commit consumer)', () => {
  it('hands over only records the leader has finished: no batch fails on an undecided record, none is read twice', async () => {
    const k = fakeShard();
    const progress = new ShardProgress();
    const decided = new Set<number>();
    const leader = new StreamRunner({
      ...base, kinesis: k.client, checkpoints: memoryCheckpoints(), progress,
      handler: async (event) => {
        await sleep(30); // a commit takes a while
        for (const n of numbers(event)) decided.add(n);
        return { batchItemFailures: [] };
      },
    });
    const seen: number[] = [];
    let failedBatches = 0;
    const follower = new StreamRunner({
      ...base, kinesis: k.client, checkpoints: memoryCheckpoints(), batchWindowMs: 100, follow: { progress, maxWaitMs: 2000 },
      handler: async (event) => {
        // As the projection consumer: stop at the first record not decided yet.
        const ns = numbers(event);
        const undecided = ns.findIndex((n) => !decided.has(n));
        const upTo = undecided < 0 ? ns.length : undecided;
        seen.push(...ns.slice(0, upTo));
        if (undecided < 0) return { batchItemFailures: [] };
        failedBatches++;
        return { batchItemFailures: event.Records.slice(undecided).map((r) => ({ itemIdentifier: r.kinesis.sequenceNumber })) };
      },
    });
    await leader.start();
    await follower.start();
    for (let n = 0; n < 60; n++) {
      k.put(n);
      leader.wake();
      follower.wake();
      await sleep(5);
    }
    await until(() => seen.length === 60);
    await Promise.all([leader.stop(), follower.stop()]);
    expect(seen).toEqual([...Array(60).keys()]);
    expect(failedBatches).toBe(0);
  });

  it('waits at most maxWaitMs for a stalled leader, then hands the batch over (the handler decides what is done)', async () => {
    const k = fakeShard();
    const progress = new ShardProgress(); // no leader ever advances it
    const deliveredAt: number[] = [];
    const follower = new StreamRunner({
      ...base, kinesis: k.client, checkpoints: memoryCheckpoints(), follow: { progress, maxWaitMs: 150 },
      handler: async () => {
        deliveredAt.push(Date.now());
        return { batchItemFailures: [] };
      },
    });
    const t = Date.now();
    k.put(1);
    await follower.start();
    await until(() => deliveredAt.length === 1);
    await follower.stop();
    expect(deliveredAt[0]! - t).toBeGreaterThanOrEqual(140);
    expect(deliveredAt[0]! - t).toBeLessThan(1000);
  });

  it('stop() ends a follower waiting for its leader at once', async () => {
    const k = fakeShard();
    const follower = new StreamRunner({
      ...base, kinesis: k.client, checkpoints: memoryCheckpoints(), follow: { progress: new ShardProgress(), maxWaitMs: 30_000 },
      handler: async () => ({ batchItemFailures: [] }),
    });
    k.put(1);
    await follower.start();
    await sleep(100);
    const t = Date.now();
    await follower.stop();
    expect(Date.now() - t).toBeLessThan(500);
  });

  it("counts the leader's checkpoint as finished: a follower behind it does not wait", async () => {
    const k = fakeShard();
    const seqs = [0, 1, 2].map((n) => k.put(n));
    const leaderCheckpoints = memoryCheckpoints();
    await leaderCheckpoints.save('shard-0', seqs[2]!);
    const progress = new ShardProgress();
    const leader = new StreamRunner({ ...base, kinesis: k.client, checkpoints: leaderCheckpoints, progress, handler: async () => ({ batchItemFailures: [] }) });
    const deliveredAt: number[] = [];
    const follower = new StreamRunner({
      ...base, kinesis: k.client, checkpoints: memoryCheckpoints(), follow: { progress, maxWaitMs: 5000 },
      handler: async (event) => {
        deliveredAt.push(...numbers(event).map(() => Date.now()));
        return { batchItemFailures: [] };
      },
    });
    await leader.start();
    await until(() => progress.reached('shard-0', seqs[2]!));
    const t = Date.now();
    await follower.start();
    await until(() => deliveredAt.length === 3);
    await Promise.all([leader.stop(), follower.stop()]);
    expect(deliveredAt).toHaveLength(3);
    expect(Math.max(...deliveredAt) - t).toBeLessThan(1000);
  });
});

describe('ShardProgress', () => {
  it('only moves forward, per shard, comparing sequence numbers as numbers', () => {
    const p = new ShardProgress();
    p.advance('a', '900');
    p.advance('a', '1000');
    p.advance('a', '950');
    expect(p.reached('a', '1000')).toBe(true);
    expect(p.reached('a', '1001')).toBe(false);
    expect(p.reached('b', '1')).toBe(false);
    p.advance('b', '49590338271490256608559692538361571095921575989136588898');
    expect(p.reached('b', '49590338271490256608559692538361571095921575989136588897')).toBe(true);
  });

  it('resolves a wait when the shard passes the position, false at the timeout', async () => {
    const p = new ShardProgress();
    const reached = p.waitFor('a', '10', 1000);
    p.advance('a', '9');
    p.advance('a', '12');
    await expect(reached).resolves.toBe(true);
    await expect(p.waitFor('a', '20', 30)).resolves.toBe(false);
  });
});
