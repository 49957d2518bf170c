import { answerOf, type ItemAnswer } from './item-answer';
import type { ItemWrite, RequestWrite, StoredItem } from './writes';

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

