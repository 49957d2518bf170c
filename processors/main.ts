/**
 * Composition root of the processors when run as a process (locally, or as a container): the
 * same handler the Lambda runs, driven by the local runner. `processors/lambda.ts` is the AWS entry.
 */
import { type AckLog, retentionFrom } from '../core/ack-log';
import { createDocumentClient, createDynamo, createKinesis, createSqs } from '../core/aws';
import { loadConfig, runMain } from '../core/config';
import { HttpKinesisClient } from '../core/kinesis-http';
import { createLogger, type Logger } from '../core/log';
import { partitionKey } from '../core/keys';
import { type HotStore, RedisHotStore } from '../core/read-store';
import { RedisAckLog } from '../core/redis-ack-log';
import { closeRedis, createRedis } from '../core/redis';
import { closeOnSignals, type RunningService } from '../core/service';
import { type CheckpointStore, PgCheckpointStore } from './checkpoints';
import type { CommandStore } from './command-store';
import { composeConsumers, createDeadLetterQueue, createPool } from './composition';
import { ProcessorsConfig } from './config';
import { countDynamoCalls, ProcessorMetrics, serveMetrics } from './metrics';
import { migrate } from './migrate';
import type { DeadLetterQueue } from './parking';
import { ShardProgress, StreamRunner } from './runner';
import { trackDeadLetterQueue, trackProjections } from './operator-metrics';
import { defaultRecord, DynamoProjectionRegistry, projectionNames, registryTableName } from '../core/projections';

export { ProcessorsConfig } from './config';

export interface ProcessorsOverrides {
  acks?: AckLog;
  hot?: HotStore;
  log?: Logger;
  /** Fault injection in tests: wrap the real adapters (e.g. to throw once after the commit). */
  wrapStore?: (store: CommandStore) => CommandStore;
  wrapAcks?: (acks: AckLog) => AckLog;
  wrapCheckpoints?: (checkpoints: CheckpointStore) => CheckpointStore;
  dlq?: DeadLetterQueue;
}

