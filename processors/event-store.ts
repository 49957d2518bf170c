/**
 * The write side's store (PostgreSQL, the source of truth): a command's event, the item's new
 * state and the request's status commit together. The request id is unique, so a replayed record
 * changes nothing and yields the outcome that was decided the first time.
 *
 * `executeBatch` decides a whole batch in one transaction with set-based statements (a handful of
 * round trips for hundreds of commands). If anything in it fails, nothing of it is committed and
 * the batch is redone one command per savepoint, so the commands before the failing one commit,
 * the failing one is reported, and no command is lost or applied twice.
 *
 * Writes to an item that has a parked (poison) record are held behind it, in order, in `parked`
 * (see processors/parking.ts); they are applied by `npm run dlq -- redrive`.
 */
import type { Pool, PoolClient } from 'pg';
import type { Command, ItemState, JsonObject, Rejection } from '../core/contracts';
import { decide } from './decide';
import { deterministicRejection } from './failures';

export type Outcome =
  | { status: 'committed'; version: number; decidedAt: string; state: ItemState; replayed: boolean }
  | { status: 'rejected'; reason: Rejection; decidedAt: string; replayed: boolean };

/** Not applied: an earlier write of the same item is parked, so this one waits behind it. */
export interface Held {
  status: 'held';
  behind: string;
  replayed: boolean;
}
export type BatchOutcome = Outcome | Held;

export interface BatchEntry {
  cmd: Command;
  shardId?: string | undefined;
  sequenceNumber?: string | undefined;
}

export interface BatchResult {
  /** Outcomes of entries [0, outcomes.length): all committed. */
  outcomes: BatchOutcome[];
  /** The entry that failed; nothing from it on was committed. */
  failure?: { index: number; error: unknown };
}

export interface EventStore {
  execute(command: Command): Promise<Outcome>;
  executeBatch(entries: BatchEntry[]): Promise<BatchResult>;
}

interface ItemRow {
  version: number;
  deleted: boolean;
  data: JsonObject | null;
  updated_at: Date;
}

interface PriorRow {
  request_id: string;
  status: string;
  version: number | null;
  reason: Rejection | null;
  decided_at: Date;
}

const itemKey = (t: string, c: string, id: string) => `${t}\u0000${c}\u0000${id}`;
const cmdKey = (cmd: Command) => itemKey(cmd.tenant, cmd.collection, cmd.id);

/** A row of loadContext's first statement: a prior outcome ('r') or a parked record ('p'). */
interface KnownRow extends PriorRow {
  kind: 'r' | 'p';
  tenant: string | null;
  collection: string | null;
  item_id: string | null;
  id: string | null;
}

