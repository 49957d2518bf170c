import type { HotReads, HotStore } from '../hot-store';
import { answerOf, type ItemAnswer } from '../item-answer';
import type { ItemWrite, RequestWrite, StoredItem } from '../writes';

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

