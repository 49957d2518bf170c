import type { ItemWrite, Page, RequestWrite, StoredItem } from './writes';

/** The durable copy: the read model of record, rebuilt from the event log when needed. */
export interface DurableStore {
  getItem(tenant: string, collection: string, id: string): Promise<StoredItem | undefined>;
  putItem(write: ItemWrite): Promise<boolean>;
  /**
   * Writes each item whose stored version is older, in a few batched calls and WITHOUT a
   * condition on the write itself (read-then-batch): only for the item's single writer (the
   * projection consumer: processors/projection-writer.ts says why it is the only one). Stores
   * without it get one guarded `putItem` per item.
   */
  putItemsNewer?(writes: ItemWrite[]): Promise<void>;
  /** `consistent`: a strongly consistent read (a listing asked for with `consistentWith`). */
  listItems(tenant: string, collection: string, limit: number, cursor: string | undefined, consistent?: boolean): Promise<Page>;
  getRequest(tenant: string, requestId: string): Promise<string | undefined>;
  putRequest(write: RequestWrite): Promise<boolean>;
}

/** Listing cursors are opaque to clients: the DynamoDB start key, base64url JSON. */
export class InvalidCursorError extends Error {}