interface BatchContext {
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
async function loadContext(client: Pool | PoolClient, entries: BatchEntry[], forUpdate: boolean): Promise<BatchContext> {
  const rids = entries.map((e) => e.cmd.requestId);
  const keys = new Map<string, Command>();
  for (const e of entries) keys.set(cmdKey(e.cmd), e.cmd);
  const kt = [...keys.values()].map((c) => c.tenant);
  const kc = [...keys.values()].map((c) => c.collection);
  const ki = [...keys.values()].map((c) => c.id);
  // Prior outcomes and parked records in one round trip (parked is nearly always empty); the
  // states after them, locked, in a second statement, so a state is never older than an outcome.
  const known = await client.query<KnownRow>(
    `SELECT 'r' AS kind, request_id, status, version, reason, decided_at, NULL AS tenant, NULL AS collection, NULL AS item_id, NULL::bigint AS id
       FROM requests WHERE request_id = ANY($1::text[])
     UNION ALL
     SELECT 'p', request_id, NULL, NULL, NULL, NULL, tenant, collection, item_id, id FROM parked WHERE request_id = ANY($1::text[])
     UNION ALL
     (SELECT DISTINCT ON (p.tenant, p.collection, p.item_id) 'p', p.request_id, NULL, NULL, NULL, NULL, p.tenant, p.collection, p.item_id, p.id
        FROM parked p JOIN unnest($2::text[], $3::text[], $4::text[]) AS k(t, c, i)
          ON p.tenant = k.t AND p.collection = k.c AND p.item_id = k.i
       ORDER BY p.tenant, p.collection, p.item_id, p.id)`,
    [rids, kt, kc, ki],
  );
  const stateRes = await client.query<ItemRow & { tenant: string; collection: string; item_id: string }>(
    `SELECT it.tenant, it.collection, it.item_id, it.version, it.deleted, it.data, it.updated_at
       FROM items it JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(t, c, i)
         ON it.tenant = k.t AND it.collection = k.c AND it.item_id = k.i
      ORDER BY it.tenant, it.collection, it.item_id${forUpdate ? ' FOR UPDATE OF it' : ''}`,
    [kt, kc, ki],
  );

  const prior = new Map<string, PriorRow>();
  const parkedItems = new Map<string, string>();
  const parkedReqs = new Set<string>();
  const asked = new Set(rids);
  // Of an item's parked records, the first (lowest id) is the one the later writes wait behind.
  const firstParked = new Map<string, { id: number; requestId: string }>();
  for (const r of known.rows) {
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
  const states = new Map<string, ItemState>();
  for (const r of stateRes.rows) {
    states.set(itemKey(r.tenant, r.collection, r.item_id), {
      tenant: r.tenant, collection: r.collection, id: r.item_id,
      version: r.version, deleted: r.deleted, data: r.data, updatedAt: r.updated_at.toISOString(),
    });
  }
  return { prior, parkedItems, parkedReqs, states };
}

/** A decided request's outcome, replayed; a committed one carries the item's current state (never older). */
function replayedOutcome(p: PriorRow, state: ItemState | undefined): Outcome {
  return p.status === 'rejected'
    ? { status: 'rejected', reason: p.reason!, decidedAt: p.decided_at.toISOString(), replayed: true }
    : { status: 'committed', version: p.version!, decidedAt: p.decided_at.toISOString(), state: state!, replayed: true };
}

export class PgEventStore implements EventStore {
  constructor(readonly pool: Pool) {}

  /** One command in its own transaction; does not look at parked items (redrive uses it per item). */
  async execute(cmd: Command): Promise<Outcome> {
    const out = await this.transaction((c) => this.executeIn(c, { cmd }, false));
    if (out.status === 'held') throw new Error('unreachable: parked items are not consulted');
    return out;
  }

  async executeBatch(entries: BatchEntry[]): Promise<BatchResult> {
    if (entries.length === 0) return { outcomes: [] };
    try {
      return { outcomes: await this.transaction((c) => this.batchIn(c, entries)) };
    } catch (err) {
      if (entries.length === 1 && !deterministicRejection(err)) return { outcomes: [], failure: { index: 0, error: err } };
      // Find the failing command: redo one command per savepoint (the fast attempt committed nothing).
      return this.transaction((c) => this.oneByOne(c, entries));
    }
  }

  /**
   * Read-only: the outcome each entry already has (as `executeBatch` would replay it, with the
   * item's current state), `held` for a parked or held request, `undefined` for one not decided yet.
   * The projection consumer uses it to project what the commit consumer decided.
   */
  async lookupBatch(entries: BatchEntry[]): Promise<Array<BatchOutcome | undefined>> {
    if (entries.length === 0) return [];
    const { prior, parkedItems, parkedReqs, states } = await loadContext(this.pool, entries, false);
    return entries.map(({ cmd }) => {
      const p = prior.get(cmd.requestId);
      if (p) return replayedOutcome(p, states.get(cmdKey(cmd)));
      if (parkedReqs.has(cmd.requestId)) return { status: 'held', behind: parkedItems.get(cmdKey(cmd)) ?? cmd.requestId, replayed: true };
      return undefined;
    });
  }

  async transaction<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
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

  private async oneByOne(client: PoolClient, entries: BatchEntry[]): Promise<BatchResult> {
    const outcomes: BatchOutcome[] = [];
    for (let i = 0; i < entries.length; i++) {
      await client.query('SAVEPOINT cmd');
      try {
        outcomes.push(await this.executeIn(client, entries[i]!, true));
        await client.query('RELEASE SAVEPOINT cmd');
      } catch (error) {
        await client.query('ROLLBACK TO SAVEPOINT cmd');
        // Content the database can never store: rejected (a final ack), not retried or parked.
        const reason = deterministicRejection(error);
        if (!reason) return { outcomes, failure: { index: i, error } };
        const decidedAt = new Date().toISOString();
        try {
          await recordRequest(client, entries[i]!.cmd, 'rejected', null, reason, decidedAt);
        } catch {
          await client.query('ROLLBACK TO SAVEPOINT cmd');
          return { outcomes, failure: { index: i, error } };
        }
        outcomes.push({ status: 'rejected', reason, decidedAt, replayed: false });
      }
    }
    return { outcomes };
  }

  /** The whole batch, set-based: read what it needs, decide in memory in order, write with multi-row statements. */
  private async batchIn(client: PoolClient, entries: BatchEntry[]): Promise<BatchOutcome[]> {
    const { prior, parkedItems, parkedReqs, states } = await loadContext(client, entries, true);

    const decidedAt = new Date().toISOString();
    const decidedHere = new Map<string, BatchOutcome>();
    const touched = new Set<string>();
    // Rows for the write statement, sent as JSON documents: one JSON.stringify each instead of the
    // driver escaping every element of a dozen array parameters (a visible share of the CPU).
    const ev: EventRowJson[] = [];
    const rq: RequestRowJson[] = [];
    const held: unknown[][] = Array.from({ length: 9 }, () => []);
    const outcomes: BatchOutcome[] = [];

    for (const e of entries) {
      const cmd = e.cmd;
      const key = cmdKey(cmd);
      const again = decidedHere.get(cmd.requestId);
      if (again) {
        outcomes.push({ ...again, replayed: true } as BatchOutcome);
        continue;
      }
      const p = prior.get(cmd.requestId);
      let out: BatchOutcome;
      if (p) {
        out = replayedOutcome(p, states.get(key));
      } else if (parkedReqs.has(cmd.requestId)) {
        out = { status: 'held', behind: parkedItems.get(key) ?? cmd.requestId, replayed: true };
      } else if (parkedItems.has(key)) {
        out = { status: 'held', behind: parkedItems.get(key)!, replayed: false };
        pushRow(held, [cmd.requestId, cmd.tenant, cmd.collection, cmd.id, JSON.stringify(cmd),
          `held behind parked request ${out.behind}`, e.shardId ?? null, e.sequenceNumber ?? null, 'held']);
      } else {
        const decision = decide(cmd, states.get(key));
        if (decision.kind === 'reject') {
          out = { status: 'rejected', reason: decision.reason, decidedAt, replayed: false };
          rq.push({ r: cmd.requestId, t: cmd.tenant, pr: cmd.principal, c: cmd.collection, i: cmd.id, s: 'rejected', v: null,
            re: decision.reason, ik: cmd.idempotencyKey ?? null, at: decidedAt });
        } else {
          const next: ItemState = {
            tenant: cmd.tenant, collection: cmd.collection, id: cmd.id,
            version: decision.version, deleted: decision.deleted, data: decision.data, updatedAt: decidedAt,
          };
          states.set(key, next);
          touched.add(key);
          ev.push({ t: cmd.tenant, c: cmd.collection, i: cmd.id, v: decision.version, ty: decision.type, d: decision.eventData,
            r: cmd.requestId, ik: cmd.idempotencyKey ?? null, pr: cmd.principal, tr: cmd.traceId ?? null, at: decidedAt });
          rq.push({ r: cmd.requestId, t: cmd.tenant, pr: cmd.principal, c: cmd.collection, i: cmd.id, s: 'committed', v: decision.version,
            re: null, ik: cmd.idempotencyKey ?? null, at: decidedAt });
          out = { status: 'committed', version: decision.version, decidedAt, state: next, replayed: false };
        }
      }
      if (!out.replayed) decidedHere.set(cmd.requestId, out);
      outcomes.push(out);
    }

    if (rq.length) {
      const it: ItemRowJson[] = [];
      for (const k of touched) {
        const st = states.get(k)!;
        it.push({ t: st.tenant, c: st.collection, i: st.id, v: st.version, del: st.deleted, d: st.data, at: st.updatedAt });
      }
      // Events (in batch order: their positions follow it), item states and request statuses in one
      // statement: one round trip. A failure in any part fails the whole, as before (then oneByOne).
      await client.query(
        `WITH ev AS (
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
        [JSON.stringify(ev), JSON.stringify(it), JSON.stringify(rq)],
      );
    }
    if (held[0]!.length) {
      await client.query(
        `INSERT INTO parked (request_id, tenant, collection, item_id, command, error, shard_id, sequence_number, kind)
         SELECT r, t, c, i, cmd, err, sh, sq, k FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
           $6::text[], $7::text[], $8::text[], $9::text[]) WITH ORDINALITY AS x(r, t, c, i, cmd, err, sh, sq, k, n)
         ORDER BY n ON CONFLICT (request_id) DO NOTHING`,
        held,
      );
    }
    return outcomes;
  }

  /** One command inside the caller's transaction. `respectParked`: hold it if its item has a parked record. */
  async executeIn(client: PoolClient, e: BatchEntry, respectParked: boolean): Promise<BatchOutcome> {
    const cmd = e.cmd;
    const prior = await this.priorOutcome(client, cmd);
    if (prior) return prior;

    if (respectParked) {
      const p = await client.query<{ request_id: string }>(
        `SELECT request_id FROM parked WHERE request_id = $4 OR (tenant = $1 AND collection = $2 AND item_id = $3)
          ORDER BY id LIMIT 1`,
        [cmd.tenant, cmd.collection, cmd.id, cmd.requestId],
      );
      const first = p.rows[0];
      if (first) {
        const res = await client.query(
          `INSERT INTO parked (request_id, tenant, collection, item_id, command, error, shard_id, sequence_number, kind)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'held') ON CONFLICT (request_id) DO NOTHING`,
          [cmd.requestId, cmd.tenant, cmd.collection, cmd.id, JSON.stringify(cmd), `held behind parked request ${first.request_id}`,
            e.shardId ?? null, e.sequenceNumber ?? null],
        );
        return { status: 'held', behind: first.request_id, replayed: res.rowCount === 0 };
      }
    }

    const row = await client.query<ItemRow>(
      'SELECT version, deleted, data, updated_at FROM items WHERE tenant = $1 AND collection = $2 AND item_id = $3 FOR UPDATE',
      [cmd.tenant, cmd.collection, cmd.id],
    );
    const state = row.rows[0] ? toState(cmd, row.rows[0]) : undefined;
    const decision = decide(cmd, state);
    const decidedAt = new Date().toISOString();

    if (decision.kind === 'reject') {
      await recordRequest(client, cmd, 'rejected', null, decision.reason, decidedAt);
      return { status: 'rejected', reason: decision.reason, decidedAt, replayed: false };
    }

    await client.query(
      `INSERT INTO events (tenant, collection, item_id, version, type, data, request_id, idempotency_key, principal, trace_id, recorded_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
      [cmd.tenant, cmd.collection, cmd.id, decision.version, decision.type, json(decision.eventData), cmd.requestId,
        cmd.idempotencyKey ?? null, cmd.principal, cmd.traceId ?? null, decidedAt],
    );
    await client.query(
      `INSERT INTO items (tenant, collection, item_id, version, deleted, data, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (tenant, collection, item_id) DO UPDATE SET version = EXCLUDED.version, deleted = EXCLUDED.deleted,
         data = EXCLUDED.data, updated_at = EXCLUDED.updated_at`,
      [cmd.tenant, cmd.collection, cmd.id, decision.version, decision.deleted, json(decision.data), decidedAt],
    );
    await recordRequest(client, cmd, 'committed', decision.version, null, decidedAt);
    const next: ItemState = {
      tenant: cmd.tenant, collection: cmd.collection, id: cmd.id,
      version: decision.version, deleted: decision.deleted, data: decision.data, updatedAt: decidedAt,
    };
    return { status: 'committed', version: decision.version, decidedAt, state: next, replayed: false };
  }

  /** A request decided before (a replayed record): its outcome, with the item's current state to re-project. */
  private async priorOutcome(client: PoolClient, cmd: Command): Promise<Outcome | undefined> {
    const res = await client.query<PriorRow>(
      'SELECT request_id, status, version, reason, decided_at FROM requests WHERE request_id = $1',
      [cmd.requestId],
    );
    const prior = res.rows[0];
    if (!prior) return undefined;
    const decidedAt = prior.decided_at.toISOString();
    if (prior.status === 'rejected') {
      return { status: 'rejected', reason: prior.reason!, decidedAt, replayed: true };
    }
    const row = await client.query<ItemRow>(
      'SELECT version, deleted, data, updated_at FROM items WHERE tenant = $1 AND collection = $2 AND item_id = $3',
      [cmd.tenant, cmd.collection, cmd.id],
    );
    return { status: 'committed', version: prior.version!, decidedAt, state: toState(cmd, row.rows[0]!), replayed: true };
  }
}

/** Records a decision for a request (also used to record an operator's discard of a parked write). */
export async function recordRequest(
  client: PoolClient,
  cmd: Command,
  status: 'committed' | 'rejected',
  version: number | null,
  reason: Rejection | null,
  decidedAt: string,
): Promise<void> {
  await client.query(
    `INSERT INTO requests (request_id, tenant, principal, collection, item_id, status, version, reason, idempotency_key, decided_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    [cmd.requestId, cmd.tenant, cmd.principal, cmd.collection, cmd.id, status, version, json(reason), cmd.idempotencyKey ?? null, decidedAt],
  );
}

interface EventRowJson {
  t: string; c: string; i: string; v: number; ty: string; d: JsonObject | null; r: string; ik: string | null; pr: string; tr: string | null; at: string;
}
interface ItemRowJson {
  t: string; c: string; i: string; v: number; del: boolean; d: JsonObject | null; at: string;
}
interface RequestRowJson {
  r: string; t: string; pr: string; c: string; i: string; s: 'committed' | 'rejected'; v: number | null; re: Rejection | null; ik: string | null; at: string;
}

function pushRow(columns: unknown[][], values: unknown[]) {
  values.forEach((v, i) => columns[i]!.push(v));
}

function toState(cmd: Command, row: ItemRow): ItemState {
  return {
    tenant: cmd.tenant, collection: cmd.collection, id: cmd.id,
    version: row.version, deleted: row.deleted, data: row.data, updatedAt: row.updated_at.toISOString(),
  };
}

// pg sends JS objects as JSON, but arrays as PostgreSQL arrays: serialise explicitly.
const json = (v: unknown) => (v === null || v === undefined ? null : JSON.stringify(v));
