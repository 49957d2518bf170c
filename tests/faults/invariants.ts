/**
 * The invariants a fault must not break, checked against the real stores:
 *  - every write that got 202 is decided exactly once (one request row, at most one event);
 *    every write that did not get 202 left no trace in the log;
 *  - every 202 write has exactly one distinct final ack at its client, matching the decision,
 *    and no `queued` after it;
 *  - the read model (DynamoDB, and Redis where it holds a copy) equals the fold of the event log.
 * Until `npm run replay -- verify` (issue 7) exists, the fold is done here with the processors' own
 * `evolve`, which is the function replays use.
 */
import { BatchGetCommand } from '@aws-sdk/lib-dynamodb';
import type { Pool } from 'pg';
import type { Redis } from 'ioredis';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { ItemState, JsonObject } from '../../core/contracts';
import { itemsPk, RedisKeys, requestsPk } from '../../core/keys';
import { evolve } from '../../processors/decide';
import type { LogRow } from '../../processors/replay/fold';
import type { ResilientAckClient } from './ack-client';

export interface WriteRecord {
  key: string; // Idempotency-Key: the test's own id of the write
  client: ResilientAckClient;
  tenant: string;
  collection: string;
  id: string;
  status: number; // HTTP status, 0 for a network error
  requestId?: string;
}

export interface CheckResult {
  ok: boolean;
  detail: string;
}

export const INVARIANTS = ['202 in log exactly once', 'non-202 not in log', 'one final ack, no queued after', 'read model = fold of log', 'no crash, no leaks'] as const;
export type InvariantName = (typeof INVARIANTS)[number];

export async function checkLog(pg: Pool, writes: WriteRecord[]): Promise<{ accepted: CheckResult; refused: CheckResult; decided: Map<string, { status: string; version: number | null }> }> {
  const req = await pg.query<{ idempotency_key: string; request_id: string; status: string; version: number | null }>(
    'SELECT idempotency_key, request_id, status, version FROM requests',
  );
  const ev = await pg.query<{ idempotency_key: string; n: string }>('SELECT idempotency_key, count(*) AS n FROM events GROUP BY idempotency_key');
  const reqByKey = new Map<string, typeof req.rows>();
  for (const r of req.rows) reqByKey.set(r.idempotency_key, [...(reqByKey.get(r.idempotency_key) ?? []), r]);
  const evByKey = new Map(ev.rows.map((r) => [r.idempotency_key, Number(r.n)]));
  const decided = new Map<string, { status: string; version: number | null }>();

  const badAccepted: string[] = [];
  const badRefused: string[] = [];
  let accepted = 0;
  let refused = 0;
  for (const w of writes) {
    const rows = reqByKey.get(w.key) ?? [];
    const events = evByKey.get(w.key) ?? 0;
    if (w.status === 202) {
      accepted++;
      const row = rows[0];
      const ok = rows.length === 1 && row!.request_id === w.requestId && events === (row!.status === 'committed' ? 1 : 0);
      if (!ok) badAccepted.push(`${w.key}: ${rows.length} request rows, ${events} events`);
      if (row) decided.set(w.requestId!, { status: row.status, version: row.version });
    } else {
      refused++;
      if (rows.length > 0 || events > 0) badRefused.push(`${w.key} (HTTP ${w.status}): ${rows.length} request rows, ${events} events`);
    }
  }
  return {
    accepted: { ok: badAccepted.length === 0, detail: badAccepted.length ? `${badAccepted.length}/${accepted} bad: ${badAccepted.slice(0, 3).join('; ')}` : `${accepted} ok` },
    refused: { ok: badRefused.length === 0, detail: badRefused.length ? `${badRefused.length}/${refused} in log: ${badRefused.slice(0, 3).join('; ')}` : `${refused} ok` },
    decided,
  };
}

export function checkAcks(writes: WriteRecord[], decided: Map<string, { status: string; version: number | null }>, missing: Set<string>): CheckResult {
  const bad: string[] = [];
  let n = 0;
  for (const w of writes) {
    if (w.status !== 202) continue;
    n++;
    const seen = w.client.byRequest.get(w.requestId!) ?? [];
    const finalCursors = new Set(seen.filter((a) => a.stage !== 'queued').map((a) => a.cursor));
    const firstFinal = seen.findIndex((a) => a.stage !== 'queued');
    const queuedAfter = firstFinal >= 0 && seen.slice(firstFinal).some((a) => a.stage === 'queued');
    const final = seen[firstFinal];
    const d = decided.get(w.requestId!);
    const matches = !!final && !!d && final.stage === d.status && (d.status !== 'committed' || final.version === d.version);
    if (missing.has(w.requestId!) || finalCursors.size !== 1 || queuedAfter || !matches) {
      bad.push(`${w.key}: ${finalCursors.size} final acks${queuedAfter ? ', queued after final' : ''}${matches ? '' : `, ack ${final?.stage}/${final?.version} vs log ${d?.status}/${d?.version}`}`);
    }
  }
  return { ok: bad.length === 0, detail: bad.length ? `${bad.length}/${n} bad: ${bad.slice(0, 3).join('; ')}` : `${n} ok` };
}

