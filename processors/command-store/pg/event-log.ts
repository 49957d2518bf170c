/**
 * The event log in PostgreSQL: what the command store reads before deciding (prior outcomes,
 * parked items, current states) and the statements that write decisions and parked records. Each
 * INSERT is here once; the batch path and the one-command path share them.
 */
import type { Pool, PoolClient } from 'pg';
import { ATTACHMENTS_STATE_KEY } from '../../../core/attachments';
import type { Command, ItemState, JsonObject, Rejection } from '../../../core/contracts';
import type { BatchEntry, Outcome, ParkedInsert } from '../port';

export interface ItemRow {
  version: number;
  deleted: boolean;
  data: JsonObject | null;
  updated_at: Date;
}

export interface PriorRow {
  request_id: string;
  status: string;
  version: number | null;
  reason: Rejection | null;
  decided_at: Date;
}

export const itemKey = (t: string, c: string, id: string) => `${t}\u0000${c}\u0000${id}`;
export const cmdKey = (cmd: Command) => itemKey(cmd.tenant, cmd.collection, cmd.id);

/** A row of loadContext's statement: a prior outcome ('r'), a parked record ('p') or an item's state ('s'). */
interface KnownRow extends Omit<PriorRow, 'decided_at'> {
  kind: 'r' | 'p' | 's';
  decided_at: Date;
  tenant: string | null;
  collection: string | null;
  item_id: string | null;
  id: string | null;
}

export interface BatchContext {
  prior: Map<string, PriorRow>;
  parkedItems: Map<string, string>;
  parkedReqs: Set<string>;
  states: Map<string, ItemState>;
}

/**
 * What a batch needs to know before deciding: prior outcomes of its request ids, parked items and
 * requests, and the current state of its items (locked when deciding; read after the outcomes, so
 * a state is never older than an outcome read with it).
 */
export async function loadContext(client: Pool | PoolClient, entries: BatchEntry[], forUpdate: boolean): Promise<BatchContext> {
  const rids = entries.map((e) => e.cmd.requestId);
  const keys = new Map<string, Command>();
  for (const e of entries) keys.set(cmdKey(e.cmd), e.cmd);
  const kt = [...keys.values()].map((c) => c.tenant);
  const kc = [...keys.values()].map((c) => c.collection);
  const ki = [...keys.values()].map((c) => c.id);
  // Prior outcomes, parked records and the items' states in one statement, one round trip (parked
  // is nearly always empty). One statement reads one snapshot, and a locked state is the newest
  // committed one (PostgreSQL re-reads a row it waited for), so a state is never older than an
  // outcome read with it. The states are locked in key order (as before: no deadlock between batches).
  // Named (prepared once per connection): PostgreSQL parses and plans it, run for every batch, once
  // per connection instead of at every call (issue #17, its CPU per write).
  const res = await client.query<KnownRow & { deleted: boolean | null; data: JsonObject | null; updated_at: Date | null }>({
    name: forUpdate ? 'ackstream-batch-context-locked' : 'ackstream-batch-context',
    text: `WITH st AS MATERIALIZED (
       SELECT it.tenant, it.collection, it.item_id, it.version, it.deleted, it.data, it.updated_at
         FROM items it JOIN unnest($2::text[], $3::text[], $4::text[]) AS k(t, c, i)
           ON it.tenant = k.t AND it.collection = k.c AND it.item_id = k.i
        ORDER BY it.tenant, it.collection, it.item_id${forUpdate ? ' FOR UPDATE OF it' : ''}
     )
     SELECT 'r' AS kind, request_id, status, version, reason, decided_at, NULL AS tenant, NULL AS collection, NULL AS item_id, NULL::bigint AS id,
            NULL::boolean AS deleted, NULL::jsonb AS data, NULL::timestamptz AS updated_at
       FROM requests WHERE request_id = ANY($1::text[])
     UNION ALL
     SELECT 'p', request_id, NULL, NULL, NULL, NULL, tenant, collection, item_id, id, NULL, NULL, NULL FROM parked WHERE request_id = ANY($1::text[])
     UNION ALL
     (SELECT DISTINCT ON (p.tenant, p.collection, p.item_id) 'p', p.request_id, NULL, NULL, NULL, NULL, p.tenant, p.collection, p.item_id, p.id, NULL, NULL, NULL
        FROM parked p JOIN unnest($2::text[], $3::text[], $4::text[]) AS k(t, c, i)
          ON p.tenant = k.t AND p.collection = k.c AND p.item_id = k.i
       ORDER BY p.tenant, p.collection, p.item_id, p.id)
     UNION ALL
     SELECT 's', NULL, NULL, version, NULL, NULL, tenant, collection, item_id, NULL, deleted, data, updated_at FROM st`,
    values: [rids, kt, kc, ki],
  });

  const prior = new Map<string, PriorRow>();
  const parkedItems = new Map<string, string>();
  const parkedReqs = new Set<string>();
  const asked = new Set(rids);
  // Of an item's parked records, the first (lowest id) is the one the later writes wait behind.
  const firstParked = new Map<string, { id: number; requestId: string }>();
  const states = new Map<string, ItemState>();
  for (const r of res.rows) {
    if (r.kind === 's') {
      states.set(itemKey(r.tenant!, r.collection!, r.item_id!), {
        tenant: r.tenant!, collection: r.collection!, id: r.item_id!,
        version: r.version!, deleted: r.deleted!, data: r.data, updatedAt: r.updated_at!.toISOString(),
      });
      continue;
    }
    if (r.kind === 'r') {
      prior.set(r.request_id, r);
      continue;
    }
    if (asked.has(r.request_id)) parkedReqs.add(r.request_id);
    const k = itemKey(r.tenant!, r.collection!, r.item_id!);
    const id = Number(r.id);
    const cur = firstParked.get(k);
    if (!cur || id < cur.id) firstParked.set(k, { id, requestId: r.request_id });
  }
  for (const [k, p] of firstParked) if (keys.has(k)) parkedItems.set(k, p.requestId);
  return { prior, parkedItems, parkedReqs, states };
}

