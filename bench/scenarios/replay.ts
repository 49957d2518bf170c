/**
 * Replay benchmark: events/s rebuilt from the event log (1 M events; 100 k with --quick).
 *
 * Measured in one run, on the same seeded log:
 *   - baseline: reading the log in pages in item order, nothing else (the ceiling of any rebuild);
 *   - fold only: read + fold + projection, writes to a null sink (the rebuild minus the store);
 *   - fold + Redis: final states written to a Redis key space with the guarded hot-copy script;
 *   - full rebuild: `rebuild()` as `npm run replay -- rebuild` runs it, into the DynamoDB
 *     emulator (dynalite), with registry checkpoints per page and the switch.
 * Standalone: `npx tsx bench/scenarios/replay.ts [--quick]`.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { Client, Pool } from 'pg';
import { createDocumentClient, createDynamo, createKinesis } from '../../core/aws';
import { DynamoProjectionRegistry, registryTableName } from '../../core/projections';
import { RedisHotStore } from '../../core/read-store';
import { itemsProjection } from '../../core/projections';
import { logHead } from '../../processors/replay/fold';
import { foldInto, rebuild } from '../../processors/replay/rebuild';
import { provision, startEmulators } from '../../scripts/local-stack';
import type { BenchContext, Figure, ScenarioResult, Series } from '../types';
import { deleteKeysByPrefix } from '../../core/redis';

const BASE_DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

async function admin(sql: string): Promise<void> {
  const c = new Client({ connectionString: BASE_DATABASE_URL });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/** Seeds `items` × `perItem` events with multi-row INSERT … SELECT, in chunks of items. */
async function seed(pool: Pool, ctx: BenchContext, items: number, perItem: number): Promise<void> {
  const chunk = Math.max(1, Math.floor(100_000 / perItem));
  for (let from = 1; from <= items; from += chunk) {
    const to = Math.min(items, from + chunk - 1);
    await pool.query(
      `INSERT INTO events (tenant, collection, item_id, version, type, data, request_id, principal, recorded_at)
       SELECT 't' || (i % 4), 'c' || (i % 10), 'item-' || i, v,
              CASE WHEN v = 1 THEN 'ItemPut' WHEN v = $3 AND i % 11 = 0 THEN 'ItemDeleted' ELSE 'ItemPatched' END,
              CASE WHEN v = 1 THEN jsonb_build_object('title', 'item ' || i, 'count', 0, 'tags', jsonb_build_array('a', 'b'), 'owner', jsonb_build_object('name', 'x', 'id', i))
                   WHEN v = $3 AND i % 11 = 0 THEN NULL
                   ELSE jsonb_build_object('count', v, 'f' || (v % 5), 'value ' || v) END,
              'r-' || i || '-' || v, 'bench', now()
         FROM generate_series($1::int, $2::int) AS i, generate_series(1, $3::int) AS v
        ORDER BY v, i`,
      [from, to, perItem],
    );
    ctx.progress(to * perItem, items * perItem, 'seeding the log');
  }
  await pool.query('ANALYZE events');
}

