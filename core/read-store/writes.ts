/**
 * The read model's two stores: a hot copy (Redis) and a durable copy (DynamoDB). Documents are
 * stored as the exact JSON the API answers with, so a read never re-serialises them. Every write
 * is version-guarded: an older version never overwrites a newer one, so redeliveries and races are
 * harmless.
 *
 * What a write and a stored item look like (shared by every port and adapter in core/read-store/).
 */
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

