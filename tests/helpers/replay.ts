/** Replay wiring for tests: the same adapters the CLI builds, on a test stack's resources. */
import { Pool } from 'pg';
import { DynamoProjectionRegistry, registryTableName } from '../../core/projections';
import type { ReplayDeps } from '../../processors/replay/rebuild';
import type { Stack } from './stack';

export function replayDeps(stack: Stack, extra: Partial<ReplayDeps> = {}): ReplayDeps & { close(): Promise<void> } {
  const pool = new Pool({ connectionString: stack.databaseUrl, max: 4 });
  const itemsTable = stack.env.ITEMS_TABLE!;
  return {
    pool,
    dynamo: stack.dynamo,
    doc: stack.doc,
    redis: stack.redis,
    registry: new DynamoProjectionRegistry(stack.doc, registryTableName(itemsTable), { itemsTable, redisPrefix: stack.redisPrefix }),
    itemsTable,
    requestsTable: stack.env.REQUESTS_TABLE!,
    redisPrefix: stack.redisPrefix,
    log: () => undefined,
    ...extra,
    close: () => pool.end(),
  };
}

/** Appends `events` events over `items` items straight into the log (puts, patches, some deletes). */
export async function seedLog(pool: Pool, opts: { tenant: string; collection: string; items: number; eventsPerItem: number }): Promise<number> {
  const { tenant, collection, items, eventsPerItem } = opts;
  // Version 1 is a put; later versions patch, every 7th item ends deleted then re-put patterns are not needed here.
  await pool.query(
    `INSERT INTO events (tenant, collection, item_id, version, type, data, request_id, principal, recorded_at)
     SELECT $1, $2, 'i' || i, v,
            CASE WHEN v = 1 THEN 'ItemPut' WHEN v = $4 AND i % 7 = 0 THEN 'ItemDeleted' ELSE 'ItemPatched' END,
            CASE WHEN v = 1 THEN jsonb_build_object('title', 'item ' || i, 'n', 0, 'tags', jsonb_build_object('a', 1))
                 WHEN v = $4 AND i % 7 = 0 THEN NULL
                 ELSE jsonb_build_object('n', v, 'k' || (v % 3), v) END,
            'seed-' || $1 || '-' || $2 || '-' || i || '-' || v, 'seeder', now() + (v || ' ms')::interval
       FROM generate_series(1, $3::int) AS i, generate_series(1, $4::int) AS v
      ORDER BY v, i`,
    [tenant, collection, items, eventsPerItem],
  );
  return items * eventsPerItem;
}
