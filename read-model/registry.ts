/**
 * Projection registry: which deployed version of each projection is live, which are building or
 * kept for rollback, stored durably in a small DynamoDB table beside the read model (the read API
 * never touches PostgreSQL). Every version has its own items table and Redis key space; readers
 * resolve the live one here, processors project into every version that is not retired.
 *
 * No registry table, or no record for a projection, means the original deployment: version 1 on
 * ITEMS_TABLE and REDIS_PREFIX — so nothing needs provisioning until the first rebuild.
 */
import {
  CreateTableCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  ResourceInUseException,
} from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, GetCommand, PutCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import type { Redis } from 'ioredis';
import type { ItemAnswer, NearCache } from './near-cache';
import { type DurableStore, DynamoDurableStore, type HotReads, hotReads, type HotStore, type ItemWrite, MemoryHotStore, type Page, RedisHotStore, type RequestWrite, type StoredItem } from './stores';

/** How long a cached registry record may be used. A rebuild waits longer than this after registering a version, so every processor projects into it before the rebuild reads the log head. */
export const REGISTRY_CACHE_MS = 1000;
/** Extra wait on top of REGISTRY_CACHE_MS for clock and scheduling slack. */
export const REGISTRY_SETTLE_MS = REGISTRY_CACHE_MS * 2 + 500;

export type VersionState = 'building' | 'live' | 'kept' | 'retired';

export interface ProjectionVersion {
  n: number;
  /** Version of the projection code (`Projection.version`) this deployment is built with. */
  code: number;
  itemsTable: string;
  /** Redis prefix of this version's item keys (request status keys stay under the base prefix). */
  redisPrefix: string;
  state: VersionState;
  createdAt: string;
  switchedAt?: string;
  /** A kept (previous live) version is retired after this time. */
  retireAt?: string;
  retiredAt?: string;
  /** Rebuild progress: the log head folded up to, events done/total, the last item fully written. */
  source?: 'log' | 'stream';
  head?: string;
  total?: number;
  done?: number;
  cursor?: [string, string, string] | null;
  progressAt?: string;
}

export interface ProjectionRecord {
  name: string;
  rev: number;
  live: number;
  versions: Record<string, ProjectionVersion>;
}

export interface RegistryDefaults {
  itemsTable: string;
  redisPrefix: string;
  /** Code version of the original deployment. */
  code?: number;
}

export function defaultRecord(name: string, d: RegistryDefaults): ProjectionRecord {
  return {
    name,
    rev: 0,
    live: 1,
    versions: {
      '1': { n: 1, code: d.code ?? 1, itemsTable: d.itemsTable, redisPrefix: d.redisPrefix, state: 'live', createdAt: new Date(0).toISOString() },
    },
  };
}

export const registryTableName = (itemsTable: string) => `${itemsTable}-projections`;
export const versionItemsTable = (baseItemsTable: string, n: number) => `${baseItemsTable}-v${n}`;
export const versionRedisPrefix = (basePrefix: string, n: number) => `${basePrefix}v${n}:`;

/** Versions that receive live projection: everything not retired. */
export function activeVersions(rec: ProjectionRecord): ProjectionVersion[] {
  return Object.values(rec.versions).filter((v) => v.state !== 'retired');
}

export function liveVersion(rec: ProjectionRecord): ProjectionVersion {
  const v = rec.versions[String(rec.live)];
  if (!v) throw new Error(`projection ${rec.name}: live version ${rec.live} is not in the registry`);
  return v;
}

export class RegistryConflictError extends Error {
  override name = 'RegistryConflictError';
}

export interface ProjectionRegistry {
  get(name: string): Promise<ProjectionRecord>;
  /** The record if it is at hand and fresh, without I/O (undefined: use `get`). */
  peek?(name: string): ProjectionRecord | undefined;
}

export class DynamoProjectionRegistry implements ProjectionRegistry {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    readonly table: string,
    private readonly defaults: RegistryDefaults,
  ) {}

  async get(name: string): Promise<ProjectionRecord> {
    try {
      const out = await this.doc.send(new GetCommand({ TableName: this.table, Key: { pk: name }, ConsistentRead: true }));
      if (!out.Item) return defaultRecord(name, this.defaults);
      return fromItem(out.Item);
    } catch (err) {
      if ((err as Error).name === 'ResourceNotFoundException') return defaultRecord(name, this.defaults);
      throw err;
    }
  }

  async list(): Promise<ProjectionRecord[]> {
    try {
      const out = await this.doc.send(new ScanCommand({ TableName: this.table, ConsistentRead: true }));
      return (out.Items ?? []).map(fromItem);
    } catch (err) {
      if ((err as Error).name === 'ResourceNotFoundException') return [];
      throw err;
    }
  }

  /** Writes `rec` if nobody changed it since it was read (rev), and returns it with the next rev. */
  async save(rec: ProjectionRecord): Promise<ProjectionRecord> {
    const next = { ...rec, rev: rec.rev + 1 };
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.table,
          Item: { pk: rec.name, rev: next.rev, live: next.live, versions: JSON.stringify(next.versions) },
          ConditionExpression: rec.rev === 0 ? 'attribute_not_exists(pk)' : 'rev = :rev',
          ...(rec.rev === 0 ? {} : { ExpressionAttributeValues: { ':rev': rec.rev } }),
        }),
      );
    } catch (err) {
      if ((err as Error).name === 'ConditionalCheckFailedException') {
        throw new RegistryConflictError(`projection ${rec.name} was changed by someone else (rev ${rec.rev}); run the command again`);
      }
      throw err;
    }
    return next;
  }

  async ensureTable(dynamo: DynamoDBClient): Promise<void> {
    try {
      await dynamo.send(
        new CreateTableCommand({
          TableName: this.table,
          BillingMode: 'PAY_PER_REQUEST',
          AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
          KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
        }),
      );
    } catch (err) {
      if (!(err instanceof ResourceInUseException) && (err as Error).name !== 'ResourceInUseException') throw err;
    }
    await waitActive(dynamo, this.table);
  }
}

