/**
 * The local runner's wake-ups go to the shard that holds the write: a write's partition key maps
 * to one shard's hash key range (the MD5 of the key, as Kinesis maps it), and only that shard polls;
 * a wake without a key (a gap in the ack feed) still wakes every shard. A fake Kinesis client with
 * two shards, each half of the hash key space, stands in for the emulator: what is checked is which
 * shard polls when.
 */
import { createHash } from 'node:crypto';
import { GetRecordsCommand, GetShardIteratorCommand, type KinesisClient, ListShardsCommand } from '@aws-sdk/client-kinesis';
import { StreamRunner } from '../../processors/runner';
import { memoryCheckpoints, silentLog, sleep } from '../helpers/fake-shard';

const HALF = 2n ** 127n;
const shards = [
  { ShardId: 'shardId-000000000000', HashKeyRange: { StartingHashKey: '0', EndingHashKey: String(HALF - 1n) } },
  { ShardId: 'shardId-000000000001', HashKeyRange: { StartingHashKey: String(HALF), EndingHashKey: String(2n ** 128n - 1n) } },
];
const hashOf = (key: string) => BigInt(`0x${createHash('md5').update(key).digest('hex')}`);
/** A partition key that Kinesis would put on shard 0 (`low`) or shard 1. */
function keyOn(low: boolean): string {
  for (let i = 0; ; i++) if ((hashOf(`tenant/items/${i}`) < HALF) === low) return `tenant/items/${i}`;
}

function twoShards() {
  const polls: Array<{ shard: string; at: number }> = [];
  const client = {
    async send(cmd: unknown) {
      if (cmd instanceof ListShardsCommand) return { Shards: shards };
      if (cmd instanceof GetShardIteratorCommand) return { ShardIterator: cmd.input.ShardId };
      if (cmd instanceof GetRecordsCommand) {
        polls.push({ shard: cmd.input.ShardIterator!, at: Date.now() });
        return { Records: [], NextShardIterator: cmd.input.ShardIterator, MillisBehindLatest: 0 };
      }
      throw new Error(`unexpected command ${(cmd as object).constructor.name}`);
    },
  };
  return { client: client as unknown as KinesisClient, polls };
}

async function idleRunner() {
  const k = twoShards();
  const runner = new StreamRunner({
    kinesis: k.client, stream: 's', region: 'us-east-1', checkpoints: memoryCheckpoints(), log: silentLog,
    batchSize: 100, pollIntervalMs: 10, idlePollMaxMs: 2000, retryDelayMs: 10, shardRefreshMs: 60_000,
    handler: async () => ({ batchItemFailures: [] }),
  });
  await runner.start();
  await sleep(1200); // both shards backed off: their next timed polls are hundreds of ms away
  return { k, runner };
}

describe('the local runner\'s wake-ups', () => {
  it('wakes only the shard whose hash key range holds the write\'s partition key', async () => {
    const { k, runner } = await idleRunner();
    for (const low of [true, false]) {
      const t = Date.now();
      runner.wake(keyOn(low));
      await sleep(60);
      const woken = k.polls.filter((p) => p.at >= t).map((p) => p.shard);
      expect(woken).toEqual([low ? shards[0]!.ShardId : shards[1]!.ShardId]);
      await sleep(40);
    }
    await runner.stop();
  });

  it('wakes every shard for a wake without a key', async () => {
    const { k, runner } = await idleRunner();
    const t = Date.now();
    runner.wake();
    await sleep(60);
    expect(k.polls.filter((p) => p.at >= t).map((p) => p.shard).sort()).toEqual(shards.map((s) => s.ShardId));
    await runner.stop();
  });
});
