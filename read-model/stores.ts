/**
 * The read model's two stores: a hot copy (Redis) and a durable copy (DynamoDB). Documents are
 * stored as the exact JSON the API answers with, so a read never re-serialises them. Every write
 * is version-guarded: an older version never overwrites a newer one, so replays and races are
 * harmless.
 */
import { requestExpiresAt } from '../core/request-retention';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { Redis } from 'ioredis';
import { itemsPk, RedisKeys, requestsPk, updatedAtId } from '../core/keys';
import { answerOf, type ItemAnswer, type NearCache } from './near-cache';

/** An item as a store holds it: its version and its public JSON, or null for a deleted item. */
export interface StoredItem {
  version: number;
  json: string | null;
}

export interface ItemWrite {
  tenant: string;
  collection: string;
  id: string;
  version: number;
  updatedAt: string;
  /** ItemDocument JSON; null marks a deletion (kept as a tombstone for the version guard). */
  json: string | null;
}

/** Request status ranks: a final status is never overwritten by `queued`. */
export const RANK_QUEUED = 1;
export const RANK_FINAL = 2;

export interface RequestWrite {
  tenant: string;
  requestId: string;
  rank: number;
  json: string;
}

export interface Page {
  items: string[];
  nextCursor: string | null;
}

/** The hot copy: a cache in front of the durable copy (entries may expire or be evicted). */
export interface HotStore {
  getItem(tenant: string, collection: string, id: string): Promise<StoredItem | undefined>;
  putItem(write: ItemWrite): Promise<boolean>;
  getRequest(tenant: string, requestId: string): Promise<string | undefined>;
  putRequest(write: RequestWrite): Promise<boolean>;
  /**
   * Optional: many guarded writes at once, with the same effect as putItem/putRequest on each (a
   * batch's hot copy in a few calls instead of one per record).
   */
  putMany?(items: ItemWrite[], requests: RequestWrite[]): Promise<void>;
}

/**
 * What the read API asks of a hot copy beyond HotStore: the item as ready-to-send bytes, from the
 * near cache at once (`peekItem`, no I/O) or from the store itself (`readItem`, which may fill the
 * near cache).
 */
export interface HotReads {
  peekItem(tenant: string, collection: string, id: string): ItemAnswer | undefined;
  readItem(tenant: string, collection: string, id: string): Promise<ItemAnswer | undefined>;
}

/** The HotReads of a hot copy: its own, or (for a store without them) answers built from getItem. */
export function hotReads(store: HotStore): HotReads {
  if ('readItem' in store && 'peekItem' in store) return store as HotStore & HotReads;
  return {
    peekItem: () => undefined,
    readItem: async (tenant, collection, id) => {
      const item = await store.getItem(tenant, collection, id);
      return item && answerOf(item.version, item.json === null ? null : Buffer.from(item.json));
    },
  };
}

/** The durable copy: the read model of record, rebuilt from the event log when needed. */
export interface DurableStore {
  getItem(tenant: string, collection: string, id: string): Promise<StoredItem | undefined>;
  putItem(write: ItemWrite): Promise<boolean>;
  listItems(tenant: string, collection: string, limit: number, cursor: string | undefined): Promise<Page>;
  getRequest(tenant: string, requestId: string): Promise<string | undefined>;
  putRequest(write: RequestWrite): Promise<boolean>;
}

// KEYS[1] = hash; ARGV: field name of the guard (v|r), guard value, json, ttl seconds.
const GUARDED_SET = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and tonumber(cur) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], 'd', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
`;

// The same guarded write for many hashes. KEYS: the hashes; ARGV: ttl seconds, then per key its
// guard field (v|r), guard value and json.
const GUARDED_SET_MANY = `
for i = 1, #KEYS do
  local a = 2 + (i - 1) * 3
  local cur = redis.call('HGET', KEYS[i], ARGV[a])
  if not (cur and tonumber(cur) >= tonumber(ARGV[a + 1])) then
    redis.call('HSET', KEYS[i], ARGV[a], ARGV[a + 1], 'd', ARGV[a + 2])
    redis.call('EXPIRE', KEYS[i], ARGV[1])
  end
