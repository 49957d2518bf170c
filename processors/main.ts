/**
 * Composition root of the processors when run as a process (locally, or as a container): the
 * same handler the Lambda runs, driven by the local runner. `processors/lambda.ts` is the AWS entry.
 */
import { Pool } from 'pg';
import { z } from 'zod';
import { AckRetentionEnv, retentionFrom, type AckLog } from '../core/ack-log';
import { createDocumentClient, createDynamo, createKinesis, createSqs } from '../core/aws';
import { AwsEnv, LogEnv, loadConfig, port, positiveInt, RedisEnv, runMain, StreamEnv, TablesEnv } from '../core/config';
import { createLogger, type Logger } from '../core/log';
import { RedisAckLog } from '../core/redis-ack-log';
import { closeRedis, createRedis } from '../core/redis';
import { closeOnSignals, type RunningService } from '../core/service';
import { DynamoDurableStore, type HotStore, RedisHotStore } from '../read-model/stores';
import { type CheckpointStore, PgCheckpointStore } from './checkpoints';
import { type EventStore, PgEventStore } from './event-store';
import { createKinesisHandler } from './handler';
import { createProjectionHandler } from './projection-handler';
import { ProcessorMetrics, serveMetrics } from './metrics';
import { migrate } from './migrate';
import { type DeadLetterQueue, LogDeadLetterQueue, ParkingLot, SqsDeadLetterQueue } from './parking';
import { consumerProjectors, DynamoRequestBatchWriter } from './projector';
import { fanOutStores } from './replay/fanout';
import { StreamRunner } from './runner';
import { DynamoProjectionWatermark } from '../read-model/watermark';
import { trackDeadLetterQueue, trackProjections } from './operator-metrics';
import { projectionNames } from './replay/catalog';
import { defaultRecord, DynamoProjectionRegistry, registryTableName } from '../read-model/registry';

export const ProcessorsConfig = z.object({
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL'),
  PROCESSOR_CONSUMER: z.string().default('processors'),
  /** The projection consumer's checkpoint name (processors/projection-handler.ts). */
  PROJECTION_CONSUMER: z.string().default('projections'),
  /** Under light traffic the commit consumer writes the durable copy before the ack, waiting at most this long (0: never). */
  DURABLE_INLINE_BUDGET_MS: z.coerce.number().int().min(0).max(5000).default(500),
  /** Above this many records/s the commit consumer leaves the durable copy to the projection consumer. */
  DURABLE_INLINE_MAX_RATE: z.coerce.number().int().min(0).default(200),
  /** Which consumers this process runs: both (default), or one each in separate processes (as the two Lambdas in AWS). */
  CONSUMERS: z.enum(['commit,projection', 'commit', 'projection']).default('commit,projection'),
  BATCH_SIZE: positiveInt(500),
  /** Like MaximumBatchingWindowInSeconds: wait up to this long to fill a batch (0: do not wait). */
  BATCH_WINDOW_MS: z.coerce.number().int().min(0).default(0),
  POLL_INTERVAL_MS: positiveInt(20),
  RETRY_DELAY_MS: positiveInt(200),
  SHARD_REFRESH_MS: positiveInt(10_000),
  PG_POOL_SIZE: positiveInt(10),
  /** Failed attempts (for a reason in the record itself) before a record is parked. */
  MAX_ATTEMPTS: positiveInt(5),
  DLQ_URL: z.string().min(1).optional(),
  PROCESSORS_METRICS_PORT: port(3003),
  LAG_LOG_MS: positiveInt(10_000),
}).merge(AwsEnv).merge(AckRetentionEnv).merge(RedisEnv).merge(StreamEnv).merge(TablesEnv).merge(LogEnv);
export type ProcessorsConfig = z.infer<typeof ProcessorsConfig>;

export interface ProcessorsOverrides {
  acks?: AckLog;
  hot?: HotStore;
  log?: Logger;
  /** Fault injection in tests: wrap the real adapters (e.g. to throw once after the commit). */
  wrapStore?: (store: EventStore) => EventStore;
  wrapAcks?: (acks: AckLog) => AckLog;
  wrapCheckpoints?: (checkpoints: CheckpointStore) => CheckpointStore;
  dlq?: DeadLetterQueue;
}

