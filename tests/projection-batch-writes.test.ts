/**
 * The projection consumer's durable item writes with PROJECTION_ITEM_WRITES=batched (the default):
 * read-then-batch (BatchGetItem + BatchWriteItem) into every active projection version, as the
 * items' only writer on the live path; the guarded PutItem for everything outside that rule.
 * Against the real DynamoDB emulator (dynalite, in memory) through the AWS SDK v3, counting the
 * SDK's calls the way the processors' /metrics do.
 */
import type { Server } from 'node:net';
import type { KinesisStreamEvent } from 'aws-lambda';
import { createDocumentClient, createDynamo } from '../core/aws';
import {
  DynamoProjectionRegistry, fanOutStores, itemsProjection, type ProjectionRecord, registryTableName, versionItemsTable, versionRedisPrefix,
} from '../core/projections';
import type { ReadModelChange } from '../core/projections';
import { DynamoDurableStore, DynamoRequestBatchWriter, ensureTable, itemsTableDefinition, type ItemWrite, MemoryHotStore, RANK_FINAL, requestsTableDefinition } from '../core/read-store';
import { consumerProjectors, itemWriteKey, Projector } from '../processors/projection-writer';
import { createProjectionHandler } from '../processors/projection-consumer';
import { createLogger } from '../core/log';
import { dynamoEmulator } from '../scripts/local-stack';