/** A decided request's outcome, redelivered; a committed one carries the item's current state (never older). */
export function redeliveredOutcome(p: PriorRow, state: ItemState | undefined): Outcome {
  return p.status === 'rejected'
    ? { status: 'rejected', reason: p.reason!, decidedAt: p.decided_at.toISOString(), redelivered: true }
    : { status: 'committed', version: p.version!, decidedAt: p.decided_at.toISOString(), state: state!, redelivered: true };
}

/** Records a decision for a request without an event (a rejection, or an operator's discard of a parked write). */
export async function recordRequest(
  client: PoolClient,
  cmd: Command,
  status: 'committed' | 'rejected',
  version: number | null,
  reason: Rejection | null,
  decidedAt: string,
): Promise<void> {
  await appendDecisions(client, [], [], [requestRow(cmd, status, version, reason, decidedAt)]);
}

/**
 * The one write of decisions, for a whole batch or one command: events (in the given order: their
 * positions follow it), item states and request statuses in one statement, one round trip. Rows go
 * as JSON documents: one JSON.stringify each instead of the driver escaping every element of a
 * dozen array parameters (a visible share of the CPU). A failure in any part fails the whole.
 */
export async function appendDecisions(client: PoolClient, ev: EventRowJson[], it: ItemRowJson[], rq: RequestRowJson[]): Promise<void> {
  await client.query({
    name: 'ackstream-append-decisions',
    text: `WITH ev AS (
       INSERT INTO events (tenant, collection, item_id, version, type, data, request_id, idempotency_key, principal, trace_id, recorded_at)
       SELECT t, c, i, v, ty, d, r, ik, pr, tr, at
         FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (t text, c text, i text, v int, ty text, d jsonb, r text, ik text,
           pr text, tr text, at timestamptz)) WITH ORDINALITY AS x(t, c, i, v, ty, d, r, ik, pr, tr, at, n) ORDER BY n
     ), it AS (
       INSERT INTO items (tenant, collection, item_id, version, deleted, data, updated_at)
       SELECT t, c, i, v, del, d, at FROM jsonb_to_recordset($2::jsonb) AS x(t text, c text, i text, v int, del bool, d jsonb, at timestamptz)
       ON CONFLICT (tenant, collection, item_id) DO UPDATE SET version = EXCLUDED.version, deleted = EXCLUDED.deleted,
         data = EXCLUDED.data, updated_at = EXCLUDED.updated_at
     )
     INSERT INTO requests (request_id, tenant, principal, collection, item_id, status, version, reason, idempotency_key, decided_at)
     SELECT r, t, pr, c, i, s, v, re, ik, at FROM jsonb_to_recordset($3::jsonb)
       AS x(r text, t text, pr text, c text, i text, s text, v int, re jsonb, ik text, at timestamptz)`,
    values: [JSON.stringify(ev), JSON.stringify(it), JSON.stringify(rq)],
  });
}

