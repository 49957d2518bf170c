/**
 * Read-side version routing (the read API): items are read from the live version of the
 * projection, request statuses from the base store. The write-side twin is fan-out.ts; both
 * resolve versions through routing.ts.
 */
import { type DurableStore, type HotReads, hotReads, type HotStore, type ItemAnswer, type ItemWrite, type Page, type RequestWrite, type StoredItem } from '../read-store';
import { CachedRegistry, liveVersion, type ProjectionRecord } from './registry';
import { VersionRouting } from './routing';
import { type VersionedWiring, versionWiring } from './version-stores';

/** The read API's durable store. Writes (none in the read API) go to the live version too. */
export class LiveDurableStore implements DurableStore {
  constructor(
    private readonly route: VersionRouting,
    private readonly base: DurableStore,
    readonly served = new ServedFrom(),
  ) {}
  async getItem(tenant: string, collection: string, id: string): Promise<StoredItem | undefined> {
    const v = await this.route.live();
    const item = await this.route.stores.durable(v).getItem(tenant, collection, id);
    if (item?.json) this.served.note(item.json, v.n);
    return item;
  }
  async putItem(w: ItemWrite): Promise<boolean> {
    return (await this.route.liveDurable()).putItem(w);
  }
  async listItems(tenant: string, collection: string, limit: number, cursor: string | undefined): Promise<Page> {
    return (await this.route.liveDurable()).listItems(tenant, collection, limit, cursor);
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
  private peekedRec: ProjectionRecord | undefined;
  private peekedHot: HotReads | undefined;

  constructor(
    private readonly route: VersionRouting,
    private readonly base: HotStore,
    private readonly served?: ServedFrom,
  ) {}
  async getItem(tenant: string, collection: string, id: string): Promise<StoredItem | undefined> {
    return (await this.route.liveHot()).getItem(tenant, collection, id);
  }
  /** Synchronous: only with the registry record at hand (else the caller reads, which refreshes it). */
  peekItem(tenant: string, collection: string, id: string): ItemAnswer | undefined {
    const rec = this.route.peek();
    if (rec === undefined) return undefined;
    // The live version's store is resolved once per registry record, not on every hit.
    if (rec !== this.peekedRec) {
      this.peekedHot = hotReads(this.route.stores.hot(liveVersion(rec)));
      this.peekedRec = rec;
    }
    return this.peekedHot!.peekItem(tenant, collection, id);
  }
  async readItem(tenant: string, collection: string, id: string): Promise<ItemAnswer | undefined> {
    return hotReads(await this.route.liveHot()).readItem(tenant, collection, id);
  }
  async putItem(w: ItemWrite): Promise<boolean> {
    const v = await this.route.live();
    // A refill read from the previous version just before a switch must not seed the new version's keys.
    const from = w.json === null ? undefined : this.served?.take(w.json);
    if (from !== undefined && from !== v.n) return false;
    return this.route.stores.hot(v).putItem(w);
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

/**
 * The read API's stores: items from the live version of the projection. The registry is cached
 * leniently: a stale record is used while the registry is unreachable, as a read never loses anything.
 */
export function liveStores(w: VersionedWiring): { durable: DurableStore; hot: HotStore } {
  const { registry, stores, projection } = versionWiring(w);
  const route = new VersionRouting(new CachedRegistry(registry, { strict: false }), projection, stores);
  const durable = new LiveDurableStore(route, w.base.durable);
  return { durable, hot: new LiveHotStore(route, w.base.hot, durable.served) };
}