end
return #KEYS
`;

/**
 * Keys per batched call: one script call blocks Redis while it runs, so a batch goes in chunks
 * (sent together on the connection, so still one round trip) to keep other clients' reads prompt.
 */
const MANY_CHUNK = 100;

type Scripted = Redis & {
  guardedSet(key: string, field: string, value: string, json: string, ttl: string): Promise<number>;
  guardedSetMany(numKeys: number, ...keysAndArgs: string[]): Promise<number>;
};

export class RedisHotStore implements HotStore, HotReads {
  private readonly keys: RedisKeys;
  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly ttlSeconds = 24 * 3600,
    /** The read API's near cache, kept coherent by tracking on `redis` (read-model/near-cache.ts). */
    private readonly near?: NearCache,
  ) {
    this.keys = new RedisKeys(prefix);
    if (!('guardedSet' in redis)) redis.defineCommand('guardedSet', { numberOfKeys: 1, lua: GUARDED_SET });
    // Variable key count: the caller passes it first.
    if (!('guardedSetMany' in redis)) redis.defineCommand('guardedSetMany', { lua: GUARDED_SET_MANY });
  }

  async getItem(tenant: string, collection: string, id: string): Promise<StoredItem | undefined> {
    const [v, d] = await this.redis.hmget(this.keys.item(tenant, collection, id), 'v', 'd');
    if (v == null || d == null) return undefined;
    return { version: Number(v), json: d === '' ? null : d };
  }

  peekItem(tenant: string, collection: string, id: string): ItemAnswer | undefined {
    return this.near?.get(this.keys.item(tenant, collection, id));
  }

  /** HMGET as Buffers: the body goes to the socket as the bytes Redis sent, never decoded to a string. */
  async readItem(tenant: string, collection: string, id: string): Promise<ItemAnswer | undefined> {
    const key = this.keys.item(tenant, collection, id);
    const token = this.near ? this.near.beginFill(key) : 0;
    let answer: ItemAnswer | undefined;
    try {
      const [v, d] = await this.redis.hmgetBuffer(key, 'v', 'd');
      if (v != null && d != null) answer = answerOf(Number(v.toString('latin1')), d.length === 0 ? null : d);
      return answer;
    } finally {
      if (token !== 0) this.near!.endFill(key, token, answer);
    }
  }

  async putItem(w: ItemWrite): Promise<boolean> {
    const key = this.keys.item(w.tenant, w.collection, w.id);
    return (await (this.redis as Scripted).guardedSet(key, 'v', String(w.version), w.json ?? '', String(this.ttlSeconds))) === 1;
  }

  async getRequest(tenant: string, requestId: string): Promise<string | undefined> {
    return (await this.redis.hget(this.keys.request(tenant, requestId), 'd')) ?? undefined;
  }

  async putRequest(w: RequestWrite): Promise<boolean> {
    const key = this.keys.request(w.tenant, w.requestId);
    return (await (this.redis as Scripted).guardedSet(key, 'r', String(w.rank), w.json, String(this.ttlSeconds))) === 1;
  }

  /**
   * Keys hash to many cluster slots: fine with cluster mode off (infra/lib/constructs/cache.ts);
   * a cluster would need the chunks grouped by slot.
   */
  async putMany(items: ItemWrite[], requests: RequestWrite[]): Promise<void> {
    const writes: Array<[key: string, field: string, value: string, json: string]> = [
      ...items.map((w) => [this.keys.item(w.tenant, w.collection, w.id), 'v', String(w.version), w.json ?? ''] as [string, string, string, string]),
      ...requests.map((w) => [this.keys.request(w.tenant, w.requestId), 'r', String(w.rank), w.json] as [string, string, string, string]),
    ];
    const calls: Promise<number>[] = [];
    for (let i = 0; i < writes.length; i += MANY_CHUNK) {
      const chunk = writes.slice(i, i + MANY_CHUNK);
      const args: string[] = chunk.map((w) => w[0]);
      args.push(String(this.ttlSeconds));
      for (const [, field, value, json] of chunk) args.push(field, value, json);
      calls.push((this.redis as Scripted).guardedSetMany(chunk.length, ...args));
    }
    await Promise.all(calls);
  }
}

/** In-process hot copy for single-node runs without Redis (answers are kept ready to send: it is its own near cache). */
export class MemoryHotStore implements HotStore, HotReads {
  private readonly items = new Map<string, StoredItem & { answer: ItemAnswer }>();
  private readonly requests = new Map<string, { rank: number; json: string }>();

  async getItem(tenant: string, collection: string, id: string): Promise<StoredItem | undefined> {
    const e = this.items.get(`${tenant}\u0000${collection}\u0000${id}`);
    return e && { version: e.version, json: e.json };
  }
  peekItem(tenant: string, collection: string, id: string): ItemAnswer | undefined {
    return this.items.get(`${tenant}\u0000${collection}\u0000${id}`)?.answer;
  }
  async readItem(tenant: string, collection: string, id: string): Promise<ItemAnswer | undefined> {
    return this.peekItem(tenant, collection, id);
  }
  async putItem(w: ItemWrite) {
    const k = `${w.tenant}\u0000${w.collection}\u0000${w.id}`;
    const cur = this.items.get(k);
    if (cur && cur.version >= w.version) return false;
    this.items.set(k, { version: w.version, json: w.json, answer: answerOf(w.version, w.json === null ? null : Buffer.from(w.json)) });
    return true;
  }
  async getRequest(tenant: string, requestId: string) {
    return this.requests.get(`${tenant}\u0000${requestId}`)?.json;
  }
  async putRequest(w: RequestWrite) {
    const k = `${w.tenant}\u0000${w.requestId}`;
    const cur = this.requests.get(k);
    if (cur && cur.rank >= w.rank) return false;
    this.requests.set(k, { rank: w.rank, json: w.json });
    return true;
  }
  async putMany(items: ItemWrite[], requests: RequestWrite[]) {
    for (const w of items) await this.putItem(w);
    for (const w of requests) await this.putRequest(w);
  }
}

export class DynamoDurableStore implements DurableStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly itemsTable: string,
    private readonly requestsTable: string,
  ) {}

  async getItem(tenant: string, collection: string, id: string): Promise<StoredItem | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.itemsTable, Key: { pk: itemsPk(tenant, collection), id }, ConsistentRead: true }),
    );
    if (!out.Item) return undefined;
    return { version: Number(out.Item.version), json: out.Item.deleted ? null : String(out.Item.doc) };
  }

  async putItem(w: ItemWrite): Promise<boolean> {
    const item: Record<string, unknown> = {
      pk: itemsPk(w.tenant, w.collection),
      id: w.id,
      version: w.version,
      updatedAt: w.updatedAt,
    };
    // A tombstone has no listing key, so the sparse index leaves deleted items out of listings.
    if (w.json === null) item.deleted = true;
    else {
      item.doc = w.json;
      item.updatedAtId = updatedAtId(w.updatedAt, w.id);
    }
    return this.conditionalPut(this.itemsTable, item, 'attribute_not_exists(version) OR version < :v', { ':v': w.version });
  }

  /**
   * Newest first (updatedAt, then id, descending: a total order, so pages never overlap). One item
   * more than asked is read, so `nextCursor` is null exactly on the last page.
   */
  async listItems(tenant: string, collection: string, limit: number, cursor: string | undefined): Promise<Page> {
    const pk = itemsPk(tenant, collection);
    const out = await this.doc.send(
      new QueryCommand({
        TableName: this.itemsTable,
        IndexName: 'byUpdatedAt',
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': pk },
        ProjectionExpression: 'id, updatedAtId, doc',
        ScanIndexForward: false,
        Limit: limit + 1,
        ...(cursor ? { ExclusiveStartKey: decodeCursor(cursor, pk) } : {}),
      }),
    );
    const rows = out.Items ?? [];
    const page = rows.length > limit ? rows.slice(0, limit) : rows;
    const last = page[page.length - 1];
    // LastEvaluatedKey without an extra row: DynamoDB stopped at its 1 MB page size, so there may be more.
    const more = rows.length > limit || out.LastEvaluatedKey !== undefined;
    return { items: page.map((i) => String(i.doc)), nextCursor: more && last ? encodeCursor(last) : null };
  }

  async getRequest(tenant: string, requestId: string): Promise<string | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.requestsTable, Key: { pk: requestsPk(tenant, requestId) }, ConsistentRead: true }),
    );
    return out.Item ? String(out.Item.doc) : undefined;
  }

  async putRequest(w: RequestWrite): Promise<boolean> {
    return this.conditionalPut(
      this.requestsTable,
      { pk: requestsPk(w.tenant, w.requestId), rank: w.rank, doc: w.json, expiresAt: requestExpiresAt() },
      'attribute_not_exists(#r) OR #r < :r',
      { ':r': w.rank },
      { '#r': 'rank' },
    );
  }

  private async conditionalPut(
    table: string,
    item: Record<string, unknown>,
    condition: string,
    values: Record<string, unknown>,
    names?: Record<string, string>,
  ): Promise<boolean> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: table,
          Item: item,
          ConditionExpression: condition,
          ExpressionAttributeValues: values,
          ...(names ? { ExpressionAttributeNames: names } : {}),
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException || (err as Error).name === 'ConditionalCheckFailedException') return false;
      throw err;
    }
  }
}

/** Listing cursors are opaque to clients: the DynamoDB start key, base64url JSON. */
export class InvalidCursorError extends Error {}

function encodeCursor(key: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify([key.updatedAtId, key.id])).toString('base64url');
}

function decodeCursor(cursor: string, pk: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    // Key attributes may not be empty in DynamoDB: an empty part would be a 500, not a bad cursor.
    if (Array.isArray(parsed) && parsed.length === 2 && typeof parsed[0] === 'string' && typeof parsed[1] === 'string' && parsed[0] && parsed[1]) {
      return { pk, updatedAtId: parsed[0], id: parsed[1] };
    }
  } catch {
    // fall through
  }
  throw new InvalidCursorError('The cursor is not one this API returned.');
}