/**
 * The attachment quota's bookkeeping of one transaction (migration 1764892800000): what the
 * decisions change in each tenant's committed attachment bytes, and the upload reservations
 * their attach requests release (decided either way, so the reservation has done its job).
 */
export class QuotaChanges {
  readonly usage = new Map<string, number>();
  readonly released = new Set<string>();

  /** A decision that moved an item from `before` to `after` (either may be absent or deleted). */
  changed(tenant: string, before: Pick<ItemState, 'deleted' | 'data'> | undefined, after: Pick<ItemState, 'deleted' | 'data'>): void {
    const delta = attachmentBytes(after) - attachmentBytes(before);
    if (delta !== 0) this.usage.set(tenant, (this.usage.get(tenant) ?? 0) + delta);
  }

  /** An attach request was decided (now, or before: a redelivery still releases a leftover reservation). */
  decided(cmd: Command): void {
    if (cmd.kind === 'attach' && typeof cmd.data?.attachmentId === 'string') this.released.add(cmd.data.attachmentId);
  }

  get empty(): boolean {
    return this.released.size === 0 && ![...this.usage.values()].some((d) => d !== 0);
  }
}

/** The bytes of the attachments an item state lists (0 for a deleted or absent item). */
export function attachmentBytes(state: Pick<ItemState, 'deleted' | 'data'> | undefined): number {
  if (!state || state.deleted) return 0;
  const list = state.data?.[ATTACHMENTS_STATE_KEY];
  if (!Array.isArray(list)) return 0;
  let sum = 0;
  for (const a of list) {
    const size = (a as JsonObject | null)?.size;
    if (typeof size === 'number' && Number.isFinite(size)) sum += size;
  }
  return sum;
}

/**
 * Writes a transaction's quota changes. The usage rows first (in tenant order), then the
 * reservations: the gateway's reservation holds a tenant's usage row and never waits on a
 * reservation row, so the two cannot deadlock.
 */
export async function applyQuotaChanges(client: PoolClient, q: QuotaChanges): Promise<void> {
  if (q.empty) return;
  const usage = [...q.usage].filter(([, b]) => b !== 0).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([t, b]) => ({ t, b }));
  if (usage.length) {
    await client.query(
      `INSERT INTO attachment_usage (tenant, committed_bytes)
       SELECT t, b FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (t text, b bigint)) WITH ORDINALITY AS x(t, b, n) ORDER BY n
       ON CONFLICT (tenant) DO UPDATE SET committed_bytes = attachment_usage.committed_bytes + EXCLUDED.committed_bytes`,
      [JSON.stringify(usage)],
    );
  }
  if (q.released.size) await client.query('DELETE FROM attachment_reservations WHERE attachment_id = ANY($1::text[])', [[...q.released]]);
}

/**
 * The one INSERT INTO parked: poison records and the writes held behind them, in the given order
 * (their ids follow it). Text arrays, not JSON: a poison command may hold what jsonb refuses (\u0000).
 * A request already parked stays as it is. Answers how many rows were new.
 */
