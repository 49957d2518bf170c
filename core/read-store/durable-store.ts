import type { ItemWrite, Page, RequestWrite, StoredItem } from './writes';

/** The durable copy: the read model of record, rebuilt from the event log when needed. */
export interface DurableStore {
  getItem(tenant: string, collection: string, id: string): Promise<StoredItem | undefined>;
  putItem(write: ItemWrite): Promise<boolean>;
  listItems(tenant: string, collection: string, limit: number, cursor: string | undefined): Promise<Page>;
  getRequest(tenant: string, requestId: string): Promise<string | undefined>;
  putRequest(write: RequestWrite): Promise<boolean>;
}

/** Listing cursors are opaque to clients: the DynamoDB start key, base64url JSON. */
export class InvalidCursorError extends Error {}
