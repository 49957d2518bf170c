/**
 * A fake Kinesis client with one open shard (records appended by the test), for the local runner's
 * timing tests: what they check is when the runner polls and hands over batches, which the
 * emulator's own latency would only blur. Iterators are positions in the shard.
 */
import { GetRecordsCommand, GetShardIteratorCommand, type KinesisClient, ListShardsCommand, type _Record } from '@aws-sdk/client-kinesis';
import type { Checkpoint, CheckpointStore } from '../../processors/checkpoints';

export const silentLog = { debug() {}, info() {}, warn() {}, error() {}, child() { return silentLog; } };

export function fakeShard() {
  const records: _Record[] = [];
  /** When each GetRecords was answered. */
  const polls: number[] = [];
  const client = {
    async send(cmd: unknown) {
      if (cmd instanceof ListShardsCommand) return { Shards: [{ ShardId: 'shard-0' }] };
      if (cmd instanceof GetShardIteratorCommand) {
        // Sequence numbers are positions + 1 (see put()).
        const seq = Number(cmd.input.StartingSequenceNumber ?? 0);
        const at = cmd.input.ShardIteratorType === 'AT_SEQUENCE_NUMBER' ? seq - 1 : cmd.input.ShardIteratorType === 'AFTER_SEQUENCE_NUMBER' ? seq : 0;
        return { ShardIterator: String(at) };
      }
      if (cmd instanceof GetRecordsCommand) {
        polls.push(Date.now());
        const from = Number(cmd.input.ShardIterator);
        const out = records.slice(from, from + (cmd.input.Limit ?? 500));
        return { Records: out, NextShardIterator: String(from + out.length), MillisBehindLatest: 0 };
      }
      throw new Error(`unexpected command ${(cmd as object).constructor.name}`);
    },
  };
  /** Appends a record whose data is `n`; returns its sequence number. */
  const put = (n: number): string => {
    const seq = String(records.length + 1).padStart(20, '0');
    records.push({ SequenceNumber: seq, PartitionKey: 'k', Data: Buffer.from(String(n)), ApproximateArrivalTimestamp: new Date() });
    return seq;
  };
  return { client: client as unknown as KinesisClient, polls, put };
}

export function memoryCheckpoints(): CheckpointStore & { at: Map<string, Checkpoint> } {
  const at = new Map<string, Checkpoint>();
  return {
    at,
    get: async (s) => at.get(s),
    save: async (s, sequenceNumber, finished = false) => {
      at.set(s, { sequenceNumber, finished });
    },
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
