/**
 * Reads from the read model: the hot copy first; on a miss the durable copy, then the hot copy is
 * refilled. A failing hot copy is skipped (reads go on, slower), never surfaced to the reader.
 */
import type { Logger } from '../core/log';
import type { DurableStore, HotStore, Page, StoredItem } from './stores';

export class ReadModelReader {
  constructor(
    private readonly hot: HotStore,
    private readonly durable: DurableStore,
    private readonly log: Logger,
  ) {}

  async getItem(tenant: string, collection: string, id: string): Promise<StoredItem | undefined> {
    const cached = await this.tryHot(() => this.hot.getItem(tenant, collection, id));
    if (cached) return cached;
    const stored = await this.durable.getItem(tenant, collection, id);
    if (stored) {
      void this.tryHot(() => this.hot.putItem({ tenant, collection, id, version: stored.version, updatedAt: '', json: stored.json }));
    }
    return stored;
  }

  async getRequest(tenant: string, requestId: string): Promise<string | undefined> {
    const cached = await this.tryHot(() => this.hot.getRequest(tenant, requestId));
    if (cached) return cached;
    return this.durable.getRequest(tenant, requestId);
  }

  listItems(tenant: string, collection: string, limit: number, cursor: string | undefined): Promise<Page> {
    return this.durable.listItems(tenant, collection, limit, cursor);
  }

  private async tryHot<T>(op: () => Promise<T>): Promise<T | undefined> {
    try {
      return await op();
    } catch (err) {
      this.log.warn('hot read model unavailable; using the durable copy', { err });
      return undefined;
    }
  }
}
