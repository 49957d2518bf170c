/**
 * Blue/green rebuild of a projection: a new deployed version (own items table, own Redis key
 * space) is registered as `building` — from then on the processors project live writes into it —
 * then, after every processor has seen the registration, the log is folded into it up to a head
 * captured after that moment; writes after the head arrive through the processors, and the version
 * guards make any overlap harmless. Progress is checkpointed in the registry after each page, so a
 * killed run continues where it stopped. When caught up, readers are switched by one registry
 * write; the previous version is kept (still projected into) for rollback, then retired.
 */
import { DeleteTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Redis } from 'ioredis';
import type { Pool } from 'pg';
import type { ItemState } from '../../core/contracts';
import {
  type DynamoProjectionRegistry, liveVersion, type ProjectionRecord, type ProjectionVersion, RegistryConflictError, REGISTRY_SETTLE_MS,
  versionItemsTable, versionRedisPrefix,
} from '../../core/projections';
import { DynamoDurableStore, type DurableStore, ensureTable, itemsTableDefinition } from '../../core/read-store';
import type { Projection } from '../../core/projections';
import { latestProjection, projectionAt } from '../../core/projections';
import { countUpTo, foldItems, foldLog, type FoldPage, type ItemKey, itemsChangedBetween, logHead } from './fold';
import { type ProgressSink, silentProgress } from '../../core/progress';
import { copyTable, foldStream, stateFromStore } from './stream-source';
import { deleteKeysByPrefix } from '../../core/redis';

export interface ReplayDeps {
  pool: Pool;
  dynamo: DynamoDBClient;
  doc: DynamoDBDocumentClient;
  redis?: Redis | undefined;
  registry: DynamoProjectionRegistry;
  itemsTable: string;
  requestsTable: string;
  redisPrefix: string;
  log: (line: string) => void;
  kinesis?: KinesisClient;
  stream?: string;
  /** Wait after registering a version before reading the log head (> the processors' registry cache). */
  settleMs?: number;
}

export interface RebuildOptions {
  projection: string;
  /** `log` (default): the event log; `stream`: the commands in the stream's retention window. */
  from?: 'log' | 'stream';
  /** Stream source only: start at this time, on top of a copy of the live version. */
  since?: Date;
  keepOldMs: number;
  pageSize?: number;
  concurrency?: number;
  progress?: ProgressSink;
  /** Called after each checkpointed page (tests use it to pause or stop a run halfway). */
  onPage?: (done: number, total: number) => void | Promise<void>;
}

export interface RebuildResult {
  version: number;
  previous: number;
  events: number;
  items: number;
  seconds: number;
  resumed: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Read-modify-write of a registry record, retried when another writer got there first. */
export async function updateRecord(deps: ReplayDeps, name: string, mutate: (rec: ProjectionRecord) => void): Promise<ProjectionRecord> {
  for (let attempt = 0; ; attempt++) {
    const rec = await deps.registry.get(name);
    mutate(rec);
    try {
      return await deps.registry.save(rec);
    } catch (err) {
      if (!(err instanceof RegistryConflictError) || attempt >= 5) throw err;
    }
  }
}

/** A version's items table: the same layout as every items table (core/read-store/dynamodb/tables.ts). */
export async function createItemsTable(dynamo: DynamoDBClient, table: string): Promise<void> {
  await ensureTable(dynamo, itemsTableDefinition(table));
}

/** Writes final item states with bounded parallel version-guarded puts. */
export async function putStates(store: Pick<DurableStore, 'putItem'>, projection: Projection, states: ItemState[], concurrency: number): Promise<void> {
  let i = 0;
  const worker = async () => {
    while (i < states.length) {
      const s = states[i++]!;
      await store.putItem(projection.item(s));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, states.length) }, worker));
}

/**
 * The fast path: reads the log up to `head` in item order, folds each page in memory and writes
 * only final states with bounded parallel guarded puts; the next page is read while this one is
 * written. `onPage` runs after a page is fully written (the checkpoint point).
 */
export async function foldInto(
  pool: Pool,
  o: { head: string; after?: ItemKey | null; pageSize: number; concurrency: number; store: Pick<DurableStore, 'putItem'>; projection: Projection;
    onPage?: (page: FoldPage) => Promise<void> | void },
): Promise<{ events: number; items: number }> {
  let events = 0;
  let items = 0;
  const pages = foldLog(pool, { head: o.head, after: o.after ?? null, pageSize: o.pageSize });
  let next = pages.next();
  for (;;) {
    const r = await next;
    if (r.done) break;
    const page = r.value;
    if (!page.end) next = pages.next();
    await putStates(o.store, o.projection, page.items, o.concurrency);
    events += page.events;
    items += page.items.length;
    await o.onPage?.(page);
    if (page.end) break;
  }
  return { events, items };
}

