/**
 * Verify: the live read model against a fold of the log. Per collection it compares counts and an
 * order-independent checksum; differing items are re-checked against the log's newest state a few
 * times (live writes keep landing while it runs) before they count as differences.
 */
import { createHash } from 'node:crypto';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { itemsPk } from '../../core/keys';
import { liveVersion } from '../../core/projections';
import { DynamoDurableStore } from '../../core/read-store';
import type { ItemState } from '../../core/contracts';
import type { Projection } from '../../core/projections';
import { projectionAt } from '../../core/projections';
import { foldItems, foldLog, type ItemKey, logHead } from './fold';
import type { ReplayDeps } from './rebuild';

interface Entry { version: number; doc: string | null }

export interface CollectionReport {
  pk: string;
  logCount: number;
  modelCount: number;
  logChecksum: string;
  modelChecksum: string;
  ok: boolean;
}

export interface ItemDiff {
  key: string;
  log?: Entry;
  model?: Entry;
}

export interface VerifyReport {
  projection: string;
  version: number;
  table: string;
  head: string;
  items: number;
  collections: CollectionReport[];
  diffs: ItemDiff[];
  diffCount: number;
  ok: boolean;
}

/** JSON with keys sorted, so documents equal as JSON compare equal as strings (jsonb reorders keys). */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

const canon = (json: string | null) => (json === null ? null : canonicalJson(JSON.parse(json)));
const keyOf = (t: string, c: string, id: string) => `${itemsPk(t, c)}\u0000${id}`;
const same = (a?: Entry, b?: Entry) => !!a && !!b && a.version === b.version && a.doc === b.doc;

function expected(p: Projection, s: ItemState): Entry {
  const w = p.item(s);
  return { version: w.version, doc: canon(w.json) };
}

export async function verify(deps: ReplayDeps, opts: { projection: string; maxDiffs?: number; rechecks?: number }): Promise<VerifyReport> {
  const maxDiffs = opts.maxDiffs ?? 10;
  const rec = await deps.registry.get(opts.projection);
  const v = liveVersion(rec);
  const projection = projectionAt(opts.projection, v.code);
  const head = await logHead(deps.pool);

  const log = new Map<string, Entry>();
  for await (const page of foldLog(deps.pool, { head, pageSize: 5000 })) {
    for (const s of page.items) log.set(keyOf(s.tenant, s.collection, s.id), expected(projection, s));
  }
  const model = new Map<string, Entry>();
  let start: Record<string, unknown> | undefined;
  do {
    const out = await deps.doc.send(new ScanCommand({ TableName: v.itemsTable, ConsistentRead: true, ...(start ? { ExclusiveStartKey: start } : {}) }));
    for (const it of out.Items ?? []) {
      model.set(`${String(it.pk)}\u0000${String(it.id)}`, { version: Number(it.version), doc: it.deleted ? null : canon(String(it.doc)) });
    }
    start = out.LastEvaluatedKey;
  } while (start);

  // Differences may be writes that landed after the head: re-read both sides for those items.
  let differing = [...new Set([...log.keys(), ...model.keys()])].filter((k) => !same(log.get(k), model.get(k)));
  const store = new DynamoDurableStore(deps.doc, v.itemsTable, deps.requestsTable);
  for (let round = 0; round < (opts.rechecks ?? 3) && differing.length > 0; round++) {
    await new Promise((r) => setTimeout(r, 300 * (round + 1)));
    const keys: ItemKey[] = differing.map((k) => {
      const [pk, id] = k.split('\u0000') as [string, string];
      const [tenant, collection] = pk.split('#') as [string, string];
      return [tenant, collection, id];
    });
    for (const s of await foldItems(deps.pool, keys)) log.set(keyOf(s.tenant, s.collection, s.id), expected(projection, s));
    for (const [t, c, id] of keys) {
      const got = await store.getItem(t, c, id);
      if (got) model.set(keyOf(t, c, id), { version: got.version, doc: canon(got.json) });
      else model.delete(keyOf(t, c, id));
    }
    differing = differing.filter((k) => !same(log.get(k), model.get(k)));
  }

  const collections = new Map<string, { lc: number; mc: number; lh: Buffer; mh: Buffer }>();
  const xor = (acc: Buffer, k: string, e: Entry) => {
    const h = createHash('sha256').update(`${k}\u0000${e.version}\u0000${e.doc ?? ''}`).digest();
    for (let i = 0; i < acc.length; i++) acc[i]! ^= h[i]!;
  };
  const coll = (k: string) => {
    const pk = k.split('\u0000')[0]!;
    let c = collections.get(pk);
    if (!c) collections.set(pk, (c = { lc: 0, mc: 0, lh: Buffer.alloc(8), mh: Buffer.alloc(8) }));
    return c;
  };
  for (const [k, e] of log) {
    const c = coll(k);
    if (e.doc !== null) c.lc++;
    xor(c.lh, k, e);
  }
  for (const [k, e] of model) {
    const c = coll(k);
    if (e.doc !== null) c.mc++;
    xor(c.mh, k, e);
  }
  const reports = [...collections.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([pk, c]): CollectionReport => {
    const lh = c.lh.toString('hex');
    const mh = c.mh.toString('hex');
    return { pk, logCount: c.lc, modelCount: c.mc, logChecksum: lh, modelChecksum: mh, ok: c.lc === c.mc && lh === mh };
  });
  const diffs = differing.slice(0, maxDiffs).map((k): ItemDiff => {
    const d: ItemDiff = { key: k.replace('\u0000', '/') };
    const l = log.get(k);
    const m = model.get(k);
    if (l) d.log = l;
    if (m) d.model = m;
    return d;
  });
  return {
    projection: opts.projection, version: v.n, table: v.itemsTable, head, items: log.size, collections: reports, diffs,
    diffCount: differing.length, ok: differing.length === 0 && reports.every((r) => r.ok),
  };
}
