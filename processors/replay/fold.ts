/**
 * Folding the event log into final item states. The log is read in pages in item order
 * (tenant, collection, item_id, version — the log's unique index), bounded by a head position, so
 * each item's whole history is folded in memory and only its final state is written; an item cut
 * by a page boundary is carried to the next page. Pure except for the page reads.
 */
import type { Pool } from 'pg';
import type { EventType, ItemState, JsonObject } from '../../core/contracts';
import { evolve } from '../decide';

export type ItemKey = [tenant: string, collection: string, id: string];

export interface LogRow {
  tenant: string;
  collection: string;
  item_id: string;
  version: number;
  type: EventType;
  data: JsonObject | null;
  recorded_at: Date;
}

/** Folds rows of one or more items (in item order) onto `carry`; returns the completed states and the unfinished last one. */
export function foldRows(rows: LogRow[], carry?: ItemState): { done: ItemState[]; last?: ItemState } {
  const done: ItemState[] = [];
  let cur = carry;
  for (const r of rows) {
    if (cur && (cur.tenant !== r.tenant || cur.collection !== r.collection || cur.id !== r.item_id)) {
      done.push(cur);
      cur = undefined;
    }
    const next = evolve(cur, r);
    cur = { tenant: r.tenant, collection: r.collection, id: r.item_id, ...next, updatedAt: r.recorded_at.toISOString() };
  }
  return cur ? { done, last: cur } : { done };
}

export async function logHead(pool: Pool): Promise<string> {
  const r = await pool.query<{ head: string | null }>('SELECT max(position)::text AS head FROM events');
  return r.rows[0]?.head ?? '0';
}

export async function countUpTo(pool: Pool, head: string, after?: ItemKey | null): Promise<number> {
  const r = after
    ? await pool.query<{ n: string }>('SELECT count(*)::text AS n FROM events WHERE position <= $1 AND (tenant, collection, item_id) > ($2, $3, $4)', [head, ...after])
    : await pool.query<{ n: string }>('SELECT count(*)::text AS n FROM events WHERE position <= $1', [head]);
  return Number(r.rows[0]!.n);
}

export interface FoldPage {
  /** Items whose whole history up to the head is folded. */
  items: ItemState[];
  /** Events read in this page. */
  events: number;
  /** The last completed item: resume after it. */
  cursor: ItemKey | null;
  end: boolean;
}

/**
 * Reads the log up to `head` after item `after`, page by page, yielding completed items.
 * `pageSize` bounds memory; one item with more events than that is simply carried across pages.
 */
export async function* foldLog(pool: Pool, opts: { head: string; after?: ItemKey | null; pageSize: number }): AsyncGenerator<FoldPage> {
  let carry: ItemState | undefined;
  let key: [string, string, string, number] | undefined = opts.after ? [...opts.after, 2147483647] : undefined;
  let cursor: ItemKey | null = opts.after ?? null;
  for (;;) {
    const res = await pool.query<LogRow>(
      `SELECT tenant, collection, item_id, version, type, data, recorded_at FROM events
        WHERE position <= $1 ${key ? 'AND (tenant, collection, item_id, version) > ($3, $4, $5, $6)' : ''}
        ORDER BY tenant, collection, item_id, version LIMIT $2`,
      key ? [opts.head, opts.pageSize, ...key] : [opts.head, opts.pageSize],
    );
    const rows = res.rows;
    const end = rows.length < opts.pageSize;
    const { done, last } = foldRows(rows, carry);
    if (end && last) done.push(last);
    carry = end ? undefined : last;
    if (done.length) {
      const l = done[done.length - 1]!;
      cursor = [l.tenant, l.collection, l.id];
    }
    yield { items: done, events: rows.length, cursor, end };
    if (end) return;
    const lr = rows[rows.length - 1]!;
    key = [lr.tenant, lr.collection, lr.item_id, lr.version];
  }
}

/** The whole history of some items (for a catch-up after the head, or re-checking a difference). */
export async function foldItems(pool: Pool, keys: ItemKey[]): Promise<ItemState[]> {
  if (keys.length === 0) return [];
  const res = await pool.query<LogRow>(
    `SELECT e.tenant, e.collection, e.item_id, e.version, e.type, e.data, e.recorded_at
       FROM events e JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(tenant, collection, item_id)
         ON e.tenant = k.tenant AND e.collection = k.collection AND e.item_id = k.item_id
      ORDER BY e.tenant, e.collection, e.item_id, e.version`,
    [keys.map((k) => k[0]), keys.map((k) => k[1]), keys.map((k) => k[2])],
  );
  const { done, last } = foldRows(res.rows);
  return last ? [...done, last] : done;
}

/** Items with events after `from` up to `to`. */
export async function itemsChangedBetween(pool: Pool, from: string, to: string): Promise<ItemKey[]> {
  const res = await pool.query<{ tenant: string; collection: string; item_id: string }>(
    'SELECT DISTINCT tenant, collection, item_id FROM events WHERE position > $1 AND position <= $2',
    [from, to],
  );
  return res.rows.map((r) => [r.tenant, r.collection, r.item_id]);
}