export async function startProcessors(config: ProcessorsConfig, overrides: ProcessorsOverrides = {}): Promise<RunningService> {
  const log = overrides.log ?? createLogger(config.LOG_LEVEL, { service: 'processors' });
  await migrate(config.DATABASE_URL, (m) => log.debug(m));
  const pool = new Pool({ connectionString: config.DATABASE_URL, max: config.PG_POOL_SIZE });
  // An idle connection dropped by the server (restart, failover) must not crash the process; the pool reconnects.
  pool.on('error', (err) => log.warn('idle PostgreSQL connection lost', { err }));
  const redis = overrides.acks && overrides.hot ? undefined : createRedis(config.REDIS_URL, config.REDIS_AUTH_TOKEN);
  const acks = overrides.acks ?? new RedisAckLog(redis!, config.REDIS_PREFIX, retentionFrom(config));
  const hot = overrides.hot ?? new RedisHotStore(redis!, config.REDIS_PREFIX);
  const dynamo = createDynamo({ region: config.AWS_REGION, endpoint: config.DYNAMODB_ENDPOINT });
  const durable = new DynamoDurableStore(createDocumentClient(dynamo), config.ITEMS_TABLE, config.REQUESTS_TABLE);
  const kinesis = createKinesis({ region: config.AWS_REGION, endpoint: config.KINESIS_ENDPOINT });
  const sqs = config.DLQ_URL ? createSqs({ region: config.AWS_REGION, endpoint: config.SQS_ENDPOINT }) : undefined;
  const dlq = overrides.dlq ?? (sqs ? new SqsDeadLetterQueue(sqs, config.DLQ_URL!) : new LogDeadLetterQueue(log));
  const pgStore = new PgEventStore(pool);
  const metrics = new ProcessorMetrics(true);
  const metricsServer = await serveMetrics(metrics, config.PROCESSORS_METRICS_PORT, log);
  const doc = createDocumentClient(dynamo);
  // For the operator console: DLQ depth and projection versions / rebuild progress, read at scrape time.
  if (sqs && config.DLQ_URL) trackDeadLetterQueue(metrics.registry, sqs, config.DLQ_URL, log);
  const projections = new DynamoProjectionRegistry(doc, registryTableName(config.ITEMS_TABLE), { itemsTable: config.ITEMS_TABLE, redisPrefix: config.REDIS_PREFIX });
  trackProjections(metrics.registry, async () => {
    const stored = await projections.list();
    return projectionNames().map((n) => stored.find((r) => r.name === n) ?? defaultRecord(n, { itemsTable: config.ITEMS_TABLE, redisPrefix: config.REDIS_PREFIX }));
  }, log);

  // Item writes fan out to every deployed version of the projection (processors/replay/fanout.ts),
  // always through conditional puts: a rebuild writes the same tables, so read-then-batch is not safe.
  const versioned = fanOutStores({ doc, redis, itemsTable: config.ITEMS_TABLE, requestsTable: config.REQUESTS_TABLE, redisPrefix: config.REDIS_PREFIX, base: { durable, hot } });
  const store = overrides.wrapStore ? overrides.wrapStore(pgStore) : pgStore;
  const projectors = consumerProjectors(versioned, new DynamoRequestBatchWriter(doc, config.REQUESTS_TABLE), {
    budgetMs: config.DURABLE_INLINE_BUDGET_MS, maxRate: config.DURABLE_INLINE_MAX_RATE,
  });
  // Commit consumer: commit, project on a best-effort fast path (Redis; DynamoDB within a budget), ack.
  const handler = createKinesisHandler({
    store,
    projector: projectors.commit,
    projectionBestEffort: true,
    acks: overrides.wrapAcks ? overrides.wrapAcks(acks) : acks,
    log,
    parking: new ParkingLot(pgStore, dlq, config.MAX_ATTEMPTS, log),
    metrics,
  });
  const runnerOptions = {
    kinesis,
    stream: config.KINESIS_STREAM,
    region: config.AWS_REGION,
    log,
    batchSize: config.BATCH_SIZE,
    batchWindowMs: config.BATCH_WINDOW_MS,
    pollIntervalMs: config.POLL_INTERVAL_MS,
    retryDelayMs: config.RETRY_DELAY_MS,
    shardRefreshMs: config.SHARD_REFRESH_MS,
    lagLogMs: config.LAG_LOG_MS,
    metrics,
  };
  const checkpoints = new PgCheckpointStore(pool, config.PROCESSOR_CONSUMER, config.KINESIS_STREAM);
  const runCommit = config.CONSUMERS.includes('commit');
  const runner = runCommit && new StreamRunner({
    ...runnerOptions,
    consumer: config.PROCESSOR_CONSUMER,
    checkpoints: overrides.wrapCheckpoints ? overrides.wrapCheckpoints(checkpoints) : checkpoints,
    handler,
  });
  // Projection consumer: the same records, its own checkpoints; writes what PostgreSQL decided
  // into DynamoDB and Redis, retrying until it succeeds, without ever holding back a commit.
  const projectionRunner = config.CONSUMERS.includes('projection')
    ? new StreamRunner({
      ...runnerOptions,
      consumer: config.PROJECTION_CONSUMER,
      checkpoints: new PgCheckpointStore(pool, config.PROJECTION_CONSUMER, config.KINESIS_STREAM),
      handler: createProjectionHandler({
        lookup: pgStore,
        projector: projectors.projection,
        log,
        metrics,
        watermark: new DynamoProjectionWatermark(doc, config.REQUESTS_TABLE),
      }),
    })
    : undefined;
  if (runner) await runner.start();
  await projectionRunner?.start();
  log.info('processors started', { stream: config.KINESIS_STREAM, consumers: config.CONSUMERS });

  return {
    name: 'processors',
    ...(metricsServer.url ? { url: metricsServer.url } : {}),
    async close() {
      await Promise.all([runner && runner.stop(), projectionRunner?.stop()]);
      await metricsServer.close();
      sqs?.destroy();
      if (!overrides.acks) await acks.close();
      if (redis) await closeRedis(redis);
      await pool.end();
      kinesis.destroy();
      dynamo.destroy();
    },
  };
}

if (require.main === module) {
  runMain(async () => {
    const config = loadConfig(ProcessorsConfig);
    const service = await startProcessors(config);
    closeOnSignals([service]);
  });
}