export async function startProcessors(config: ProcessorsConfig, overrides: ProcessorsOverrides = {}): Promise<RunningService> {
  const log = overrides.log ?? createLogger(config.LOG_LEVEL, { service: 'processors' });
  await migrate(config.DATABASE_URL, (m) => log.debug(m));
  const pool = createPool(config.DATABASE_URL, 'process', config.PG_POOL_SIZE, log);
  const redis = overrides.acks && overrides.hot ? undefined : createRedis(config.REDIS_URL, config.REDIS_AUTH_TOKEN);
  const acks = overrides.acks ?? new RedisAckLog(redis!, config.REDIS_PREFIX, retentionFrom(config));
  const hot = overrides.hot ?? new RedisHotStore(redis!, config.REDIS_PREFIX);
  const dynamo = createDynamo({ region: config.AWS_REGION, endpoint: config.DYNAMODB_ENDPOINT });
  const kinesis = createKinesis({ region: config.AWS_REGION, endpoint: config.KINESIS_ENDPOINT });
  // The SDK client stays the source of credentials (and serves ListShards) when the polls go over plain HTTP.
  const streamReader = config.STREAM_READ_CLIENT === 'http'
    ? new HttpKinesisClient({
      endpoint: config.KINESIS_ENDPOINT ?? `https://kinesis.${config.AWS_REGION}.amazonaws.com`,
      region: config.AWS_REGION,
      credentials: kinesis.config.credentials,
      fallback: kinesis,
    })
    : kinesis;
  const sqs = config.DLQ_URL ? createSqs({ region: config.AWS_REGION, endpoint: config.SQS_ENDPOINT }) : undefined;
  const metrics = new ProcessorMetrics(true);
  countDynamoCalls(dynamo, metrics);
  const metricsServer = await serveMetrics(metrics, config.PROCESSORS_METRICS_PORT, log);
  const doc = createDocumentClient(dynamo);
  // For the operator console: DLQ depth and projection versions / rebuild progress, read at scrape time.
  if (sqs && config.DLQ_URL) trackDeadLetterQueue(metrics.registry, sqs, config.DLQ_URL, log);
  const projections = new DynamoProjectionRegistry(doc, registryTableName(config.ITEMS_TABLE), { itemsTable: config.ITEMS_TABLE, redisPrefix: config.REDIS_PREFIX });
  trackProjections(metrics.registry, async () => {
    const stored = await projections.list();
    return projectionNames().map((n) => stored.find((r) => r.name === n) ?? defaultRecord(n, { itemsTable: config.ITEMS_TABLE, redisPrefix: config.REDIS_PREFIX }));
  }, log);
  const consumers = composeConsumers({
    config, pool, doc, redis, hot, log, metrics,
    acks: overrides.wrapAcks ? overrides.wrapAcks(acks) : acks,
    dlq: overrides.dlq ?? createDeadLetterQueue(config, sqs, log),
    ...(overrides.wrapStore ? { wrapStore: overrides.wrapStore } : {}),
  });
  const runnerOptions = {
    kinesis: streamReader,
    stream: config.KINESIS_STREAM,
    region: config.AWS_REGION,
    log,
    batchSize: config.BATCH_SIZE,
    batchWindowMs: config.BATCH_WINDOW_MS,
    pollIntervalMs: config.POLL_INTERVAL_MS,
    idlePollMaxMs: config.IDLE_POLL_MAX_MS,
    retryDelayMs: config.RETRY_DELAY_MS,
    checkpointIntervalMs: config.CHECKPOINT_INTERVAL_MS,
    shardRefreshMs: config.SHARD_REFRESH_MS,
    lagLogMs: config.LAG_LOG_MS,
    metrics,
  };
  const checkpoints = new PgCheckpointStore(pool, config.PROCESSOR_CONSUMER, config.KINESIS_STREAM);
  const runCommit = config.CONSUMERS.includes('commit');
  // Both consumers here: the projection consumer reads a batch once the commit consumer has
  // decided it, instead of failing on its undecided records and reading them again.
  const follow = runCommit && config.CONSUMERS.includes('projection') && config.PROJECTION_FOLLOW_MAX_WAIT_MS > 0
    ? { progress: new ShardProgress(), maxWaitMs: config.PROJECTION_FOLLOW_MAX_WAIT_MS }
    : undefined;
  const runner = runCommit && new StreamRunner({
    ...runnerOptions,
    ...(follow ? { progress: follow.progress } : {}),
    consumer: config.PROCESSOR_CONSUMER,
    checkpoints: overrides.wrapCheckpoints ? overrides.wrapCheckpoints(checkpoints) : checkpoints,
    handler: consumers.commit,
  });
  const projectionRunner = config.CONSUMERS.includes('projection')
    ? new StreamRunner({
      ...runnerOptions,
      consumer: config.PROJECTION_CONSUMER,
      // Fewer, bigger batches than the commit consumer's: this consumer is not on the ack path.
      batchWindowMs: config.PROJECTION_BATCH_WINDOW_MS,
      ...(follow ? { follow } : {}),
      checkpoints: new PgCheckpointStore(pool, config.PROJECTION_CONSUMER, config.KINESIS_STREAM),
      handler: consumers.project,
    })
    : undefined;
  if (runner) await runner.start();
  await projectionRunner?.start();
  // Idle shards are polled about once a second. A `queued` ack (the gateway's PutRecords was
  // accepted) wakes the commit consumer at once. The projection consumer with a batching window
  // is woken by a final ack instead (the commit consumer decided the record): woken by `queued`
  // it would mostly read records not decided yet and hand them back for a retry; without a
  // window it is woken with the commit consumer. A lost wake (pub/sub gap) only delays records
  // up to IDLE_POLL_MAX_MS, and a gap wakes both.
  const wakeAll = () => {
    if (runner) runner.wake();
    projectionRunner?.wake();
  };
  // A queued write wakes the commit consumer's one shard that holds it (its partition key), so the
  // other shards are not polled for nothing. The projection consumer reads a window of records per
  // poll, so its wake needs no key (one less decode per ack).
  const projectionWakeStage = config.PROJECTION_BATCH_WINDOW_MS > 0 ? 'final' : 'queued';
  const onStage = (ackStage: string, key: () => string) => {
    const stage = ackStage === 'queued' ? 'queued' : 'final';
    if (stage === 'queued' && runner) runner.wake(key());
    if (stage === projectionWakeStage) projectionRunner?.wake();
  };
  // The Redis ack log reads the stage without decoding each ack (two per write), and the item's key only for a wake.
  const unwatch = config.IDLE_POLL_MAX_MS > config.POLL_INTERVAL_MS
    ? await (acks.watchStages
      ? acks.watchStages(onStage, wakeAll)
      : acks.subscribe((route, ack) => onStage(ack.stage, () => partitionKey(route.tenant, ack.collection, ack.id)), wakeAll))
    : undefined;
  log.info('processors started', { stream: config.KINESIS_STREAM, consumers: config.CONSUMERS });

  return {
    name: 'processors',
    ...(metricsServer.url ? { url: metricsServer.url } : {}),
    async close() {
      await unwatch?.();
      await Promise.all([runner && runner.stop(), projectionRunner?.stop()]);
      await metricsServer.close();
      sqs?.destroy();
      if (!overrides.acks) await acks.close();
      if (redis) await closeRedis(redis);
      await pool.end();
      if (streamReader !== kinesis) streamReader.destroy();
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
