/**
 * The processors' parts wired once, for every runtime: the local runner (processors/main.ts),
 * the Lambda entry (processors/lambda.ts) and the operator CLIs (scripts/dlq.ts, processors/replay/cli.ts). Each runtime
 * creates its outside clients (they differ: endpoints, secrets, overrides) and hands them here.
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { Redis } from 'ioredis';
import { Pool } from 'pg';
import type { AckLog } from '../core/ack-log';
import type { Logger } from '../core/log';
import { fanOutStores } from '../core/projections';
import { type DurableStore, DynamoDurableStore, DynamoProjectionWatermark, DynamoRequestBatchWriter, type HotStore, RedisHotStore } from '../core/read-store';
import { RedisAckLog } from '../core/redis-ack-log';
import { createKinesisHandler, createPublisher, type KinesisHandler } from './commit-consumer';
import { type CommandStore, PgCommandStore } from './command-store';
import type { ProcessorsSharedConfig } from './config';
import type { ProcessorMetrics } from './metrics';
import { type DeadLetterQueue, LogDeadLetterQueue, ParkingLot, type Publish, SqsDeadLetterQueue } from './parking';
import { createProjectionHandler } from './projection-consumer';
import { consumerProjectors, Projector } from './projection-writer';

/**
 * PG_POOL_SIZE when it is not set, per runtime — deliberately different, each the value that
 * runtime has always had:
 * - process (local runner, container): 10 — one process runs both consumers over every shard,
 *   each shard's batch holding a connection for its transaction while lookups and checkpoints
 *   need their own;
 * - lambda: 2 — one invocation per container at a time (one batch: its transaction, plus a
 *   lookup or an attempts count), and many containers share RDS Proxy's connection budget;
 * - cli: 2 — an operator command works one item at a time;
 * - replay: 4 — a rebuild reads the log while its writers and the registry checkpoints run.
 */
export const PG_POOL_DEFAULTS = { process: 10, lambda: 2, cli: 2, replay: 4 } as const;

export function createPool(connectionString: string, runtime: keyof typeof PG_POOL_DEFAULTS, configured: number | undefined, log: Logger): Pool {
  const pool = new Pool({ connectionString, max: configured ?? PG_POOL_DEFAULTS[runtime] });
  // An idle connection dropped by the server (restart, failover) must not crash the process; the pool reconnects.
  pool.on('error', (err) => log.warn('idle PostgreSQL connection lost', { err }));
  return pool;
}

/** The SQS dead-letter queue when DLQ_URL is set, else a log line per parked record. */
export function createDeadLetterQueue(config: Pick<ProcessorsSharedConfig, 'DLQ_URL'>, sqs: SQSClient | undefined, log: Logger): DeadLetterQueue {
  return sqs && config.DLQ_URL ? new SqsDeadLetterQueue(sqs, config.DLQ_URL) : new LogDeadLetterQueue(log);
}

export interface ConsumerParts {
  config: ProcessorsSharedConfig;
  pool: Pool;
  doc: DynamoDBDocumentClient;
  /** Redis for the version key spaces of the projection (without it, in-process hot copies). */
  redis: Redis | undefined;
  hot: HotStore;
  acks: AckLog;
  dlq: DeadLetterQueue;
  log: Logger;
  metrics?: ProcessorMetrics;
  /** Fault injection in tests: wraps the store the commit consumer decides with. */
  wrapStore?: (store: CommandStore) => CommandStore;
}