export async function insertParked(client: PoolClient, rows: ParkedInsert[]): Promise<number> {
  if (rows.length === 0) return 0;
  const cols: unknown[][] = Array.from({ length: 10 }, () => []);
  for (const { entry: e, kind, error, attempts } of rows) {
    const c = e.cmd;
    pushRow(cols, [c.requestId, c.tenant, c.collection, c.id, JSON.stringify(c), error, e.shardId ?? null, e.sequenceNumber ?? null, kind, attempts ?? 0]);
  }
  const res = await client.query(
    `INSERT INTO parked (request_id, tenant, collection, item_id, command, error, shard_id, sequence_number, kind, attempts)
     SELECT r, t, c, i, cmd, err, sh, sq, k, a FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
       $6::text[], $7::text[], $8::text[], $9::text[], $10::int[]) WITH ORDINALITY AS x(r, t, c, i, cmd, err, sh, sq, k, a, n)
     ORDER BY n ON CONFLICT (request_id) DO NOTHING`,
    cols,
  );
  return res.rowCount ?? 0;
}

export function eventRow(cmd: Command, version: number, type: string, data: JsonObject | null, at: string): EventRowJson {
  return { t: cmd.tenant, c: cmd.collection, i: cmd.id, v: version, ty: type, d: data,
    r: cmd.requestId, ik: cmd.idempotencyKey ?? null, pr: cmd.principal, tr: cmd.traceId ?? null, at };
}

export function itemStateRow(st: ItemState): ItemRowJson {
  return { t: st.tenant, c: st.collection, i: st.id, v: st.version, del: st.deleted, d: st.data, at: st.updatedAt };
}

export function requestRow(cmd: Command, s: 'committed' | 'rejected', v: number | null, re: Rejection | null, at: string): RequestRowJson {
  return { r: cmd.requestId, t: cmd.tenant, pr: cmd.principal, c: cmd.collection, i: cmd.id, s, v, re, ik: cmd.idempotencyKey ?? null, at };
}

/** Runs `work` in one transaction on a client of its own; after any failure the client is discarded. */
export async function transaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  // A checked-out client has no pool error listener: a connection reset between two queries
  // would be an unhandled 'error' event and kill the process. Keep it, and discard the client.
  let lost: Error | undefined;
  const onError = (err: Error) => {
    lost = err;
  };
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    const out = await work(client);
    await client.query('COMMIT');
    return out;
  } catch (err) {
    lost ??= err as Error;
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.off('error', onError);
    // After any failure the connection's state is unknown: destroy it rather than reuse it.
    client.release(lost);
  }
}

/**
 * The one savepoint loop: `step` on each item in order, each under its own savepoint, inside the
 * caller's transaction; stops at the first failure (rolled back to its savepoint, so everything
 * before it still commits with the transaction).
 */
export async function eachInSavepoint<T, R>(
  client: PoolClient, items: readonly T[], step: (item: T) => Promise<R>,
): Promise<{ results: R[]; failure?: { index: number; error: unknown } }> {
  const results: R[] = [];
  for (let i = 0; i < items.length; i++) {
    await client.query('SAVEPOINT cmd');
    try {
      results.push(await step(items[i]!));
      await client.query('RELEASE SAVEPOINT cmd');
    } catch (error) {
      await client.query('ROLLBACK TO SAVEPOINT cmd');
      return { results, failure: { index: i, error } };
    }
  }
  return { results };
}

export interface EventRowJson {
  t: string; c: string; i: string; v: number; ty: string; d: JsonObject | null; r: string; ik: string | null; pr: string; tr: string | null; at: string;
}
export interface ItemRowJson {
  t: string; c: string; i: string; v: number; del: boolean; d: JsonObject | null; at: string;
}
export interface RequestRowJson {
  r: string; t: string; pr: string; c: string; i: string; s: 'committed' | 'rejected'; v: number | null; re: Rejection | null; ik: string | null; at: string;
}

function pushRow(columns: unknown[][], values: unknown[]) {
  values.forEach((v, i) => columns[i]!.push(v));
}

export function toState(cmd: Command, row: ItemRow): ItemState {
  return {
    tenant: cmd.tenant, collection: cmd.collection, id: cmd.id,
    version: row.version, deleted: row.deleted, data: row.data, updatedAt: row.updated_at.toISOString(),
  };
}