/** Folds the whole event log and compares every item with PostgreSQL's state, DynamoDB and Redis. */
export async function checkReadModel(
  pg: Pool,
  doc: DynamoDBDocumentClient,
  redis: Redis,
  opts: { prefix: string; itemsTable: string; requestsTable: string },
): Promise<CheckResult> {
  const events = await pg.query<LogRow>('SELECT tenant, collection, item_id, version, type, data, recorded_at FROM events ORDER BY position');
  const folded = new Map<string, ItemState>();
  const bad: string[] = [];
  for (const e of events.rows) {
    const k = `${e.tenant}\u0000${e.collection}\u0000${e.item_id}`;
    const prev = folded.get(k);
    if ((prev?.version ?? 0) + 1 !== e.version) bad.push(`${e.collection}/${e.item_id}: event version ${e.version} after ${prev?.version ?? 0}`);
    const next = evolve(prev, e);
    folded.set(k, { tenant: e.tenant, collection: e.collection, id: e.item_id, ...next, updatedAt: e.recorded_at.toISOString() });
  }
  const states = await pg.query<{ tenant: string; collection: string; item_id: string; version: number; deleted: boolean; data: JsonObject | null }>(
    'SELECT tenant, collection, item_id, version, deleted, data FROM items',
  );
  if (states.rows.length !== folded.size) bad.push(`items table has ${states.rows.length} rows, the log folds to ${folded.size}`);
  for (const s of states.rows) {
    const f = folded.get(`${s.tenant}\u0000${s.collection}\u0000${s.item_id}`);
    if (!f || f.version !== s.version || f.deleted !== s.deleted || canonical(f.data) !== canonical(s.data)) {
      bad.push(`${s.collection}/${s.item_id}: PostgreSQL state v${s.version} differs from the fold v${f?.version}`);
    }
  }

  const keys = new RedisKeys(opts.prefix);
  const all = [...folded.values()];
  for (let i = 0; i < all.length; i += 100) {
    const chunk = all.slice(i, i + 100);
    const out = await doc.send(new BatchGetCommand({
      RequestItems: { [opts.itemsTable]: { Keys: chunk.map((s) => ({ pk: itemsPk(s.tenant, s.collection), id: s.id })), ConsistentRead: true } },
    }));
    const got = new Map((out.Responses?.[opts.itemsTable] ?? []).map((it) => [`${it.pk}\u0000${it.id}`, it]));
    if (out.UnprocessedKeys && Object.keys(out.UnprocessedKeys).length) bad.push('DynamoDB left keys unprocessed');
    const pipeline = redis.pipeline();
    for (const s of chunk) pipeline.hmget(keys.item(s.tenant, s.collection, s.id), 'v', 'd');
    const hot = (await pipeline.exec()) ?? [];
    chunk.forEach((s, j) => {
      const expected = s.deleted ? null : canonical({ collection: s.collection, id: s.id, version: s.version, updatedAt: s.updatedAt, data: s.data ?? {} });
      const d = got.get(`${itemsPk(s.tenant, s.collection)}\u0000${s.id}`);
      const dJson = d ? (d.deleted ? null : canonical(JSON.parse(String(d.doc)))) : undefined;
      if (!d || Number(d.version) !== s.version || dJson !== expected) {
        bad.push(`${s.collection}/${s.id}: DynamoDB v${d?.version} ${d?.deleted ? 'deleted' : ''} vs fold v${s.version}${s.deleted ? ' deleted' : ''}`);
      }
      const [v, hd] = (hot[j]?.[1] as [string | null, string | null]) ?? [null, null];
      // The hot copy is a cache: absent is fine, present must equal the fold.
      if (v !== null && (Number(v) !== s.version || (hd === '' || hd === null ? null : canonical(JSON.parse(hd))) !== expected)) {
        bad.push(`${s.collection}/${s.id}: Redis v${v} vs fold v${s.version}`);
      }
    });
  }

  // Request statuses in the read model match the decisions in PostgreSQL.
  const reqs = await pg.query<{ tenant: string; request_id: string; status: string; version: number | null }>('SELECT tenant, request_id, status, version FROM requests');
  for (let i = 0; i < reqs.rows.length; i += 100) {
    const chunk = reqs.rows.slice(i, i + 100);
    const out = await doc.send(new BatchGetCommand({
      RequestItems: { [opts.requestsTable]: { Keys: chunk.map((r) => ({ pk: requestsPk(r.tenant, r.request_id) })), ConsistentRead: true } },
    }));
    const got = new Map((out.Responses?.[opts.requestsTable] ?? []).map((it) => [String(it.pk), it]));
    for (const r of chunk) {
      const it = got.get(requestsPk(r.tenant, r.request_id));
      const status = it ? (JSON.parse(String(it.doc)) as { status: string; version?: number }) : undefined;
      if (!status || status.status !== r.status || (r.status === 'committed' && status.version !== r.version)) {
        bad.push(`request ${r.request_id}: read model ${status?.status ?? 'absent'} vs log ${r.status}`);
      }
    }
  }
  return {
    ok: bad.length === 0,
    detail: bad.length ? `${bad.length} differences: ${bad.slice(0, 3).join('; ')}` : `${folded.size} items, ${events.rows.length} events, ${reqs.rows.length} requests equal`,
  };
}

/** JSON with object keys sorted: PostgreSQL's jsonb does not keep key order, so documents compare by content. */
export function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) =>
    val && typeof val === 'object' && !Array.isArray(val)
      ? Object.fromEntries(Object.entries(val as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : val,
  );
}
