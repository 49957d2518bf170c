/**
 * Batched DynamoDB writes of the read model (rows as in rows.ts), for the processors' throughput
 * path. BatchWriteItem cannot carry a condition, so each writer documents why unconditional
 * writes are safe where it is used.
 */
import { BatchGetCommand, BatchWriteCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { mapLimit } from '../../map-limit';
import { itemsPk, requestsPk } from '../../keys';
import type { RequestBatchWriter } from '../batch-writer';
import type { ItemWrite, RequestWrite } from '../writes';
import { itemKey, itemRow, requestRow } from './rows';

export class DynamoRequestBatchWriter implements RequestBatchWriter {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly requestsTable: string,
    private readonly concurrency = 8,
  ) {}

  async putFinalRequests(writes: RequestWrite[]): Promise<void> {
    // BatchWriteItem refuses a list with one key twice ("contains duplicates"), and one request can
    // be twice in a batch: producers retry, so the stream holds duplicates. A final status is
    // immutable, so either copy will do; refused, the batch would be retried forever.
    const unique = [...new Map(writes.map((w) => [requestsPk(w.tenant, w.requestId), w])).values()];
    const chunks: RequestWrite[][] = [];
    for (let i = 0; i < unique.length; i += 25) chunks.push(unique.slice(i, i + 25));
    await mapLimit(chunks, this.concurrency, async (chunk) => {
      await batchWrite(this.doc, this.requestsTable, chunk.map(requestRow), 'request statuses');
    });
  }
}

/**
 * Item projections by read-then-batch: BatchGetItem the current versions (strongly consistent),
 * then BatchWriteItem only the items we hold a newer version of. The write carries no condition
 * (BatchWriteItem cannot; dynalite has no TransactWriteItems), so this is for an item's single
 * writer only: the projection consumer with PROJECTION_ITEM_WRITES=batched (its partition key maps
 * an item to one shard, a shard has one reader, children start after parents). Why the operator's
 * writers (redrive, reprocess, rebuild, all guarded) beside it cannot regress an item for good:
 * processors/projection-writer.ts (Projector).
 */
export class DynamoItemBatchWriter {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly itemsTable: string,
    private readonly concurrency = 8,
  ) {}

  async putNewer(all: ItemWrite[]): Promise<void> {
    // One write per item, the newest (BatchGetItem and BatchWriteItem refuse duplicate keys).
    const byKey = new Map<string, ItemWrite>();
    for (const w of all) {
      const k = `${itemsPk(w.tenant, w.collection)}\u0000${w.id}`;
      if ((byKey.get(k)?.version ?? -1) < w.version) byKey.set(k, w);
    }
    const writes = [...byKey.values()];
    const current = new Map<string, number>();
    const gets: ItemWrite[][] = [];
    for (let i = 0; i < writes.length; i += 100) gets.push(writes.slice(i, i + 100));
    await mapLimit(gets, this.concurrency, async (chunk) => {
      let keys: Record<string, unknown>[] = chunk.map((w) => itemKey(w.tenant, w.collection, w.id));
      for (let attempt = 0; keys.length > 0; attempt++) {
        if (attempt > 8) throw new Error('BatchGetItem left keys unprocessed');
        if (attempt > 0) await backoff(attempt);
        const out = await this.doc.send(new BatchGetCommand({
          RequestItems: { [this.itemsTable]: { Keys: keys, ConsistentRead: true, ProjectionExpression: 'pk, id, version' } },
        }));
        for (const it of out.Responses?.[this.itemsTable] ?? []) current.set(`${it.pk}\u0000${it.id}`, Number(it.version));
        keys = (out.UnprocessedKeys?.[this.itemsTable]?.Keys as Record<string, unknown>[] | undefined) ?? [];
      }
    });
    const newer = writes.filter((w) => (current.get(`${itemsPk(w.tenant, w.collection)}\u0000${w.id}`) ?? 0) < w.version);
    const puts: ItemWrite[][] = [];
    for (let i = 0; i < newer.length; i += 25) puts.push(newer.slice(i, i + 25));
    await mapLimit(puts, this.concurrency, async (chunk) => {
      await batchWrite(this.doc, this.itemsTable, chunk.map(itemRow), 'items');
    });
  }
}

/** Retry pause before attempt `attempt` (1..): 40 ms doubling, at most 500 ms. */
function backoff(attempt: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.min(20 * 2 ** attempt, 500)));
}

/** One BatchWriteItem of at most 25 rows, retrying what DynamoDB leaves unprocessed. */
async function batchWrite(doc: DynamoDBDocumentClient, table: string, rows: Record<string, unknown>[], what: string): Promise<void> {
  let pending: Record<string, unknown>[] = rows.map((Item) => ({ PutRequest: { Item } }));
  for (let attempt = 0; pending.length > 0; attempt++) {
    if (attempt > 8) throw new Error(`BatchWriteItem left ${pending.length} ${what} unprocessed`);
    if (attempt > 0) await backoff(attempt);
    const out = await doc.send(new BatchWriteCommand({ RequestItems: { [table]: pending as never } }));
    pending = (out.UnprocessedItems?.[table] as Record<string, unknown>[] | undefined) ?? [];
  }
}
