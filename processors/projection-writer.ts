/**
 * Applies read-model changes to the durable copy (DynamoDB) and the hot copy (Redis); item writes
 * are version-guarded, so replays and races are harmless.
 *
 * `applyBatch` is the throughput path: of several versions of one item in a batch only the newest
 * is written (an older one would be refused by the guard anyway). BatchWriteItem cannot carry a
 * condition, so items go either as conditional PutItems in parallel (bounded concurrency), or —
 * where the single-writer rule below holds — read-then-batch (DynamoItemBatchWriter).
 * Final request statuses go through BatchWriteItem, unconditionally: a request is decided once
 * (replays return the stored outcome), so the final status is immutable, and the only other
 * writer of that row would be a rank-1 `queued` write, which is itself conditional and refused
 * once the final exists.
 */
import { mapLimit } from '../core/map-limit';
import { type DurableStore, type DynamoItemBatchWriter, type HotStore, type ItemWrite, RANK_FINAL, type RequestBatchWriter } from '../core/read-store';
import type { ReadModelChange } from '../core/projections';

/**
 * Writes read-model changes to the copies it is given: both (redrive, replay), only the hot copy
 * (the commit consumer's fast path) or only the durable copy (the projection consumer).
 */
export class Projector {
  constructor(
    private readonly durable: DurableStore | null,
    private readonly hot: HotStore | null,
    private readonly batchRequests?: RequestBatchWriter,
    private readonly batchItems?: DynamoItemBatchWriter,
    private readonly concurrency = 16,
  ) {}

  async apply(change: ReadModelChange): Promise<void> {
    const writes: Promise<boolean>[] = [];
    if (this.durable) writes.push(this.durable.putRequest(change.request));
    if (this.hot) writes.push(this.hot.putRequest(change.request));
    if (change.item && this.durable) writes.push(this.durable.putItem(change.item));
    if (change.item && this.hot) writes.push(this.hot.putItem(change.item));
    await Promise.all(writes);
  }

  async applyBatch(changes: ReadModelChange[]): Promise<void> {
    const newest = new Map<string, ItemWrite>();
    for (const c of changes) {
      if (!c.item) continue;
      const k = `${c.item.tenant}\u0000${c.item.collection}\u0000${c.item.id}`;
      const cur = newest.get(k);
      if (!cur || cur.version < c.item.version) newest.set(k, c.item);
    }
    const items = [...newest.values()];
    const requests = changes.map((c) => c.request);
    const finals = requests.filter((r) => r.rank === RANK_FINAL);
    const { hot, durable } = this;
    await Promise.all([
      // Redis: in a few batched calls where the store has them, else one command each (sent together, one connection pipelines them).
      hot && (hot.putMany
        ? hot.putMany(items, requests)
        : Promise.all([...items.map((i) => hot.putItem(i)), ...requests.map((r) => hot.putRequest(r))])),
      durable && (this.batchItems && items.length > 1 ? this.batchItems.putNewer(items) : mapLimit(items, this.concurrency, (i) => durable.putItem(i))),
      durable && (this.batchRequests && finals.length === requests.length
        ? this.batchRequests.putFinalRequests(finals)
        : mapLimit(requests, this.concurrency, (r) => durable.putRequest(r))),
    ]);
  }
}

/** What the handlers need of a projector. */
export interface BatchProjector {
  applyBatch(changes: ReadModelChange[]): Promise<void>;
}

/**
 * The commit consumer's fast path: the hot copy before the ack (so a `committed` item is readable
 * at once) and, under light traffic, the durable copy too, so listings (served from DynamoDB) show
 * a write when its ack arrives. Under heavy traffic (more than `lightRecordsPerSecond` over the last
 * second, or a batch of more than `maxChanges`: a backlog) it leaves the durable copy to the
 * projection consumer, which guarantees it anyway, so DynamoDB never limits the commit rate. It
 * never waits past `budgetMs`: a DynamoDB that misses it (an outage, throttling) is not tried
 * again for 5 s, then longer while it keeps missing, so it cannot hold back commits or acks.
 * All writes are version-guarded, so the two paths racing is harmless.
 */
export class InlineProjector implements BatchProjector {
  private pending = 0;
  /** After the durable copy missed the budget: do not wait for it until then (backs off while it keeps missing). */
  private skipUntil = 0;
  private coolDownMs = 0;
  /** Records seen in the current and the previous second: the recent rate. */
  private window = { start: 0, current: 0, previous: 0 };

  constructor(
    private readonly hot: BatchProjector,
    private readonly durable: BatchProjector,
    private readonly budgetMs: number,
    private readonly lightRecordsPerSecond = 200,
    private readonly maxChanges = 100,
    private readonly maxPending = 1,
    private readonly maxCoolDownMs = 60_000,
  ) {}

  private recentRate(now: number, add: number): number {
    const w = this.window;
    const elapsed = now - w.start;
    if (elapsed >= 2_000) this.window = { start: now, current: 0, previous: 0 };
    else if (elapsed >= 1_000) this.window = { start: w.start + 1_000, current: 0, previous: w.current };
    this.window.current += add;
    // The previous second weighted by how much of it still lies within the last second.
    const into = (now - this.window.start) / 1_000;
    return this.window.current + this.window.previous * (1 - into);
  }

  async applyBatch(changes: ReadModelChange[]): Promise<void> {
    let durable: Promise<void> | undefined;
    const now = Date.now();
    const rate = this.recentRate(now, changes.length);
    if (
      this.budgetMs > 0 && now >= this.skipUntil && this.pending < this.maxPending
      && changes.length <= this.maxChanges && rate <= this.lightRecordsPerSecond
    ) {
      this.pending++;
      durable = this.durable.applyBatch(changes).catch(() => undefined).finally(() => {
        this.pending--;
      });
    }
    await this.hot.applyBatch(changes);
    if (!durable) return;
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([durable.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), this.budgetMs)))]);
    clearTimeout(timer);
    if (inTime) {
      this.coolDownMs = 0;
    } else {
      this.coolDownMs = Math.min(this.maxCoolDownMs, Math.max(5_000, this.coolDownMs * 2));
      this.skipUntil = Date.now() + this.coolDownMs;
    }
  }
}

/** The two consumers' projectors over the same read-model stores (one place, for main.ts and lambda.ts). */
export function consumerProjectors(
  stores: { durable: DurableStore; hot: HotStore },
  requests: RequestBatchWriter,
  inline: { budgetMs: number; maxRate: number },
): { commit: InlineProjector; projection: Projector } {
  return {
    commit: new InlineProjector(new Projector(null, stores.hot), new Projector(stores.durable, null, requests), inline.budgetMs, inline.maxRate),
    projection: new Projector(stores.durable, stores.hot, requests),
  };
}
