/**
 * The gateway's PutRecords batcher (gateway/batching-stream.ts) with a fake sender in place of
 * Kinesis: what each call carries, per-key order through partial failures, the bounds (503s).
 * A fake is right here: partial PutRecords failures cannot be produced on demand by the emulator.
 */
import type { PutRecordsCommand, PutRecordsCommandOutput, PutRecordsRequestEntry } from '@aws-sdk/client-kinesis';
import fc from 'fast-check';
import type { Command } from '../../core/contracts';
import { ServiceUnavailableError } from '../../core/errors';
import { partitionKey } from '../../core/keys';
import { BatchingCommandStream, type KinesisSender } from '../../gateway/batching-stream';

const cmd = (id: string, n: number): Command => ({
  v: 1, requestId: `r-${id}-${n}`, kind: 'put', tenant: 't', principal: 'p', collection: 'c', id, data: { n }, receivedAt: '2026-01-01T00:00:00.000Z',
});

/** Accepts every record (or fails those `failNext` picks), numbering them in acceptance order; records what each call carried. */
class FakeKinesis implements KinesisSender {
  calls: PutRecordsRequestEntry[][] = [];
  accepted: Array<{ key: string; requestId: string }> = [];
  failNext: (entry: PutRecordsRequestEntry) => boolean = () => false;
  hold: Promise<void> | undefined;
  private seq = 0;

  async send(command: PutRecordsCommand): Promise<PutRecordsCommandOutput> {
    const records = command.input.Records!;
    this.calls.push(records);
    if (this.hold) await this.hold;
    return {
      $metadata: {},
      FailedRecordCount: 0,
      Records: records.map((r) => {
        if (this.failNext(r)) return { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'slow down' };
        this.accepted.push({ key: r.PartitionKey!, requestId: (JSON.parse(Buffer.from(r.Data!).toString()) as Command).requestId });
        return { ShardId: 'shardId-000000000000', SequenceNumber: String(++this.seq) };
      }),
    };
  }
}

const fast = { lingerMs: 2, backoffBaseMs: 1, backoffMaxMs: 2, retryBudgetMs: 2_000 };

test('each put resolves with the position the stream gave its own record; the record is the command as JSON under its partition key', async () => {
  const kinesis = new FakeKinesis();
  const stream = new BatchingCommandStream(kinesis, 's', fast);
  const positions = await Promise.all([stream.put(cmd('a', 1)), stream.put(cmd('b', 1)), stream.put(cmd('c', 1))]);
  expect(positions.map((p) => p.shardId)).toEqual(['shardId-000000000000', 'shardId-000000000000', 'shardId-000000000000']);
  const byRequest = new Map(kinesis.accepted.map((a, i) => [a.requestId, String(i + 1)]));
  expect(positions.map((p) => p.sequenceNumber)).toEqual(['r-a-1', 'r-b-1', 'r-c-1'].map((r) => byRequest.get(r)));
  const entry = kinesis.calls.flat().find((r) => r.PartitionKey === partitionKey('t', 'c', 'b'))!;
  expect(JSON.parse(Buffer.from(entry.Data!).toString())).toEqual(cmd('b', 1));
  await stream.close();
});

test('property: with entries failing at random, every put is accepted once, in put order per key, and a call never holds two records of one key', async () => {
  await fc.assert(fc.asyncProperty(
    fc.array(fc.constantFrom('a', 'b', 'c', 'd'), { minLength: 1, maxLength: 40 }),
    fc.double({ min: 0, max: 0.5, noNaN: true }),
    async (ids, failRate) => {
      const kinesis = new FakeKinesis();
      let failures = 0;
      kinesis.failNext = () => failures < 30 && Math.random() < failRate && ++failures > 0;
      const stream = new BatchingCommandStream(kinesis, 's', { ...fast, maxRecords: 7 });
      const counts = new Map<string, number>();
      const puts = ids.map((id) => {
        const n = (counts.get(id) ?? 0) + 1;
        counts.set(id, n);
        return stream.put(cmd(id, n));
      });
      await Promise.all(puts);
      for (const call of kinesis.calls) {
        expect(call.length).toBeLessThanOrEqual(7);
        expect(new Set(call.map((r) => r.PartitionKey)).size).toBe(call.length);
      }
      expect(kinesis.accepted).toHaveLength(ids.length);
      for (const [id, n] of counts) {
        const order = kinesis.accepted.filter((a) => a.key === partitionKey('t', 'c', id)).map((a) => a.requestId);
        expect(order).toEqual(Array.from({ length: n }, (_, i) => `r-${id}-${i + 1}`));
      }
      await stream.close();
    },
  ), { numRuns: 30 });
});

test('a record the stream keeps refusing is answered 503 when its retry budget is spent, and the key moves on', async () => {
  const kinesis = new FakeKinesis();
  const refused = partitionKey('t', 'c', 'x');
  let first = true;
  kinesis.failNext = (r) => r.PartitionKey === refused && first;
  const stream = new BatchingCommandStream(kinesis, 's', { ...fast, retryBudgetMs: 30 });
  const doomed = stream.put(cmd('x', 1));
  const next = stream.put(cmd('x', 2));
  await expect(doomed).rejects.toBeInstanceOf(ServiceUnavailableError);
  first = false;
  await expect(next).resolves.toMatchObject({ shardId: 'shardId-000000000000' });
  expect(kinesis.accepted.map((a) => a.requestId)).toEqual(['r-x-2']);
  await stream.close();
});

test('bounded: past maxBuffered a put is refused at once with 503; after close() every put is refused', async () => {
  const kinesis = new FakeKinesis();
  let release!: () => void;
  kinesis.hold = new Promise<void>((r) => (release = r));
  const stream = new BatchingCommandStream(kinesis, 's', { ...fast, maxBuffered: 2 });
  const held = [stream.put(cmd('a', 1)), stream.put(cmd('b', 1))];
  await expect(stream.put(cmd('c', 1))).rejects.toMatchObject({ status: 503 });
  expect(stream.depth).toBe(2);
  release();
  await Promise.all(held);
  await stream.close();
  await expect(stream.put(cmd('d', 1))).rejects.toMatchObject({ status: 503 });
});
