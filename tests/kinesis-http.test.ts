/**
 * core/kinesis-http.ts against the real emulator (kinesalite), side by side with the SDK client:
 * for the same calls on the same records it answers with the same shapes (bytes, timestamps,
 * iterators, a shard's end after a reshard) and fails with the same error names, so the local
 * runner (STREAM_READ_CLIENT=http) and the gateway (STREAM_CLIENT=http) see one interface.
 */
import {
  CreateStreamCommand,
  GetRecordsCommand,
  type GetRecordsCommandOutput,
  GetShardIteratorCommand,
  type GetShardIteratorInput,
  type KinesisClient,
  ListShardsCommand,
  PutRecordsCommand,
  SplitShardCommand,
} from '@aws-sdk/client-kinesis';
import type { KinesisStreamEvent } from 'aws-lambda';
import { createKinesis } from '../core/aws';
import { HttpKinesisClient } from '../core/kinesis-http';
import { listShards } from '../core/kinesis-shards';
import type { Checkpoint, CheckpointStore } from '../processors/checkpoints';
import { StreamRunner } from '../processors/runner';
import { type Emulators, startEmulators, waitStreamActive } from '../scripts/local-stack';

let emulators: Emulators;
let sdk: KinesisClient;
let viaHttp: HttpKinesisClient;
const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
let streamCount = 0;

beforeAll(async () => {
  emulators = await startEmulators();
  sdk = createKinesis({ region: 'us-east-1', endpoint: emulators.kinesisEndpoint });
  viaHttp = new HttpKinesisClient({ endpoint: emulators.kinesisEndpoint, region: 'us-east-1', credentials, fallback: sdk });
});

afterAll(async () => {
  viaHttp.destroy();
  sdk.destroy();
  await emulators.close();
});

async function newStream(shards: number): Promise<string> {
  const name = `kinesis-http-${++streamCount}`;
  await sdk.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
  // kinesalite makes a new stream ACTIVE (with its shards) on a timer, not in the CreateStream
  // call: on a busy machine a ListShards right after it found no shards yet.
  await waitStreamActive(sdk, name);
  return name;
}

/** Every byte value, plus records of other sizes: what base64 would garble if anything were off. */
const payloads = [
  Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
  Buffer.from('{"v":1,"text":"ünïcödé ✓"}'),
  Buffer.alloc(3000, 0xff),
  Buffer.from([0]),
];

async function putAll(stream: string, keys = ['a', 'b', 'c', 'd']): Promise<void> {
  const records = keys.flatMap((k) => payloads.map((Data) => ({ PartitionKey: k, Data })));
  const out = await sdk.send(new PutRecordsCommand({ StreamName: stream, Records: records }));
  expect(out.FailedRecordCount).toBe(0);
}

/** An answer without what differs between two calls by nature: the request's metadata and the (time-stamped) next iterator. */
function comparable(out: GetRecordsCommandOutput) {
  const { $metadata, NextShardIterator, ...rest } = out;
  return { ...rest, hasNext: typeof NextShardIterator === 'string' };
}

/** The first shard of a stream: its id and the hash key that splits it in two. */
async function firstShard(stream: string): Promise<{ ShardId: string; middle: string }> {
  const [shard] = await listShards(sdk, stream);
  return { ShardId: shard!.ShardId!, middle: (BigInt(shard!.HashKeyRange!.EndingHashKey!) / 2n).toString() };
}

const iterator = async (client: Pick<KinesisClient, 'send'>, input: GetShardIteratorInput) =>
  (await client.send(new GetShardIteratorCommand(input))).ShardIterator!;

test('GetShardIterator and GetRecords answer with the SDK client\'s shapes: bytes, arrival times, lag', async () => {
  const stream = await newStream(2);
  await putAll(stream);
  const shards = await listShards(sdk, stream);
  let seen = 0;
  for (const { ShardId } of shards) {
    const input = { StreamName: stream, ShardId, ShardIteratorType: 'TRIM_HORIZON' } as const;
    const fromSdk = await sdk.send(new GetRecordsCommand({ ShardIterator: await iterator(sdk, input) }));
    const fromHttp = await viaHttp.send(new GetRecordsCommand({ ShardIterator: await iterator(viaHttp, input) }));
    expect(comparable(fromHttp)).toStrictEqual(comparable(fromSdk));
    expect(fromHttp.$metadata.httpStatusCode).toBe(200);
    for (const r of fromHttp.Records!) {
      expect(r.Data).toBeInstanceOf(Uint8Array);
      expect(r.ApproximateArrivalTimestamp).toBeInstanceOf(Date);
    }
    seen += fromHttp.Records!.length;
  }
  expect(seen).toBe(4 * payloads.length);
});