/** The two consumers (commit, projection) as Lambda-shaped handlers over one command store and one read model. */
export function composeConsumers(p: ConsumerParts): { commit: KinesisHandler; project: KinesisHandler; store: PgCommandStore } {
  const { config, doc, log, metrics } = p;
  const store = new PgCommandStore(p.pool);
  const durable = new DynamoDurableStore(doc, config.ITEMS_TABLE, config.REQUESTS_TABLE);
  // Item writes fan out to every deployed version of the projection (core/projections/fan-out.ts);
  // with PROJECTION_ITEM_WRITES=batched the projection consumer writes them read-then-batch per
  // version (its single-writer rule, and why a rebuild or redrive beside it stays correct:
  // processors/projection-writer.ts); every other writer stays on conditional puts.
  const versioned = fanOutStores({
    doc, redis: p.redis, itemsTable: config.ITEMS_TABLE, requestsTable: config.REQUESTS_TABLE, redisPrefix: config.REDIS_PREFIX,
    base: { durable, hot: p.hot },
  });
  const projectors = consumerProjectors(versioned, new DynamoRequestBatchWriter(doc, config.REQUESTS_TABLE), {
    budgetMs: config.DURABLE_INLINE_BUDGET_MS, maxRate: config.DURABLE_INLINE_MAX_RATE,
  }, config.PROJECTION_ITEM_WRITES);
  return {
    store,
    // Commit consumer: commit, project on a best-effort fast path (Redis; DynamoDB within a budget), ack.
    commit: createKinesisHandler({
      store: p.wrapStore ? p.wrapStore(store) : store,
      projector: projectors.commit,
      projectionBestEffort: true,
      acks: p.acks,
      log,
      // Attempts are counted in PostgreSQL, so they survive restarts and Lambda invocations.
      parking: new ParkingLot(store, p.dlq, config.MAX_ATTEMPTS, log),
      ...(metrics ? { metrics } : {}),
    }),
    // Projection consumer: the same records, its own checkpoints; writes what PostgreSQL decided
    // into DynamoDB and Redis, retrying until it succeeds, without ever holding back a commit.
    // After each projected run it advances the watermark listings' `consistentWith` waits on.
    project: createProjectionHandler({
      lookup: store, projector: projectors.projection, log, ...(metrics ? { metrics } : {}),
      watermark: new DynamoProjectionWatermark(doc, config.REQUESTS_TABLE),
    }),
  };
}

/** The parking lot over a PostgreSQL pool (the operator CLI's; the commit consumer gets its own in composeConsumers). */
export function createParkingLot(pool: Pool, config: Pick<ProcessorsSharedConfig, 'MAX_ATTEMPTS'>, dlq: DeadLetterQueue, log: Logger): ParkingLot {
  return new ParkingLot(new PgCommandStore(pool), dlq, config.MAX_ATTEMPTS, log);
}

/** How a redrive or discard publishes what it decided: projected into the base version's stores (both copies), then acked. */
export function redrivePublisher(p: { config: ProcessorsSharedConfig; doc: DynamoDBDocumentClient; hot: HotStore; acks: AckLog; log: Logger }): Publish {
  const durable: DurableStore = new DynamoDurableStore(p.doc, p.config.ITEMS_TABLE, p.config.REQUESTS_TABLE);
  return createPublisher({
    projector: new Projector(durable, p.hot, new DynamoRequestBatchWriter(p.doc, p.config.REQUESTS_TABLE)),
    acks: p.acks,
    log: p.log,
  });
}

/**
 * How `npm run dlq -- redrive` processes an on-failure batch letter's range (processors/on-failure.ts):
 * the commit handler, projecting both copies in line (not the fast path: no projection consumer
 * follows a redrive), parking a record that keeps failing.
 */
export function redriveHandler(p: { config: ProcessorsSharedConfig; pool: Pool; doc: DynamoDBDocumentClient; hot: HotStore; acks: AckLog; parking: ParkingLot; log: Logger }): KinesisHandler {
  const durable: DurableStore = new DynamoDurableStore(p.doc, p.config.ITEMS_TABLE, p.config.REQUESTS_TABLE);
  return createKinesisHandler({
    store: new PgCommandStore(p.pool),
    projector: new Projector(durable, p.hot, new DynamoRequestBatchWriter(p.doc, p.config.REQUESTS_TABLE)),
    acks: p.acks,
    log: p.log,
    parking: p.parking,
  });
}

/**
 * The replay tool's reprocess handler: the commit consumer's path (decide, commit, project, ack) over
 * records read again from the stream, projecting into every deployed version of the projection.
 * No parking: a record that fails stops the reprocess, for the operator to look at.
 */
export function reprocessHandler(p: {
  config: Pick<ProcessorsSharedConfig, 'ITEMS_TABLE' | 'REQUESTS_TABLE' | 'REDIS_PREFIX'>;
  pool: Pool; doc: DynamoDBDocumentClient; redis: Redis; log: Logger;
}): KinesisHandler {
  const { config, doc, redis } = p;
  const base = { durable: new DynamoDurableStore(doc, config.ITEMS_TABLE, config.REQUESTS_TABLE), hot: new RedisHotStore(redis, config.REDIS_PREFIX) };
  const versioned = fanOutStores({ doc, redis, itemsTable: config.ITEMS_TABLE, requestsTable: config.REQUESTS_TABLE, redisPrefix: config.REDIS_PREFIX, base });
  return createKinesisHandler({ store: new PgCommandStore(p.pool), projector: new Projector(versioned.durable, versioned.hot), acks: new RedisAckLog(redis, config.REDIS_PREFIX), log: p.log });
}
