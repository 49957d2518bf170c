/**
 * The commit consumer's fast-path projection (processors/projector.ts InlineProjector): it waits
 * for the durable copy only within its budget and stops waiting while the durable copy cannot
 * keep up. Timing logic only: the two copies are in-memory recorders (the real stores are covered
 * by tests/processors.test.ts, including a DynamoDB outage).
 */
import { InlineProjector, type BatchProjector } from '../processors/projection-writer';
import type { ReadModelChange } from '../core/projections';

class Recorder implements BatchProjector {
  readonly applied: ReadModelChange[][] = [];
  constructor(private readonly delayMs: number) {}
  async applyBatch(changes: ReadModelChange[]) {
    await new Promise((r) => setTimeout(r, this.delayMs));
    this.applied.push(changes);
  }
}

const change = (n: number): ReadModelChange => ({
  request: { tenant: 't', requestId: `r${n}`, rank: 2, json: '{}' },
});

async function timed(f: () => Promise<void>): Promise<number> {
  const t = performance.now();
  await f();
  return performance.now() - t;
}

test('waits for a durable copy that answers within the budget, so it is there when the ack goes out', async () => {
  const hot = new Recorder(0);
  const durable = new Recorder(5);
  const p = new InlineProjector(hot, durable, 200);
  await p.applyBatch([change(1)]);
  expect(hot.applied).toHaveLength(1);
  expect(durable.applied).toHaveLength(1);
});

test('stops waiting at the budget, then skips the durable copy while it keeps missing', async () => {
  const durable = new Recorder(300);
  const p = new InlineProjector(new Recorder(0), durable, 50);
  const first = await timed(() => p.applyBatch([change(1)]));
  expect(first).toBeGreaterThanOrEqual(40); // it did wait, up to the budget
  expect(first).toBeLessThan(250); // and not for the slow durable copy
  // Within the cool-down the durable copy is not even tried: the projection consumer will do it.
  await p.applyBatch([change(2)]);
  await new Promise((r) => setTimeout(r, 300));
  expect(durable.applied.map((b) => b[0]!.request.requestId)).toEqual(['r1']);
});

test('under heavy traffic leaves the durable copy to the projection consumer', async () => {
  const durable = new Recorder(0);
  const p = new InlineProjector(new Recorder(0), durable, 200, 50);
  for (let i = 0; i < 10; i++) await p.applyBatch(Array.from({ length: 10 }, (_, k) => change(i * 10 + k)));
  // The first batches (rate still <= 50/s) were written inline, the rest left to the projection consumer.
  expect(durable.applied.length).toBeGreaterThan(0);
  expect(durable.applied.length).toBeLessThan(10);
  expect(durable.applied.flat().length).toBeLessThanOrEqual(50);
});

test('leaves a large batch (a backlog) to the projection consumer', async () => {
  const durable = new Recorder(0);
  const p = new InlineProjector(new Recorder(0), durable, 50);
  await p.applyBatch(Array.from({ length: 101 }, (_, i) => change(i)));
  expect(durable.applied).toHaveLength(0);
});

test('a budget of 0 never writes the durable copy inline', async () => {
  const durable = new Recorder(0);
  await new InlineProjector(new Recorder(0), durable, 0).applyBatch([change(1)]);
  expect(durable.applied).toHaveLength(0);
});