export async function waitActive(dynamo: DynamoDBClient, table: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const d = await dynamo.send(new DescribeTableCommand({ TableName: table }));
    if (d.Table?.TableStatus === 'ACTIVE') return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`table ${table} did not become ACTIVE`);
}

function fromItem(item: Record<string, unknown>): ProjectionRecord {
  return {
    name: String(item.pk),
    rev: Number(item.rev),
    live: Number(item.live),
    versions: JSON.parse(String(item.versions)) as Record<string, ProjectionVersion>,
  };
}

/**
 * A registry record cached for at most `ttlMs`. Strict (processors): a record older than that is
 * never used, so a version registered for building is seen within the TTL — a failed refresh fails
 * the write, which is retried. Lenient (read API): a stale record is used while the registry is
 * unreachable, because a read never loses anything.
 */
export class CachedRegistry implements ProjectionRegistry {
  private readonly entries = new Map<string, { at: number; rec: ProjectionRecord }>();
  private readonly inflight = new Map<string, Promise<ProjectionRecord>>();

  constructor(
    private readonly source: ProjectionRegistry,
    private readonly opts: { strict: boolean; ttlMs?: number; now?: () => number },
  ) {}

  async get(name: string): Promise<ProjectionRecord> {
    const now = (this.opts.now ?? Date.now)();
    const hit = this.entries.get(name);
    if (hit && now - hit.at < (this.opts.ttlMs ?? REGISTRY_CACHE_MS)) return hit.rec;
    let p = this.inflight.get(name);
    if (!p) {
      // The fetch time is taken before the request, so the record's age is never understated.
      const started = now;
      p = this.source.get(name).then((rec) => {
        this.entries.set(name, { at: started, rec });
        return rec;
      }).finally(() => this.inflight.delete(name));
      this.inflight.set(name, p);
    }
    try {
      return await p;
    } catch (err) {
      if (!this.opts.strict && hit) return hit.rec;
      throw err;
    }
  }

  peek(name: string): ProjectionRecord | undefined {
    const hit = this.entries.get(name);
    return hit && (this.opts.now ?? Date.now)() - hit.at < (this.opts.ttlMs ?? REGISTRY_CACHE_MS) ? hit.rec : undefined;
  }

  invalidate(name?: string): void {
    if (name) this.entries.delete(name);
    else this.entries.clear();
  }
}

/** Builds (and keeps) one store per version: items table or Redis prefix. */
export interface VersionStores {
  durable(v: ProjectionVersion): DurableStore;
  hot(v: ProjectionVersion): HotStore;
}

export function memoStores(durable: (table: string) => DurableStore, hot: (prefix: string) => HotStore): VersionStores {
  const d = new Map<string, DurableStore>();
  const h = new Map<string, HotStore>();
  return {
    durable(v) {
      let s = d.get(v.itemsTable);
      if (!s) d.set(v.itemsTable, (s = durable(v.itemsTable)));
      return s;
    },
    hot(v) {
      let s = h.get(v.redisPrefix);
      if (!s) h.set(v.redisPrefix, (s = hot(v.redisPrefix)));
      return s;
    },
  };
}

/**
 * The read API's durable store: items are read from the live version of the projection (resolved
 * through the registry), requests from the base store. Writes (none in the read API) go live too.
 */
export class LiveDurableStore implements DurableStore {
  constructor(
    private readonly registry: ProjectionRegistry,
    private readonly projection: string,
    private readonly stores: VersionStores,
    private readonly base: DurableStore,
    readonly served = new ServedFrom(),
  ) {}
  private async live() {
    return this.stores.durable(liveVersion(await this.registry.get(this.projection)));
  }
  async getItem(tenant: string, collection: string, id: string): Promise<StoredItem | undefined> {
    const v = liveVersion(await this.registry.get(this.projection));
    const item = await this.stores.durable(v).getItem(tenant, collection, id);
    if (item?.json) this.served.note(item.json, v.n);
    return item;
  }
  async putItem(w: ItemWrite): Promise<boolean> {
    return (await this.live()).putItem(w);
  }
  async listItems(tenant: string, collection: string, limit: number, cursor: string | undefined, consistent?: boolean): Promise<Page> {
    return (await this.live()).listItems(tenant, collection, limit, cursor, consistent);
  }
  getRequest(tenant: string, requestId: string) {
    return this.base.getRequest(tenant, requestId);
  }
  putRequest(w: RequestWrite) {
    return this.base.putRequest(w);
  }
}

