/**
 * The local runner's checkpoint interval (`checkpointIntervalMs`, CHECKPOINT_INTERVAL_MS; `npm
 * start` uses 1000): while batches come, a shard's checkpoint is saved at most once per interval,
 * always at the newest position whose records are all finished; a retried batch never lets it pass
 * its first unfinished record; stop() saves what trails at once. Fake Kinesis (one shard,
 * tests/helpers/fake-shard.ts) and checkpoints in memory that log every save.
 */
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import type { Checkpoint, CheckpointStore } from '../../processors/checkpoints';
import { StreamRunner } from '../../processors/runner';
import { fakeShard, silentLog, sleep } from '../helpers/fake-shard';

function loggedCheckpoints(): CheckpointStore & { saves: Array<{ at: number; sequenceNumber: string }>; current(): string | undefined } {
  const at = new Map<string, Checkpoint>();
  const saves: Array<{ at: number; sequenceNumber: string }> = [];
  return {
    saves,
    current: () => at.get('shard-0')?.sequenceNumber,
    get: async (s) => at.get(s),
    save: async (s, sequenceNumber, finished = false) => {
      saves.push({ at: Date.now(), sequenceNumber });
      at.set(s, { sequenceNumber, finished });
    },
  };
}

function runnerWith(k: ReturnType<typeof fakeShard>, checkpoints: CheckpointStore, intervalMs: number, handle?: (ns: number[], e: KinesisStreamEvent) => KinesisStreamBatchResponse) {
  const delivered: number[] = [];
  const runner = new StreamRunner({
    kinesis: k.client, stream: 's', region: 'us-east-1', checkpoints, log: silentLog,
    batchSize: 500, pollIntervalMs: 10, idlePollMaxMs: 50, retryDelayMs: 10, shardRefreshMs: 60_000, checkpointIntervalMs: intervalMs,
    handler: async (event) => {
      const ns = event.Records.map((r) => Number(Buffer.from(r.kinesis.data, 'base64').toString()));
      const res = handle?.(ns, event) ?? { batchItemFailures: [] };
      const failed = new Set(res.batchItemFailures.map((f) => f.itemIdentifier));
      const firstFailed = event.Records.findIndex((r) => failed.has(r.kinesis.sequenceNumber));
      delivered.push(...(firstFailed < 0 ? ns : ns.slice(0, firstFailed)));
      return res;
    },
  });
  return { runner, delivered };
}

async function until(cond: () => boolean, ms = 3000) {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await sleep(5);
}

describe('the checkpoint interval', () => {
  it('saves one checkpoint per interval while batches come, at the newest finished record', async () => {
    const k = fakeShard();
    const checkpoints = loggedCheckpoints();
    const { runner, delivered } = runnerWith(k, checkpoints, 300);
    await runner.start();
    const seqs: string[] = [];
    const start = Date.now();
    while (Date.now() - start < 1000) {
      seqs.push(k.put(seqs.length));
      runner.wake();
      await sleep(15);
    }
    await until(() => delivered.length === seqs.length);
    // Dozens of batches, a handful of saves: about one per 300 ms.
    await until(() => checkpoints.current() === seqs.at(-1), 1000);
    expect(checkpoints.current()).toBe(seqs.at(-1));
    expect(checkpoints.saves.length).toBeGreaterThanOrEqual(2);
    expect(checkpoints.saves.length).toBeLessThanOrEqual(6);
    const gaps = checkpoints.saves.slice(1).map((s, i) => s.at - checkpoints.saves[i]!.at);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(250);
    // Never backwards.
    const order = checkpoints.saves.map((s) => s.sequenceNumber);
    expect([...order].sort()).toEqual(order);
    await runner.stop();
  });

  it('never saves past a record that is not finished, however long it is retried', async () => {
    const k = fakeShard();
    const checkpoints = loggedCheckpoints();
    let failing = true;
    const { runner, delivered } = runnerWith(k, checkpoints, 50, (ns, event) => {
      const i = ns.indexOf(3);
      if (!failing || i < 0) return { batchItemFailures: [] };
      return { batchItemFailures: event.Records.slice(i).map((r) => ({ itemIdentifier: r.kinesis.sequenceNumber })) };
    });
    const seqs = [0, 1, 2, 3, 4, 5].map((n) => k.put(n));
    await runner.start();
    await sleep(300);
    // Records 0..2 are finished, 3 keeps failing: the checkpoint is at 2, never further.
    expect(checkpoints.current()).toBe(seqs[2]);
    expect(checkpoints.saves.every((s) => s.sequenceNumber <= seqs[2]!)).toBe(true);
    failing = false;
    await until(() => delivered.length === 6);
    await until(() => checkpoints.current() === seqs[5]);
    expect(checkpoints.current()).toBe(seqs[5]);
    await runner.stop();
  });

  it('saves the position that trails at once when the runner stops', async () => {
    const k = fakeShard();
    const checkpoints = loggedCheckpoints();
    const { runner, delivered } = runnerWith(k, checkpoints, 60_000);
    const seqs = [0, 1, 2].map((n) => k.put(n));
    await runner.start();
    await until(() => delivered.length === 3);
    // The interval has not passed: nothing saved yet, the position waits.
    expect(checkpoints.saves).toEqual([]);
    const stopped = Date.now();
    await runner.stop();
    expect(Date.now() - stopped).toBeLessThan(1000);
    expect(checkpoints.current()).toBe(seqs[2]);
  });
});
