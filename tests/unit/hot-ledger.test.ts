/**
 * The hot-copy ledger (processors/hot-ledger.ts): with both consumers in one process, the
 * projection consumer skips the hot copy (Redis) of records whose hot write the commit consumer
 * saw succeed, and writes every other record's as before: a failed hot write, a record outside
 * the confirmed ranges, a ledger pruned or over its cap. The durable copy is always written.
 */
import type { KinesisStreamEvent } from 'aws-lambda';
import type { AckLog } from '../../core/ack-log';
import type { Command } from '../../core/contracts';
import { createLogger } from '../../core/log';
import type { ReadModelChange } from '../../core/projections';
import { MemoryAckLog } from '../../core/ack-log';
import { type HotStore, type ItemWrite, MemoryHotStore, type RequestWrite } from '../../core/read-store';
import { createPublisher } from '../../processors/commit-consumer';
import type { BatchEntry, BatchOutcome } from '../../processors/command-store';
import { HotCopyLedger } from '../../processors/hot-ledger';
import { createProjectionHandler } from '../../processors/projection-consumer';
import { Projector } from '../../processors/projection-writer';

const log = createLogger('error');
const SHARD = 'shardId-000000000000';

const cmd = (n: number, id = `i${n}`): Command => ({
  v: 1, requestId: `r${n}`, kind: 'put', tenant: 't1', principal: 'u1', collection: 'notes', id, data: { n }, receivedAt: new Date().toISOString(),
} as Command);
const committed = (id: string, version = 1): BatchOutcome => ({
  status: 'committed', version, decidedAt: new Date().toISOString(), redelivered: false,
  state: { tenant: 't1', collection: 'notes', id, version, deleted: false, data: { n: version }, updatedAt: new Date().toISOString() },
});
const seq = (n: number) => String(1000 + n);

/** A hot store that records what it was asked to write (around the in-memory one); `fail` makes writes throw. */
class RecordingHot extends MemoryHotStore {
  itemIds: string[] = [];
  requestIds: string[] = [];
  fail = false;
  override async putItem(w: ItemWrite) {
    if (this.fail) throw new Error('redis down');
    this.itemIds.push(w.id);
    return super.putItem(w);
  }
  override async putRequest(w: RequestWrite) {
    if (this.fail) throw new Error('redis down');
    this.requestIds.push(w.requestId);
    return super.putRequest(w);
  }
}

describe('HotCopyLedger', () => {
  it('confirms ranges per shard, forgets them once pruned, and keeps at most its cap', () => {
    const l = new HotCopyLedger(2);
    l.confirm('a', '10', '20');
    expect(l.written('a', '10')).toBe(true);
    expect(l.written('a', '15')).toBe(true);
    expect(l.written('a', '21')).toBe(false);
    expect(l.written('b', '15')).toBe(false);
    l.confirm('a', '30', '30');
    l.confirm('a', '40', '50'); // over the cap: [10, 20] goes
    expect(l.written('a', '15')).toBe(false);
    expect(l.written('a', '30')).toBe(true);
    l.prune('a', '30');
    expect(l.written('a', '30')).toBe(false);
    expect(l.written('a', '45')).toBe(true);
    expect(l.size('a')).toBe(1);
  });
});

describe('the commit consumer confirms only hot writes that succeeded', () => {
  const entries = (ns: number[]): BatchEntry[] => ns.map((n) => ({ cmd: cmd(n), shardId: SHARD, sequenceNumber: seq(n) }));
  const acks = (): AckLog => new MemoryAckLog();

  it('a written batch confirms its range', async () => {
    const ledger = new HotCopyLedger();
    const publish = createPublisher({ projector: new Projector(null, new RecordingHot()), acks: acks(), log, projectionBestEffort: true, hotLedger: ledger });
    expect(await publish(entries([1, 2, 3]), [committed('i1'), committed('i2'), committed('i3')])).toBe(-1);
    expect([1, 2, 3].map((n) => ledger.written(SHARD, seq(n)))).toEqual([true, true, true]);
    expect(ledger.written(SHARD, seq(4))).toBe(false);
  });

  it('a failed hot write confirms nothing (the acks still go out: best effort)', async () => {
    const ledger = new HotCopyLedger();
    const hot = new RecordingHot();
    hot.fail = true;
    const publish = createPublisher({ projector: new Projector(null, hot), acks: acks(), log, projectionBestEffort: true, hotLedger: ledger });
    expect(await publish(entries([1, 2]), [committed('i1'), committed('i2')])).toBe(-1);
    expect(ledger.written(SHARD, seq(1))).toBe(false);
    expect(ledger.size(SHARD)).toBe(0);
  });
});

describe('the projection consumer with the ledger', () => {
  const event = (ns: number[]): KinesisStreamEvent => ({
    Records: ns.map((n) => ({ eventID: `${SHARD}:${seq(n)}`, kinesis: { sequenceNumber: seq(n), data: Buffer.from(JSON.stringify(cmd(n))).toString('base64') } })),
  } as unknown as KinesisStreamEvent);

  function setup(ledger: HotCopyLedger) {
    const hot = new RecordingHot();
    const durable: ReadModelChange[] = [];
    // The durable side recorded through the projector's own path (a hot-only Projector beside a recording durable one).
    const hotProjector = new Projector(null, hot as HotStore);
    const handler = createProjectionHandler({
      lookup: { lookupBatch: async (es) => es.map((e) => committed(e.cmd.id)) },
      projector: {
        async applyBatch(changes, guarded, hotWritten) {
          durable.push(...changes);
          await hotProjector.applyBatch(changes, guarded, hotWritten);
        },
      },
      log,
      hotLedger: ledger,
    });
    return { hot, durable, handler };
  }

  it('writes the hot copy only of records the commit consumer did not confirm; the durable copy of all', async () => {
    const ledger = new HotCopyLedger();
    ledger.confirm(SHARD, seq(1), seq(2));
    ledger.confirm(SHARD, seq(4), seq(4));
    const { hot, durable, handler } = setup(ledger);
    expect(await handler(event([1, 2, 3, 4, 5]))).toEqual({ batchItemFailures: [] });
    expect(durable.map((c) => c.request.requestId)).toEqual(['r1', 'r2', 'r3', 'r4', 'r5']);
    expect(hot.itemIds.sort()).toEqual(['i3', 'i5']);
    expect(hot.requestIds.sort()).toEqual(['r3', 'r5']);
    // Past them now: the ranges are forgotten (a redelivery writes the hot copy again, harmlessly).
    expect(ledger.size(SHARD)).toBe(0);
  });

  it('without confirmations it writes every hot copy, as before', async () => {
    const { hot, handler } = setup(new HotCopyLedger());
    await handler(event([1, 2]));
    expect(hot.requestIds.sort()).toEqual(['r1', 'r2']);
    expect(hot.itemIds.sort()).toEqual(['i1', 'i2']);
  });
});
