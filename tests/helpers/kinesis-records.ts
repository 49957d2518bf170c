/** Reads every record on a stream from the start (GetRecords on each shard), for tests that check what was put. */
import { GetRecordsCommand, GetShardIteratorCommand, type KinesisClient, ListShardsCommand } from '@aws-sdk/client-kinesis';
import type { Command } from '../../core/contracts';

export interface StreamRecord {
  shardId: string;
  sequenceNumber: string;
  partitionKey: string;
  command: Command;
}

export async function readStream(kinesis: KinesisClient, stream: string): Promise<StreamRecord[]> {
  const shards = (await kinesis.send(new ListShardsCommand({ StreamName: stream }))).Shards ?? [];
  const out: StreamRecord[] = [];
  for (const shard of shards) {
    let iterator = (
      await kinesis.send(new GetShardIteratorCommand({ StreamName: stream, ShardId: shard.ShardId!, ShardIteratorType: 'TRIM_HORIZON' }))
    ).ShardIterator;
    while (iterator) {
      const page = await kinesis.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 10_000 }));
      for (const r of page.Records ?? []) {
        out.push({
          shardId: shard.ShardId!,
          sequenceNumber: r.SequenceNumber!,
          partitionKey: r.PartitionKey!,
          command: JSON.parse(Buffer.from(r.Data!).toString('utf8')) as Command,
        });
      }
      if (!page.Records?.length || page.MillisBehindLatest === 0) break;
      iterator = page.NextShardIterator;
    }
  }
  return out;
}

/** Records of one partition key in stream order (sequence numbers grow within a shard). */
export function inStreamOrder(records: StreamRecord[]): StreamRecord[] {
  return [...records].sort((a, b) => (BigInt(a.sequenceNumber) < BigInt(b.sequenceNumber) ? -1 : 1));
}
