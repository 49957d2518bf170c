/**
 * Applies read-model changes to the durable copy (DynamoDB) and the hot copy (Redis); item writes
 * are version-guarded, so replays and races are harmless.
 *
 * `applyBatch` is the throughput path: of several versions of one item in a batch only the newest
 * is written (an older one would be refused by the guard anyway). BatchWriteItem cannot carry a
 * condition, so items go either as conditional PutItems in parallel (bounded concurrency), or —
 * for the items' single writer, the projection consumer with PROJECTION_ITEM_WRITES=batched —
 * read-then-batch (DurableStore.putItemsNewer: one BatchGetItem per 100 items and one
 * BatchWriteItem per 25 instead of one PutItem each, per active projection version).
 * Final request statuses go through BatchWriteItem, unconditionally: a request is decided once
 * (replays return the stored outcome), so the final status is immutable, and the only other
 * writer of that row would be a rank-1 `queued` write, which is itself conditional and refused
 * once the final exists.
 *
 * Why read-then-batch cannot regress an item for good. With `batched`, nothing else on the live
 * path writes durable items (the commit consumer's inline projector writes the hot copy and the
 * request statuses only), and one shard has one projection reader (in AWS, with a
 * ParallelizationFactor above 1, one per partition key, which is the item), so within the live
 * path the read and the write of an item cannot interleave with another write. The writers outside the
 * live path are all guarded: the operator's redrive and discard (processors/parking.ts), the
 * replay tool's reprocess and a rebuild folding the log into a `building` version. One of them
 * can land a newer version between this batch's read and its write, and the batch then puts its
 * older one over it. That is transient: every version any writer puts was decided in PostgreSQL
 * by a record of the item's shard, and this consumer writes the item's state as PostgreSQL has it
 * when it looks the batch up (PgCommandStore.lookupBatch answers a committed record with the
 * item's current state, not the record's), so the newer version was decided later, by a record it
 * has not reached yet (an undecided one stops the batch), and it writes that version again when it
 * gets there: within a batch window or so, since it reads on in order. The one record it can pass
 * without writing is a `held` one (its item parked): a redrive may decide it right after this
 * batch's lookup and write it while the batch writes the item's older state, and this consumer
 * has already passed it. So an item with a held record in the batch goes through the guarded
 * PutItem (`guarded` keys), which makes that case impossible.
 */
import { mapLimit } from '../core/map-limit';
import { type DurableStore, type HotStore, type ItemWrite, RANK_FINAL, type RequestBatchWriter } from '../core/read-store';
import type { ReadModelChange } from '../core/projections';

/** How a projector writes durable items: guarded PutItems, read-then-batch (single writer only), or not at all. */
export type ItemWrites = 'guarded' | 'single-writer' | 'none';

/** The key `applyBatch`'s `guarded` set holds for an item. */
export const itemWriteKey = (tenant: string, collection: string, id: string) => `${tenant}\u0000${collection}\u0000${id}`;

/**
 * Writes read-model changes to the copies it is given: both (redrive, replay), only the hot copy
 * (the commit consumer's fast path) or only the durable copy (the projection consumer). `items`:
 * how durable item writes go (`none`: the commit consumer's inline durable copy of request statuses
 * only, leaving items to their single writer).
 */
export class Projector implements BatchProjector {
  constructor(
    private readonly durable: DurableStore | null,
    private readonly hot: HotStore | null,
    private readonly batchRequests?: RequestBatchWriter,
    private readonly items: ItemWrites = 'guarded',
    private readonly concurrency = 16,
  ) {}

  async apply(change: ReadModelChange): Promise<void> {
    const writes: Promise<boolean>[] = [];
    if (this.durable) writes.push(this.durable.putRequest(change.request));
    if (this.hot) writes.push(this.hot.putRequest(change.request));
    if (change.item && this.durable && this.items !== 'none') writes.push(this.durable.putItem(change.item));
    if (change.item && this.hot) writes.push(this.hot.putItem(change.item));
    await Promise.all(writes);
  }

  /** `guarded`: keys (itemWriteKey) of items that must go through the guarded PutItem even for a single writer. */
  async applyBatch(changes: ReadModelChange[], guarded?: ReadonlySet<string>): Promise<void> {
    const newest = new Map<string, ItemWrite>();
    for (const c of changes) {
      if (!c.item) continue;
      const k = itemWriteKey(c.item.tenant, c.item.collection, c.item.id);
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
      durable && this.items !== 'none' && this.putItems(durable, items, guarded),
      durable && (this.batchRequests && finals.length === requests.length
        ? this.batchRequests.putFinalRequests(finals)
        : mapLimit(requests, this.concurrency, (r) => durable.putRequest(r))),
    ]);
  }

  private async putItems(durable: DurableStore, items: ItemWrite[], guarded: ReadonlySet<string> | undefined): Promise<void> {
    const guardedPut = (list: ItemWrite[]) => mapLimit(list, this.concurrency, (i) => durable.putItem(i));
    if (this.items !== 'single-writer' || !durable.putItemsNewer) {
      await guardedPut(items);
      return;
    }
    const batched: ItemWrite[] = [];
    const one: ItemWrite[] = [];
    for (const i of items) (guarded?.has(itemWriteKey(i.tenant, i.collection, i.id)) ? one : batched).push(i);
    // A single item costs one PutItem guarded, two calls read-then-batch.
    if (batched.length === 1) one.push(batched.pop()!);
    await Promise.all([guardedPut(one), batched.length > 0 && durable.putItemsNewer(batched)]);
  }
}

/** What the handlers need of a projector. */
export interface BatchProjector {
  /** `guarded`: items (itemWriteKey) that must be written with the version guard (Projector). */
  applyBatch(changes: ReadModelChange[], guarded?: ReadonlySet<string>): Promise<void>;
}

/**
 * The commit consumer's fast path: the hot copy before the ack (so a `committed` item is readable
 * at once) and, under light traffic, the durable copy too: the request statuses, and with
 * PROJECTION_ITEM_WRITES=guarded the items, so listings (served from DynamoDB) show a write when
 * its ack arrives (with `batched` the projection consumer is the items' only durable writer, and
 * listings follow it: consumerProjectors). Under heavy traffic (more than `lightRecordsPerSecond` over the last
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

/**
 * The two consumers' projectors over the same read-model stores (one place, for main.ts and lambda.ts).
 * `itemWrites`: `batched` makes the projection consumer the only durable item writer on the live
 * path, writing read-then-batch (a few calls per batch instead of one PutItem per item, the
 * processors' and DynamoDB's largest CPU cost per write); the commit consumer's inline durable copy
 * then holds the request statuses only, so a listing shows a write when the projection consumer
 * got to it, not when its ack arrives (`consistentWith` waits for that). `guarded`: every item
 * write is a conditional PutItem, and the inline projector writes items too under light traffic.
 */
export function consumerProjectors(
  stores: { durable: DurableStore; hot: HotStore },
  requests: RequestBatchWriter,
  inline: { budgetMs: number; maxRate: number },
  itemWrites: 'batched' | 'guarded' = 'batched',
): { commit: InlineProjector; projection: Projector } {
  const batched = itemWrites === 'batched';
  return {
    commit: new InlineProjector(
      new Projector(null, stores.hot),
      new Projector(stores.durable, null, requests, batched ? 'none' : 'guarded'),
      inline.budgetMs,
      inline.maxRate,
    ),
    projection: new Projector(stores.durable, stores.hot, requests, batched ? 'single-writer' : 'guarded'),
  };
}
