/**
 * Applies read-model changes to the durable copy (DynamoDB) and the hot copy (Redis); item writes
 * are version-guarded, so replays and races are harmless.
 *
 * `applyBatch` is the throughput path: of several versions of one item in a batch only the newest
 * is written (an older one would be refused by the guard anyway); item writes stay conditional
 * PutItems (BatchWriteItem cannot carry a condition), sent in parallel with bounded concurrency.
 * Final request statuses go through BatchWriteItem, unconditionally: a request is decided once
 * (replays return the stored outcome), so the final status is immutable, and the only other
 * writer of that row would be a rank-1 `queued` write, which is itself conditional and refused
 * once the final exists.
 */
import { BatchWriteCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { requestsPk } from '../core/keys';
import type { DurableStore, HotStore, ItemWrite, RequestWrite } from '../read-model/stores';
import { RANK_FINAL } from '../read-model/stores';
import type { ReadModelChange } from './projections';

/** Writes many final request statuses at once. */
export interface RequestBatchWriter {
  putFinalRequests(writes: RequestWrite[]): Promise<void>;
}

export class DynamoRequestBatchWriter implements RequestBatchWriter {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly requestsTable: string,
    private readonly concurrency = 8,
  ) {}

  async putFinalRequests(writes: RequestWrite[]): Promise<void> {
    const chunks: RequestWrite[][] = [];
    for (let i = 0; i < writes.length; i += 25) chunks.push(writes.slice(i, i + 25));
    await mapLimit(chunks, this.concurrency, async (chunk) => {
      // Same row layout as DynamoDurableStore.putRequest.
      let pending: Record<string, unknown>[] = chunk.map((w) => ({ PutRequest: { Item: { pk: requestsPk(w.tenant, w.requestId), rank: w.rank, doc: w.json } } }));
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(20 * 2 ** attempt, 500)));
        if (attempt > 8) throw new Error(`BatchWriteItem left ${pending.length} request statuses unprocessed`);
        const out = await this.doc.send(new BatchWriteCommand({ RequestItems: { [this.requestsTable]: pending as never } }));
        pending = (out.UnprocessedItems?.[this.requestsTable] as Record<string, unknown>[] | undefined) ?? [];
      }
    });
  }
}

export class Projector {
  constructor(
    private readonly durable: DurableStore,
    private readonly hot: HotStore,
    private readonly batchRequests?: RequestBatchWriter,
    private readonly concurrency = 16,
  ) {}

  async apply(change: ReadModelChange): Promise<void> {
    const writes: Promise<boolean>[] = [this.durable.putRequest(change.request), this.hot.putRequest(change.request)];
    if (change.item) writes.push(this.durable.putItem(change.item), this.hot.putItem(change.item));
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
    await Promise.all([
      // Redis: sent together, one connection pipelines them.
      Promise.all([...items.map((i) => this.hot.putItem(i)), ...requests.map((r) => this.hot.putRequest(r))]),
      mapLimit(items, this.concurrency, (i) => this.durable.putItem(i)),
      this.batchRequests && finals.length === requests.length
        ? this.batchRequests.putFinalRequests(finals)
        : mapLimit(requests, this.concurrency, (r) => this.durable.putRequest(r)),
    ]);
  }
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  });
  await Promise.all(workers);
  return out;
}