test('the records\' bytes come back exactly as they were put, in order, and Limit and the next iterator page through them', async () => {
  const stream = await newStream(1);
  await putAll(stream, ['only']);
  const { ShardId } = await firstShard(stream);
  const got: Buffer[] = [];
  let it: string | undefined = await iterator(viaHttp, { StreamName: stream, ShardId, ShardIteratorType: 'TRIM_HORIZON' });
  while (got.length < payloads.length) {
    const out: GetRecordsCommandOutput = await viaHttp.send(new GetRecordsCommand({ ShardIterator: it, Limit: 1 }));
    expect(out.Records!.length).toBe(1);
    got.push(Buffer.from(out.Records![0]!.Data!));
    it = out.NextShardIterator;
  }
  expect(got).toEqual(payloads);
});

test('iterators after or at a sequence number, and at a timestamp, start where the SDK client\'s do', async () => {
  const stream = await newStream(1);
  const before = new Date(Date.now() - 1000);
  await putAll(stream, ['k']);
  const { ShardId } = await firstShard(stream);
  const all = await sdk.send(new GetRecordsCommand({ ShardIterator: await iterator(sdk, { StreamName: stream, ShardId, ShardIteratorType: 'TRIM_HORIZON' }) }));
  const second = all.Records![1]!.SequenceNumber!;
  const inputs: GetShardIteratorInput[] = [
    { StreamName: stream, ShardId, ShardIteratorType: 'AT_SEQUENCE_NUMBER', StartingSequenceNumber: second },
    { StreamName: stream, ShardId, ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: second },
    { StreamName: stream, ShardId, ShardIteratorType: 'AT_TIMESTAMP', Timestamp: before },
    { StreamName: stream, ShardId, ShardIteratorType: 'LATEST' },
  ];
  for (const input of inputs) {
    const fromSdk = await sdk.send(new GetRecordsCommand({ ShardIterator: await iterator(sdk, input) }));
    const fromHttp = await viaHttp.send(new GetRecordsCommand({ ShardIterator: await iterator(viaHttp, input) }));
    expect(comparable(fromHttp)).toStrictEqual(comparable(fromSdk));
  }
});

test('an empty shard: no records, a next iterator, no lag', async () => {
  const stream = await newStream(1);
  const { ShardId } = await firstShard(stream);
  const out = await viaHttp.send(new GetRecordsCommand({ ShardIterator: await iterator(viaHttp, { StreamName: stream, ShardId, ShardIteratorType: 'TRIM_HORIZON' }) }));
  expect(comparable(out)).toStrictEqual({ Records: [], MillisBehindLatest: 0, hasNext: true });
});

test('a shard closed by a reshard is read to its end: the last answer has no next iterator, as with the SDK client', async () => {
  const stream = await newStream(1);
  await putAll(stream);
  const parent = await firstShard(stream);
  await sdk.send(new SplitShardCommand({ StreamName: stream, ShardToSplit: parent.ShardId, NewStartingHashKey: parent.middle }));
  const input = { StreamName: stream, ShardId: parent.ShardId, ShardIteratorType: 'TRIM_HORIZON' } as const;
  /** Every answer up to the one without a next iterator. */
  const readToEnd = async (client: Pick<KinesisClient, 'send'>) => {
    const answers: GetRecordsCommandOutput[] = [];
    let it: string | undefined = await iterator(client, input);
    while (it && answers.length < 10) {
      const out: GetRecordsCommandOutput = await client.send(new GetRecordsCommand({ ShardIterator: it }));
      answers.push(out);
      it = out.NextShardIterator;
    }
    return answers;
  };
  const fromSdk = await readToEnd(sdk);
  const fromHttp = await readToEnd(viaHttp);
  expect(fromHttp.at(-1)!.NextShardIterator).toBeUndefined();
  expect(fromHttp.flatMap((a) => a.Records)).toHaveLength(4 * payloads.length);
  // ChildShards included, where the service sends them (kinesalite does not). The lag of a closed
  // shard's last answer is counted from when the shard closed, so it grows between the two reads.
  const lagAsType = (a: GetRecordsCommandOutput) => ({ ...comparable(a), MillisBehindLatest: typeof a.MillisBehindLatest });
  expect(fromHttp.map(lagAsType)).toStrictEqual(fromSdk.map(lagAsType));
});

