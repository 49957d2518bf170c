/**
 * The DynamoDB row layout of the read model, defined once: the single-item store
 * (DynamoDurableStore) and the batch writers (batch-writers.ts) write exactly these rows.
 *
 * Items table: pk = itemsPk(tenant, collection), id, version, updatedAt, and either `doc` (the
 * public JSON) with `updatedAtId` (the sparse `byUpdatedAt` listing key), or `deleted: true` — a
 * tombstone has no listing key, so deleted items stay out of listings but keep their version guard.
 * Requests table: pk = requestsPk(tenant, requestId), rank, doc.
 */
import { requestExpiresAt } from '../../request-retention';
import { itemsPk, requestsPk, updatedAtId } from '../../keys';
import type { ItemWrite, RequestWrite, StoredItem } from '../writes';

export function itemRow(w: ItemWrite): Record<string, unknown> {
  const row: Record<string, unknown> = { pk: itemsPk(w.tenant, w.collection), id: w.id, version: w.version, updatedAt: w.updatedAt };
  if (w.json === null) row.deleted = true;
  else {
    row.doc = w.json;
    row.updatedAtId = updatedAtId(w.updatedAt, w.id);
  }
  return row;
}

export function itemKey(tenant: string, collection: string, id: string): { pk: string; id: string } {
  return { pk: itemsPk(tenant, collection), id };
}

export function storedItemOf(row: Record<string, unknown>): StoredItem {
  return { version: Number(row.version), json: row.deleted ? null : String(row.doc) };
}

export function requestRow(w: RequestWrite): Record<string, unknown> {
  // expiresAt: the requests table's TTL attribute (core/request-retention.ts).
  return { pk: requestsPk(w.tenant, w.requestId), rank: w.rank, doc: w.json, expiresAt: requestExpiresAt() };
}