const listen = (server: Server) =>
  new Promise<string>((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as { port: number }).port}`)));

let server: Server;
let dynamo: ReturnType<typeof createDynamo>;
let doc: ReturnType<typeof createDocumentClient>;
/** DynamoDB operations sent, in order (the processors' counter: processors/metrics.ts countDynamoCalls). */
let calls: string[] = [];
/** Runs once right after the next call of this operation answered (a racing writer's turn). */
let after: { op: string; run: () => Promise<void> } | undefined;

beforeAll(async () => {
  server = dynamoEmulator();
  dynamo = createDynamo({ region: 'us-east-1', endpoint: await listen(server) });
  dynamo.middlewareStack.add(
    (next, context) => async (args) => {
      const op = (context.commandName ?? '').replace(/Command$/, '');
      calls.push(op);
      const out = await next(args);
      if (after?.op === op) {
        const { run } = after;
        after = undefined;
        await run();
      }
      return out;
    },
    { step: 'initialize', name: 'testCountCalls' },
  );
  doc = createDocumentClient(dynamo);
});

afterAll(async () => {
  dynamo.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

let n = 0;
/** A fresh set of tables (base items, requests, registry) per test. */
async function tables(): Promise<{ items: string; requests: string; registry: DynamoProjectionRegistry }> {
  n++;
  const items = `items-${n}`;
  const requests = `requests-${n}`;
  await ensureTable(dynamo, itemsTableDefinition(items));
  await ensureTable(dynamo, requestsTableDefinition(requests));
  const registry = new DynamoProjectionRegistry(doc, registryTableName(items), { itemsTable: items, redisPrefix: `p${n}:` });
  await registry.ensureTable(dynamo);
  return { items, requests, registry };
}

/** Registers version 2 of the items projection as `building` beside the live version 1 (as a rebuild does) and creates its table. */
async function buildingVersion(t: { items: string; registry: DynamoProjectionRegistry }): Promise<string> {
  const table = versionItemsTable(t.items, 2);
  await ensureTable(dynamo, itemsTableDefinition(table));
  const rec: ProjectionRecord = await t.registry.get('items');
  rec.versions['2'] = {
    n: 2, code: itemsProjection.version, itemsTable: table, redisPrefix: versionRedisPrefix(`p${n}:`, 2), state: 'building', createdAt: new Date().toISOString(),
  };
  await t.registry.save(rec);
  return table;
}

const item = (id: string, version: number): ItemWrite => itemsProjection.item({
  tenant: 't1', collection: 'notes', id, version, deleted: false, data: { v: version }, updatedAt: new Date(Date.UTC(2026, 11, 4, 12, 0, version)).toISOString(),
});
const change = (id: string, version: number): ReadModelChange => ({
  item: item(id, version),
  request: { tenant: 't1', requestId: `${id}-${version}`, rank: RANK_FINAL, json: JSON.stringify({ requestId: `${id}-${version}`, status: 'committed' }) },
});

const versionIn = async (table: string, requests: string, id: string) => (await new DynamoDurableStore(doc, table, requests).getItem('t1', 'notes', id))?.version;
const count = (op: string) => calls.filter((c) => c === op).length;

/** The projection consumer's projector over the fan-out stores (as composition.ts wires it). */
function projection(t: { items: string; requests: string }, itemWrites: 'batched' | 'guarded' = 'batched') {
  const base = { durable: new DynamoDurableStore(doc, t.items, t.requests), hot: new MemoryHotStore() };
  const stores = fanOutStores({ doc, itemsTable: t.items, requestsTable: t.requests, redisPrefix: `p${n}:`, base });
  return consumerProjectors(stores, new DynamoRequestBatchWriter(doc, t.requests), { budgetMs: 500, maxRate: 200 }, itemWrites);
}

describe('the projection consumer as the items\' single writer (PROJECTION_ITEM_WRITES=batched)', () => {
  beforeEach(() => {
    calls = [];
    after = undefined;
  });

  test("writes each active projection version's rows in one batch: a BatchGetItem and a BatchWriteItem per 25 items, per version, no PutItem", async () => {
    const t = await tables();
    const building = await buildingVersion(t);
    const { projection: p } = projection(t);
    calls = [];
    await p.applyBatch(Array.from({ length: 30 }, (_, i) => change(`i${i}`, 1)));
    // Per version: one BatchGetItem (≤ 100 keys), two BatchWriteItems (25 + 5); request statuses: two more BatchWriteItems.
    expect(count('PutItem')).toBe(0);
    expect(count('BatchGetItem')).toBe(2);
    expect(count('BatchWriteItem')).toBe(2 * 2 + 2);
    for (const table of [t.items, building]) {
      for (const id of ['i0', 'i17', 'i29']) expect(await versionIn(table, t.requests, id)).toBe(1);
    }
  });

  test('the guarded mode (main before this change) makes one PutItem per item and version', async () => {
    const t = await tables();
    await buildingVersion(t);
    const { projection: p } = projection(t, 'guarded');
    calls = [];
    await p.applyBatch(Array.from({ length: 30 }, (_, i) => change(`i${i}`, 1)));
    expect(count('PutItem')).toBe(60);
    expect(count('BatchGetItem')).toBe(0);
  });

  test('never writes an older version over a newer one, and of several versions in a batch writes the newest', async () => {
    const t = await tables();
    const base = new DynamoDurableStore(doc, t.items, t.requests);
    await base.putItem(item('a', 5));
    const { projection: p } = projection(t);
    await p.applyBatch([change('a', 3), change('b', 1), change('c', 2), change('c', 4), change('b', 2)]);
    expect(await versionIn(t.items, t.requests, 'a')).toBe(5);
    expect(await versionIn(t.items, t.requests, 'b')).toBe(2);
    expect(await versionIn(t.items, t.requests, 'c')).toBe(4);
    // A retried batch (the runner hands a failed batch back) changes nothing and writes nothing.
    calls = [];
    await p.applyBatch([change('b', 2), change('c', 4)]);
    expect(count('PutItem')).toBe(0);
    expect(calls.filter((c) => c === 'BatchWriteItem')).toHaveLength(1); // the request statuses only
  });

  test('the commit consumer writes request statuses inline but leaves items to the projection consumer', async () => {
    const t = await tables();
    const { commit } = projection(t);
    await commit.applyBatch([change('x', 1)]);
    expect(await versionIn(t.items, t.requests, 'x')).toBeUndefined();
    expect(await new DynamoDurableStore(doc, t.items, t.requests).getRequest('t1', 'x-1')).toContain('committed');
    // With `guarded` it writes the item too, as before.
    const g = await tables();
    await projection(g, 'guarded').commit.applyBatch([change('x', 1)]);
    expect(await versionIn(g.items, g.requests, 'x')).toBe(1);
  });

  test('an item with a held record in the batch goes with the guard: a redrive landing between the read and the write keeps its newer version', async () => {
    const t = await tables();
    const base = new DynamoDurableStore(doc, t.items, t.requests);
    await base.putItem(item('parked', 3));
    const { projection: p } = projection(t);
    // The batch holds v4 of `parked` (and a held record of it behind); an operator's redrive
    // decides the held record and writes v5, guarded, right after the batch's read.
    after = { op: 'BatchGetItem', run: async () => void (await base.putItem(item('parked', 5))) };
    await p.applyBatch([change('parked', 4), change('other', 1), change('other2', 1)], new Set([itemWriteKey('t1', 'notes', 'parked')]));
    expect(after).toBeUndefined(); // the redrive did run between the read and the write
    expect(await versionIn(t.items, t.requests, 'parked')).toBe(5);
    expect(await versionIn(t.items, t.requests, 'other')).toBe(1);
  });

  test('a rebuild writing the building version beside live traffic: a newer version it lands mid-batch is overwritten only until the consumer reaches that version', async () => {
    const t = await tables();
    const building = await buildingVersion(t);
    const rebuild = new DynamoDurableStore(doc, building, t.requests); // the rebuild's guarded store (processors/replay/rebuild.ts)
    const { projection: p } = projection(t);
    // The rebuild folds the log up to a head that includes v5 and writes it right after the batch's read of v3.
    after = { op: 'BatchGetItem', run: async () => void (await rebuild.putItem(item('r', 5))) };
    await p.applyBatch([change('r', 3), change('s', 1)]);
    expect(after).toBeUndefined();
    // v5 was decided after this batch's lookup (which saw v3 as the item's state), so its record
    // lies ahead of the consumer: its next batch writes v5 into every version again.
    await p.applyBatch([change('r', 5)]);
    expect(await versionIn(building, t.requests, 'r')).toBe(5);
    expect(await versionIn(t.items, t.requests, 'r')).toBe(5);
    // And the rebuild's own guarded writes never take an item back.
    expect(await rebuild.putItem(item('r', 4))).toBe(false);
    expect(await versionIn(building, t.requests, 'r')).toBe(5);
  });

  test('a single item goes as one guarded PutItem per version (read-then-batch would be two calls)', async () => {
    const t = await tables();
    const { projection: p } = projection(t);
    calls = [];
    await p.applyBatch([change('solo', 1)]);
    expect(count('PutItem')).toBe(1);
    expect(count('BatchGetItem')).toBe(0);
    expect(await versionIn(t.items, t.requests, 'solo')).toBe(1);
  });
});

test('redrive and reprocess projectors stay on the guarded path (they are outside the single-writer rule)', async () => {
  const t = await tables();
  const base = new DynamoDurableStore(doc, t.items, t.requests);
  await base.putItem(item('q', 7));
  calls = [];
  // As composition.ts's redrivePublisher builds it: the default item writes are guarded.
  await new Projector(base, new MemoryHotStore(), new DynamoRequestBatchWriter(doc, t.requests)).applyBatch([change('q', 6), change('w', 1), change('e', 1)]);
  expect(count('BatchGetItem')).toBe(0);
  expect(count('PutItem')).toBe(3);
  expect(await versionIn(t.items, t.requests, 'q')).toBe(7);
});

test('the projection consumer hands the projector each item that has a held record in its batch as guarded', async () => {
  // The handler's part of the rule, with the decisions given (PostgreSQL's lookup is covered by
  // tests/processors-poison.test.ts): `a` is committed, then a later write of it is held behind
  // a parked one; `b` is committed only.
  const cmd = (requestId: string, id: string) => ({
    v: 1, requestId, kind: 'put', tenant: 't1', principal: 'u1', collection: 'notes', id, data: { n: 1 }, receivedAt: new Date().toISOString(),
  });
  const records = [cmd('r1', 'a'), cmd('r2', 'b'), cmd('r3', 'a')].map((c, i) => ({
    eventID: `shardId-000000000000:${i}`,
    kinesis: { sequenceNumber: String(i), data: Buffer.from(JSON.stringify(c)).toString('base64') },
  }));
  const committed = (id: string) => ({
    status: 'committed' as const, version: 1, decidedAt: new Date().toISOString(), redelivered: true,
    state: { tenant: 't1', collection: 'notes', id, version: 1, deleted: false, data: { n: 1 }, updatedAt: new Date().toISOString() },
  });
  const seen: Array<{ items: string[]; guarded: string[] }> = [];
  const handler = createProjectionHandler({
    lookup: { lookupBatch: async () => [committed('a'), committed('b'), { status: 'held', behind: 'r0', redelivered: true }] },
    projector: {
      async applyBatch(changes, guarded) {
        seen.push({ items: changes.flatMap((c) => (c.item ? [c.item.id] : [])), guarded: [...(guarded ?? [])] });
      },
    },
    log: createLogger('error'),
  });
  const out = await handler({ Records: records } as unknown as KinesisStreamEvent);
  expect(out).toEqual({ batchItemFailures: [] });
  expect(seen).toEqual([{ items: ['a', 'b'], guarded: [itemWriteKey('t1', 'notes', 'a')] }]);
});