describe('failed calls carry the name the SDK client gives them (the runner tells them apart by name)', () => {
  const nameOf = (p: Promise<unknown>) => p.then(() => 'no error', (err: Error) => err.name);

  test('unknown stream, bad iterator', async () => {
    for (const client of [sdk, viaHttp] as Array<Pick<KinesisClient, 'send'>>) {
      await expect(nameOf(client.send(new GetShardIteratorCommand({ StreamName: 'no-such-stream', ShardId: 'shardId-000000000000', ShardIteratorType: 'TRIM_HORIZON' }))))
        .resolves.toBe('ResourceNotFoundException');
      await expect(nameOf(client.send(new GetRecordsCommand({ ShardIterator: 'not-an-iterator'.repeat(12) })))).resolves.toBe('InvalidArgumentException');
    }
  });

  test('an expired iterator', async () => {
    const stream = await newStream(1);
    const { ShardId } = await firstShard(stream);
    const input = { StreamName: stream, ShardId, ShardIteratorType: 'TRIM_HORIZON' } as const;
    const fromSdk = await iterator(sdk, input);
    const fromHttp = await iterator(viaHttp, input);
    // Iterators expire after 5 minutes: the (in-process) emulator's clock is moved past that
    // instead of waiting. The only stand-in in this file; the expiry answer itself is the emulator's.
    const later = Date.now() + 301_000;
    const clock = jest.spyOn(Date, 'now').mockImplementation(() => later);
    try {
      await expect(nameOf(sdk.send(new GetRecordsCommand({ ShardIterator: fromSdk })))).resolves.toBe('ExpiredIteratorException');
      await expect(nameOf(viaHttp.send(new GetRecordsCommand({ ShardIterator: fromHttp })))).resolves.toBe('ExpiredIteratorException');
    } finally {
      clock.mockRestore();
    }
  });
});

test('other commands go to the fallback SDK client; without one they are refused', async () => {
  const stream = await newStream(2);
  const out = await viaHttp.send(new ListShardsCommand({ StreamName: stream }));
  expect(out.Shards).toHaveLength(2);
  const bare = new HttpKinesisClient({ endpoint: emulators.kinesisEndpoint, region: 'us-east-1', credentials });
  try {
    await expect(bare.send(new ListShardsCommand({ StreamName: stream }))).rejects.toThrow(/ListShardsCommand/);
  } finally {
    bare.destroy();
  }
});

test('the local runner over signed HTTP delivers every record once, in order per key, across a reshard', async () => {
  const stream = await newStream(1);
  await putAll(stream);
  const parent = await firstShard(stream);
  await sdk.send(new SplitShardCommand({ StreamName: stream, ShardToSplit: parent.ShardId, NewStartingHashKey: parent.middle }));
  await putAll(stream);
  const delivered: Array<{ key: string; data: Buffer; seq: string }> = [];
  const at = new Map<string, Checkpoint>();
  const checkpoints: CheckpointStore = {
    get: async (s) => at.get(s),
    save: async (s, sequenceNumber, finished = false) => {
      at.set(s, { sequenceNumber, finished });
    },
  };
  const silent = { debug() {}, info() {}, warn() {}, error() {}, child() { return silent; } };
  const runner = new StreamRunner({
    kinesis: viaHttp, stream, region: 'us-east-1', checkpoints, log: silent,
    batchSize: 5, pollIntervalMs: 10, idlePollMaxMs: 50, retryDelayMs: 10, shardRefreshMs: 100,
    handler: async (event: KinesisStreamEvent) => {
      for (const r of event.Records) delivered.push({ key: r.kinesis.partitionKey, data: Buffer.from(r.kinesis.data, 'base64'), seq: r.kinesis.sequenceNumber });
      return { batchItemFailures: [] };
    },
  });
  await runner.start();
  try {
    const deadline = Date.now() + 10_000;
    while (delivered.length < 2 * 4 * payloads.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  } finally {
    await runner.stop();
  }
  expect(delivered).toHaveLength(2 * 4 * payloads.length);
  expect(new Set(delivered.map((d) => d.seq)).size).toBe(delivered.length);
  for (const key of ['a', 'b', 'c', 'd']) {
    expect(delivered.filter((d) => d.key === key).map((d) => d.data)).toEqual([...payloads, ...payloads]);
  }
  expect(at.get(parent.ShardId)).toMatchObject({ finished: true });
});
