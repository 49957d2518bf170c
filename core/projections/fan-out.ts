/**
 * The processors' view of a versioned projection: every item write goes to each deployed version
 * that is building, live or kept (resolved through the registry, cached briefly and strictly), so
 * a rebuild never misses a write that happens while it runs and the switch loses nothing. Each
 * version gets the document its own projection code makes. Requests are not versioned.
 */
import { mapLimit } from '../map-limit';
import type { DurableStore, HotStore, ItemWrite, Page, RequestWrite, StoredItem } from '../read-store';
import { projectionAt, stateFromDocument } from './catalog';
import { itemsProjection } from './definitions';
import { CachedRegistry, type ProjectionVersion } from './registry';
import { VersionRouting } from './routing';
import { type VersionedWiring, versionWiring } from './version-stores';

type Kind = 'durable' | 'hot';

function writeFor(projection: string, v: ProjectionVersion, w: ItemWrite): ItemWrite {
  // The write was made by the current items code; another code version re-projects the same state.
  if (v.code === itemsProjection.version && projection === itemsProjection.name) return w;
  const p = projectionAt(projection, v.code);
  return p.item(stateFromDocument(w.tenant, w.collection, w.id, w.version, w.updatedAt, w.json));
}

/** Writes `w` to every active version; answers what the live version's guarded write answered. */
async function fanOut(route: VersionRouting, kind: Kind, w: ItemWrite): Promise<boolean> {
  const { live, versions } = await route.active();
  const results = await Promise.all(
    versions.map(async (v) => {
      const store = kind === 'durable' ? route.stores.durable(v) : route.stores.hot(v);
      return [v.n, await store.putItem(writeFor(route.projection, v, w))] as const;
    }),
  );
  return results.find(([n]) => n === live)?.[1] ?? false;
}

export class FanOutDurableStore implements DurableStore {
  constructor(
    private readonly route: VersionRouting,
    private readonly base: DurableStore,
  ) {}
  async getItem(tenant: string, collection: string, id: string): Promise<StoredItem | undefined> {
    return (await this.route.liveDurable()).getItem(tenant, collection, id);
  }
  putItem(w: ItemWrite): Promise<boolean> {
    return fanOut(this.route, 'durable', w);
  }
  /**
   * A batch for the items' single writer: each active version (building, live, kept) gets its own
   * rows — the document its own projection code makes — in its own read-then-batch calls, so a
   * version being rebuilt receives every live write as it does through putItem.
   */
  async putItemsNewer(items: ItemWrite[]): Promise<void> {
    const { versions } = await this.route.active();
    await Promise.all(versions.map((v) => {
      const store = this.route.stores.durable(v);
      const writes = items.map((w) => writeFor(this.route.projection, v, w));
      return store.putItemsNewer ? store.putItemsNewer(writes) : mapLimit(writes, 16, (w) => store.putItem(w));
    }));
  }
  async listItems(tenant: string, collection: string, limit: number, cursor: string | undefined, consistent?: boolean): Promise<Page> {
    return (await this.route.liveDurable()).listItems(tenant, collection, limit, cursor, consistent);
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
    private readonly route: VersionRouting,
    private readonly base: HotStore,
  ) {}
  async getItem(tenant: string, collection: string, id: string): Promise<StoredItem | undefined> {
    return (await this.route.liveHot()).getItem(tenant, collection, id);
  }
  putItem(w: ItemWrite): Promise<boolean> {
    return fanOut(this.route, 'hot', w);
  }
  getRequest(tenant: string, requestId: string) {
    return this.base.getRequest(tenant, requestId);
  }
  putRequest(w: RequestWrite) {
    return this.base.putRequest(w);
  }
  /** A batch: each version's item writes (and, with the base's, the request statuses) in one batched call. */
  async putMany(items: ItemWrite[], requests: RequestWrite[]): Promise<void> {
    let active;
    try {
      active = await this.route.active();
    } catch (err) {
      // Request statuses are not versioned: they do not wait for the registry (as putRequest does not).
      await putAll(this.base, [], requests);
      throw err;
    }
    const writes = active.versions.map((v) => ({ store: this.route.stores.hot(v), items: items.map((w) => writeFor(this.route.projection, v, w)) }));
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
  // Strictly cached: a version registered for building is seen within the cache TTL, or the write fails (and is retried).
  const route = new VersionRouting(new CachedRegistry(registry, { strict: true }), projection, stores);
  return {
    durable: new FanOutDurableStore(route, w.base.durable),
    hot: new FanOutHotStore(route, w.base.hot),
  };
}