export async function run(ctx: BenchContext): Promise<ScenarioResult> {
  const total = ctx.quick ? 100_000 : 1_000_000;
  const perItem = 20;
  const items = total / perItem;
  const name = `bench_replay_${randomBytes(3).toString('hex')}`;
  await admin(`CREATE DATABASE "${name}"`);
  const url = new URL(BASE_DATABASE_URL);
  url.pathname = `/${name}`;
  const databaseUrl = url.toString();
  const emulators = await startEmulators();
  const dynamo = createDynamo({ region: 'us-east-1', endpoint: emulators.dynamoEndpoint });
  const kinesis = createKinesis({ region: 'us-east-1', endpoint: emulators.kinesisEndpoint });
  const doc = createDocumentClient(dynamo);
  const redis = new Redis(REDIS_URL, { enableAutoPipelining: true, maxRetriesPerRequest: 2 });
  const prefix = `bench:${name}:`;
  const pool = new Pool({ connectionString: databaseUrl, max: 4 });
  const figures: Figure[] = [];
  const series: Series[] = [];
  const notes: string[] = [];
  try {
    await provision({ kinesis, dynamo, stream: `${name}-s`, shardCount: 1, itemsTable: `${name}-items`, requestsTable: `${name}-requests`, databaseUrl });
    ctx.log(`seeding ${total.toLocaleString('en-US')} events over ${items.toLocaleString('en-US')} items`);
    let t = Date.now();
    await seed(pool, ctx, items, perItem);
    figures.push({ name: 'seed (INSERT … SELECT)', value: Math.round(total / ((Date.now() - t) / 1000)), unit: 'events/s' });
    const head = await logHead(pool);

    // Baseline: page through the log in item order, no fold, no writes.
    t = Date.now();
    let key: unknown[] | undefined;
    let read = 0;
    for (;;) {
      const r = await pool.query<{ tenant: string; collection: string; item_id: string; version: number }>(
        `SELECT tenant, collection, item_id, version, type, data, recorded_at FROM events WHERE position <= $1
          ${key ? 'AND (tenant, collection, item_id, version) > ($3, $4, $5, $6)' : ''} ORDER BY tenant, collection, item_id, version LIMIT $2`,
        key ? [head, 5000, ...key] : [head, 5000],
      );
      read += r.rows.length;
      ctx.progress(read, total, 'baseline: log scan');
      if (r.rows.length < 5000) break;
      const l = r.rows[r.rows.length - 1]!;
      key = [l.tenant, l.collection, l.item_id, l.version];
    }
    const scanRate = total / ((Date.now() - t) / 1000);

    const timed = async (label: string, store: Parameters<typeof foldInto>[1]['store'], concurrency: number) => {
      const start = Date.now();
      let done = 0;
      const points: Array<[number, number]> = [];
      let lastT = start;
      let lastDone = 0;
      await foldInto(pool, {
        head, pageSize: 5000, concurrency, store, projection: itemsProjection,
        onPage: (p) => {
          done += p.events;
          ctx.progress(done, total, label);
          const now = Date.now();
          if (now - lastT >= 500) {
            points.push([(now - start) / 1000, Math.round((done - lastDone) / ((now - lastT) / 1000))]);
            lastT = now;
            lastDone = done;
          }
        },
      });
      series.push({ name: label, unit: 'events/s', points });
      return total / ((Date.now() - start) / 1000);
    };

    const nullRate = await timed('fold only (null sink)', { putItem: async () => true }, 64);
    const hot = new RedisHotStore(redis, `${prefix}v2:`);
    const redisRate = await timed('fold + Redis writes', hot, 256);

    // Full rebuild as the CLI runs it, into the DynamoDB emulator.
    const registry = new DynamoProjectionRegistry(doc, registryTableName(`${name}-items`), { itemsTable: `${name}-items`, redisPrefix: prefix });
    t = Date.now();
    const res = await rebuild(
      { pool, dynamo, doc, redis, registry, itemsTable: `${name}-items`, requestsTable: `${name}-requests`, redisPrefix: prefix, log: ctx.log, settleMs: 0 },
      { projection: 'items', keepOldMs: 3_600_000, concurrency: 32, progress: { update: (d, n) => ctx.progress(d, n, 'rebuild into dynalite'), finish: () => undefined } },
    );
    const fullRate = res.events / ((Date.now() - t) / 1000);

    figures.push(
      { name: 'rebuild from the log, DynamoDB emulator (npm run replay -- rebuild)', value: Math.round(fullRate), unit: 'events/s' },
      { name: 'rebuild from the log, Redis key space writes', value: Math.round(redisRate), unit: 'events/s' },
      { name: 'rebuild from the log, fold only (null sink)', value: Math.round(nullRate), unit: 'events/s' },
      { name: 'items written per rebuild', value: items, unit: 'items' },
      { name: 'events', value: total, unit: 'events' },
    );
    notes.push(
      `${total.toLocaleString('en-US')} events over ${items.toLocaleString('en-US')} items (${perItem} events per item: 1 put, patches, every 11th item deleted); pages of 5,000 events in item order; final states only are written.`,
      `dynalite bounds the full rebuild: ${Math.round(items / ((Date.now() - t) / 1000)).toLocaleString('en-US')} conditional puts/s at concurrency 32 (a LevelDB-backed emulator in one Node process on the same 2 cores). Real DynamoDB on-demand takes thousands of writes/s per partition, spread over tenant#collection partitions.`,
      `The fold path without the emulator is bounded by the log read (pg row parsing of jsonb) — fold only reaches ${Math.round((100 * nullRate) / scanRate)}% of the bare scan.`,
      'Shared 2-core machine, other engineers running: numbers are noisy.',
    );
    return {
      scenario: 'replay',
      figures,
      baseline: { name: 'log scan in item order, no fold, no writes', figures: [{ name: 'log scan', value: Math.round(scanRate), unit: 'events/s' }] },
      ratios: [
        { name: 'fold only / log scan', value: Number((nullRate / scanRate).toFixed(2)) },
        { name: 'fold + Redis / log scan', value: Number((redisRate / scanRate).toFixed(2)) },
        { name: 'rebuild into dynalite / log scan', value: Number((fullRate / scanRate).toFixed(3)) },
      ],
      series,
      notes,
    };
  } finally {
    await pool.end().catch(() => undefined);
    await emulators.close();
    dynamo.destroy();
    kinesis.destroy();
    await deleteKeysByPrefix(redis, prefix);
    redis.disconnect();
    await admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  }
}

if (require.main === module) {
  const quick = process.argv.includes('--quick');
  const tty = process.stderr.isTTY;
  let last = 0;
  run({
    quick,
    progress(done, total, label) {
      const now = Date.now();
      if (now - last < (tty ? 200 : 5000) && done < total) return;
      last = now;
      const line = `${label ?? ''} ${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')} (${((100 * done) / total).toFixed(0)}%)`;
      process.stderr.write(tty ? `\r${line}\x1b[K` : `${line}\n`);
    },
    log: (l) => process.stderr.write(`\n${l}\n`),
  }).then((r) => {
    process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    process.exit(0);
  }, (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
