/**
 * The processors' view of a versioned projection: every item write goes to each deployed version
 * that is building, live or kept (resolved through the registry, cached briefly and strictly), so
 * a rebuild never misses a write that happens while it runs and the switch loses nothing. Each
 * version gets the document its own projection code makes. Requests are not versioned.
 */
import type { DurableStore, HotStore, ItemWrite, Page, RequestWrite, StoredItem } from '../../read-model/stores';
import {
  activeVersions, CachedRegistry, liveVersion, type ProjectionRegistry, type ProjectionVersion, type VersionedWiring, versionWiring, type VersionStores,
} from '../../read-model/registry';
import { itemsProjection } from '../projections';
import { projectionAt, stateFromDocument } from './catalog';

type Kind = 'durable' | 'hot';

function writeFor(projection: string, v: ProjectionVersion, w: ItemWrite): ItemWrite {
  // The write was made by the current items code; another code version re-projects the same state.
  if (v.code === itemsProjection.version && projection === itemsProjection.name) return w;
  const p = projectionAt(projection, v.code);
  return p.item(stateFromDocument(w.tenant, w.collection, w.id, w.version, w.updatedAt, w.json));
}

async function fanOut(
  registry: ProjectionRegistry, projection: string, stores: VersionStores, kind: Kind, w: ItemWrite,
): Promise<boolean> {
  const rec = await registry.get(projection);
  const live = rec.live;
  const results = await Promise.all(
    activeVersions(rec).map(async (v) => {
      const store = kind === 'durable' ? stores.durable(v) : stores.hot(v);
      return [v.n, await store.putItem(writeFor(projection, v, w))] as const;
    }),
  );
  return results.find(([n]) => n === live)?.[1] ?? false;
}

export class FanOutDurableStore implements DurableStore {
  constructor(
    private readonly registry: ProjectionRegistry,
    private readonly projection: string,
    private readonly stores: VersionStores,
    private readonly base: DurableStore,
  ) {}
  async getItem(tenant: string, collection: string, id: string): Promise<StoredItem | undefined> {
    return this.stores.durable(liveVersion(await this.registry.get(this.projection))).getItem(tenant, collection, id);
  }
  putItem(w: ItemWrite): Promise<boolean> {
    return fanOut(this.registry, this.projection, this.stores, 'durable', w);
  }
  async listItems(tenant: string, collection: string, limit: number, cursor: string | undefined, consistent?: boolean): Promise<Page> {
    return this.stores.durable(liveVersion(await this.registry.get(this.projection))).listItems(tenant, collection, limit, cursor, consistent);
  }
  getRequest(tenant: string, requestId: string) {
    return this.base.getRequest(tenant, requestId);
  }
  putRequest(w: RequestWrite) {
    return this.base.putRequest(w);
  }
}

export class FanOutHotStore implements HotStore {
  constructor(
    private readonly registry: ProjectionRegistry,
    private readonly projection: string,
    private readonly stores: VersionStores,
    private readonly base: HotStore,
  ) {}
  async getItem(tenant: string, collection: string, id: string): Promise<StoredItem | undefined> {
    return this.stores.hot(liveVersion(await this.registry.get(this.projection))).getItem(tenant, collection, id);
  }
  putItem(w: ItemWrite): Promise<boolean> {
    return fanOut(this.registry, this.projection, this.stores, 'hot', w);
  }
  getRequest(tenant: string, requestId: string) {
    return this.base.getRequest(tenant, requestId);
  }
  putRequest(w: RequestWrite) {
    return this.base.putRequest(w);
  }
  /** A batch: each version's item writes (and, with the base's, the request statuses) in one batched call. */
  async putMany(items: ItemWrite[], requests: RequestWrite[]): Promise<void> {
    let rec;
    try {
      rec = await this.registry.get(this.projection);
    } catch (err) {
      // Request statuses are not versioned: they do not wait for the registry (as putRequest does not).
      await putAll(this.base, [], requests);
      throw err;
    }
    const writes = activeVersions(rec).map((v) => ({ store: this.stores.hot(v), items: items.map((w) => writeFor(this.projection, v, w)) }));
    const withBase = writes.find((w) => w.store === this.base);
    await Promise.all([
      ...writes.map((w) => putAll(w.store, w.items, w === withBase ? requests : [])),
      ...(withBase ? [] : [putAll(this.base, [], requests)]),
    ]);
  }
}

function putAll(store: HotStore, items: ItemWrite[], requests: RequestWrite[]): Promise<unknown> {
  if (store.putMany) return store.putMany(items, requests);
  return Promise.all([...items.map((w) => store.putItem(w)), ...requests.map((w) => store.putRequest(w))]);
}

/** The processors' stores: item writes fan out to every deployed version of the projection. */
export function fanOutStores(w: VersionedWiring): { durable: DurableStore; hot: HotStore } {
  const { registry, stores, projection } = versionWiring(w);
  const cached = new CachedRegistry(registry, { strict: true });
  return {
    durable: new FanOutDurableStore(cached, projection, stores, w.base.durable),
    hot: new FanOutHotStore(cached, projection, stores, w.base.hot),
  };
}