export async function rebuild(deps: ReplayDeps, opts: RebuildOptions): Promise<RebuildResult> {
  const started = Date.now();
  const pageSize = opts.pageSize ?? 5000;
  const concurrency = opts.concurrency ?? 32;
  const progress = opts.progress ?? silentProgress;
  const settleMs = deps.settleMs ?? REGISTRY_SETTLE_MS;
  await deps.registry.ensureTable(deps.dynamo);
  await sweepRetirements(deps, opts.projection);

  // 1. The version to build: the one a killed run left `building`, or a new one.
  let rec = await deps.registry.get(opts.projection);
  let v = Object.values(rec.versions).find((x) => x.state === 'building');
  const resumed = !!v;
  if (!v) {
    const code = latestProjection(opts.projection).version;
    const n = Math.max(...Object.keys(rec.versions).map(Number)) + 1;
    const table = versionItemsTable(deps.itemsTable, n);
    // The table exists before the registration, so no processor ever writes to a missing table.
    await createItemsTable(deps.dynamo, table);
    rec = await updateRecord(deps, opts.projection, (r) => {
      if (Object.values(r.versions).some((x) => x.state === 'building')) throw new Error(`projection ${opts.projection} is already being rebuilt`);
      r.versions[String(n)] = {
        n, code, itemsTable: table, redisPrefix: versionRedisPrefix(deps.redisPrefix, n), state: 'building',
        createdAt: new Date().toISOString(), source: opts.from ?? 'log', cursor: null,
      };
    });
    v = rec.versions[String(n)]!;
    deps.log(`registered ${opts.projection} v${n} (code version ${code}) as building: table ${table}, Redis prefix ${v.redisPrefix}`);
  } else {
    deps.log(`resuming ${opts.projection} v${v.n} from ${v.cursor ? v.cursor.join('/') : 'the start'} (${v.done ?? 0}/${v.total ?? '?'} events)`);
  }
  const n = v.n;
  const projection = projectionAt(opts.projection, v.code);
  const store = new DynamoDurableStore(deps.doc, v.itemsTable, deps.requestsTable);

  // 2. Every processor now projects into the new version (their registry cache is younger than settleMs).
  const wait = Date.parse(v.createdAt) + settleMs - Date.now();
  if (wait > 0) await sleep(wait);

  let events = 0;
  let items = 0;
  if (v.source === 'stream') {
    // 3'. Stream source: decided again in memory; restarted from the range's start when resumed (guarded writes make that harmless).
    if (!deps.kinesis || !deps.stream) throw new Error('a stream rebuild needs the Kinesis client and stream name');
    const since = opts.since;
    if (since) {
      const copied = await copyTable(deps.doc, liveVersion(rec).itemsTable, store);
      deps.log(`copied ${copied} items of the live version as the base of the stream range since ${since.toISOString()}`);
    }
    const folded = await foldStream(
      { kinesis: deps.kinesis, stream: deps.stream, ...(since ? { since } : {}), until: new Date(), log: deps.log },
      (cmd) => (since ? stateFromStore(store, cmd) : Promise.resolve(undefined)),
    );
    await putStates(store, projection, folded.states, concurrency);
    progress.finish(folded.records, folded.records);
    events = folded.records;
    items = folded.states.length;
  } else {
    // 3. The head is captured after that, once, and kept across resumes.
    if (v.head === undefined) {
      const head = await logHead(deps.pool);
      const total = await countUpTo(deps.pool, head);
      rec = await updateRecord(deps, opts.projection, (r) => Object.assign(r.versions[String(n)]!, { head, total, done: 0, progressAt: new Date().toISOString() }));
      v = rec.versions[String(n)]!;
    }
    const head = v.head!;
    const total = v.total!;
    let done = total - (v.cursor ? await countUpTo(deps.pool, head, v.cursor) : total);

    // 4. Fold the log up to the head, page by page, checkpointing after each written page.
    const res = await foldInto(deps.pool, {
      head, after: v.cursor ?? null, pageSize, concurrency, store, projection,
      onPage: async (page) => {
        done += page.events;
        const cursor = page.cursor;
        await updateRecord(deps, opts.projection, (x) => Object.assign(x.versions[String(n)]!, { cursor, done, progressAt: new Date().toISOString() }));
        progress.update(done, total);
        await opts.onPage?.(done, total);
      },
    });
    events = res.events;
    items = res.items;
    progress.finish(done, total);

    // 5. Catch up: items written after the head are projected by the processors already; folding
    // them again from the log closes any gap (e.g. a processor that was down at registration).
    const head2 = await logHead(deps.pool);
    const changed = await itemsChangedBetween(deps.pool, head, head2);
    for (let i = 0; i < changed.length; i += 1000) {
      await putStates(store, projection, await foldItems(deps.pool, changed.slice(i, i + 1000)), concurrency);
    }
    if (changed.length) deps.log(`caught up: ${changed.length} items changed after the head (position ${head} → ${head2})`);
  }

  // 6. Switch readers: one conditional registry write.
  let previous = 0;
  const keepOld = opts.keepOldMs;
  await updateRecord(deps, opts.projection, (x) => {
    previous = x.live;
    const old = x.versions[String(x.live)]!;
    Object.assign(old, { state: 'kept', retireAt: new Date(Date.now() + keepOld).toISOString() });
    Object.assign(x.versions[String(n)]!, { state: 'live', switchedAt: new Date().toISOString(), cursor: null });
    x.live = n;
  });
  deps.log(`switched readers of ${opts.projection} to v${n}; v${previous} kept until ${new Date(Date.now() + keepOld).toISOString()}`);
  if (keepOld <= 0) await sweepRetirements(deps, opts.projection);
  return { version: n, previous, events, items, seconds: (Date.now() - started) / 1000, resumed };
}