/** The read API's hot store: item keys of the live version (a refill goes there too), request keys of the base prefix. */
export class LiveHotStore implements HotStore, HotReads {
  constructor(
    private readonly registry: ProjectionRegistry,
    private readonly projection: string,
    private readonly stores: VersionStores,
    private readonly base: HotStore,
    private readonly served?: ServedFrom,
  ) {}
  private async live() {
    return this.stores.hot(liveVersion(await this.registry.get(this.projection)));
  }
  async getItem(tenant: string, collection: string, id: string): Promise<StoredItem | undefined> {
    return (await this.live()).getItem(tenant, collection, id);
  }
  /** Synchronous: only with the registry record at hand (else the caller reads, which refreshes it). */
  peekItem(tenant: string, collection: string, id: string): ItemAnswer | undefined {
    const rec = this.registry.peek?.(this.projection);
    if (rec === undefined) return undefined;
    // The live version's store is resolved once per registry record, not on every hit.
    if (rec !== this.peekedRec) {
      this.peekedHot = hotReads(this.stores.hot(liveVersion(rec)));
      this.peekedRec = rec;
    }
    return this.peekedHot!.peekItem(tenant, collection, id);
  }
  private peekedRec: ProjectionRecord | undefined;
  private peekedHot: HotReads | undefined;
  async readItem(tenant: string, collection: string, id: string): Promise<ItemAnswer | undefined> {
    return hotReads(await this.live()).readItem(tenant, collection, id);
  }
  async putItem(w: ItemWrite): Promise<boolean> {
    const v = liveVersion(await this.registry.get(this.projection));
    // A refill read from the previous version just before a switch must not seed the new version's keys.
    const from = w.json === null ? undefined : this.served?.take(w.json);
    if (from !== undefined && from !== v.n) return false;
    return this.stores.hot(v).putItem(w);
  }
  getRequest(tenant: string, requestId: string) {
    return this.base.getRequest(tenant, requestId);
  }
  putRequest(w: RequestWrite) {
    return this.base.putRequest(w);
  }
}

/** Remembers which version recently served a document, so a hot-copy refill lands in that version only. */
export class ServedFrom {
  private readonly map = new Map<string, number>();
  constructor(private readonly max = 1024) {}
  note(json: string, n: number): void {
    if (this.map.size >= this.max) this.map.delete(this.map.keys().next().value as string);
    this.map.set(json, n);
  }
  take(json: string): number | undefined {
    const n = this.map.get(json);
    this.map.delete(json);
    return n;
  }
}

export interface VersionedWiring {
  doc: DynamoDBDocumentClient;
  /** Redis for the version key spaces; without it (single-node runs) each version gets an in-process hot copy. */
  redis?: Redis | undefined;
  itemsTable: string;
  requestsTable: string;
  redisPrefix: string;
  base: { durable: DurableStore; hot: HotStore };
  projection?: string;
  /** The read API's near cache, shared by every version's Redis hot store (its keys are full Redis keys). */
  near?: NearCache | undefined;
}

/** The registry (uncached) and per-version stores of one projection, for a composition root. */
export function versionWiring(w: VersionedWiring): { registry: DynamoProjectionRegistry; stores: VersionStores; projection: string } {
  const registry = new DynamoProjectionRegistry(w.doc, registryTableName(w.itemsTable), { itemsTable: w.itemsTable, redisPrefix: w.redisPrefix });
  const stores = memoStores(
    (table) => (table === w.itemsTable ? w.base.durable : new DynamoDurableStore(w.doc, table, w.requestsTable)),
    (prefix) => (prefix === w.redisPrefix ? w.base.hot : w.redis ? new RedisHotStore(w.redis, prefix, undefined, w.near) : memoryVersionOf(w.base.hot, prefix)),
  );
  return { registry, stores, projection: w.projection ?? 'items' };
}

// Single-node runs share one in-process hot copy between processors and read API: so must its versions.
const memoryVersions = new WeakMap<HotStore, Map<string, HotStore>>();
function memoryVersionOf(base: HotStore, prefix: string): HotStore {
  let m = memoryVersions.get(base);
  if (!m) memoryVersions.set(base, (m = new Map()));
  let s = m.get(prefix);
  if (!s) m.set(prefix, (s = new MemoryHotStore()));
  return s;
}

/** The read API's stores: items from the live version of the projection. */
export function liveStores(w: VersionedWiring): { durable: DurableStore; hot: HotStore } {
  const { registry, stores, projection } = versionWiring(w);
  const cached = new CachedRegistry(registry, { strict: false });
  const durable = new LiveDurableStore(cached, projection, stores, w.base.durable);
  return { durable, hot: new LiveHotStore(cached, projection, stores, w.base.hot, durable.served) };
}