/** Retires kept versions whose time has come: stop projecting into them, then drop their table and keys. */
export async function sweepRetirements(deps: ReplayDeps, name: string, now = Date.now()): Promise<number[]> {
  const rec = await deps.registry.get(name);
  const due = Object.values(rec.versions).filter((v) => v.state === 'kept' && v.retireAt && Date.parse(v.retireAt) <= now);
  for (const v of due) await retire(deps, name, v.n);
  return due.map((v) => v.n);
}

export async function retire(deps: ReplayDeps, name: string, n: number): Promise<void> {
  const rec = await updateRecord(deps, name, (x) => {
    const v = x.versions[String(n)];
    if (!v) throw new Error(`projection ${name} has no version ${n}`);
    if (x.live === n) throw new Error(`v${n} of ${name} is live; switch to another version first`);
    Object.assign(v, { state: 'retired', retiredAt: new Date().toISOString() });
  });
  const v = rec.versions[String(n)]!;
  // Processors stop writing to it within their cache TTL; only then is it dropped.
  await sleep(deps.settleMs ?? REGISTRY_SETTLE_MS);
  try {
    await deps.dynamo.send(new DeleteTableCommand({ TableName: v.itemsTable }));
  } catch (err) {
    if ((err as Error).name !== 'ResourceNotFoundException') throw err;
  }
  if (deps.redis) await deleteKeysByPrefix(deps.redis, `${v.redisPrefix}item:`);
  deps.log(`retired ${name} v${n}: dropped table ${v.itemsTable} and Redis keys ${v.redisPrefix}item:*`);
}

/** Rollback: make a kept version live again (the current one becomes kept, with the same deadline). */
export async function switchTo(deps: ReplayDeps, name: string, n?: number): Promise<{ from: number; to: number }> {
  let from = 0;
  let to = 0;
  await updateRecord(deps, name, (x) => {
    const kept = Object.values(x.versions).filter((v) => v.state === 'kept').sort((a, b) => b.n - a.n);
    const target = n === undefined ? kept[0] : x.versions[String(n)];
    if (!target || target.state !== 'kept') throw new Error(`no kept version${n === undefined ? '' : ` v${n}`} of ${name} to switch to (a retired version is gone; rebuild instead)`);
    from = x.live;
    to = target.n;
    const cur = x.versions[String(x.live)]!;
    Object.assign(cur, { state: 'kept', retireAt: target.retireAt ?? new Date().toISOString() });
    Object.assign(target, { state: 'live', switchedAt: new Date().toISOString() });
    delete target.retireAt;
    x.live = target.n;
  });
  return { from, to };
}

/** Abandons a building version (it is retired, its number is never reused). */
export async function abandon(deps: ReplayDeps, name: string): Promise<number | undefined> {
  const rec = await deps.registry.get(name);
  const b = Object.values(rec.versions).find((v) => v.state === 'building');
  if (!b) return undefined;
  await updateRecord(deps, name, (x) => Object.assign(x.versions[String(b.n)]!, { state: 'kept', retireAt: new Date().toISOString() }));
  await retire(deps, name, b.n);
  return b.n;
}

export type { ItemKey, ProjectionVersion };
