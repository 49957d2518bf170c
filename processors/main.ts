/**
 * Composition root of the processors when run as a process (locally, or as a container): the
 * same handler the Lambda runs, driven by the local runner. `processors/lambda.ts` is the AWS entry.
 */
import { Pool } from 'pg';
import { z } from 'zod';
import type { AckLog } from '../core/ack-log';
import { createDocumentClient, createDynamo, createKinesis } from '../core/aws';
import { AwsEnv, LogEnv, loadConfig, positiveInt, RedisEnv, runMain, StreamEnv, TablesEnv } from '../core/config';
import { createLogger, type Logger } from '../core/log';
import { RedisAckLog } from '../core/redis-ack-log';
import { closeRedis, createRedis } from '../core/redis';
import { closeOnSignals, type RunningService } from '../core/service';
import { DynamoDurableStore, type HotStore, RedisHotStore } from '../read-model/stores';
import { PgCheckpointStore } from './checkpoints';
import { PgEventStore } from './event-store';
import { createKinesisHandler } from './handler';
import { migrate } from './migrate';
import { Projector } from './projector';
import { StreamRunner } from './runner';
import { fanOutStores } from './replay/fanout'; // [replay]

export const ProcessorsConfig = z.object({
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL'),
  PROCESSOR_CONSUMER: z.string().default('processors'),
  BATCH_SIZE: positiveInt(100),
  POLL_INTERVAL_MS: positiveInt(20),
  RETRY_DELAY_MS: positiveInt(200),
  SHARD_REFRESH_MS: positiveInt(10_000),
  PG_POOL_SIZE: positiveInt(10),
}).merge(AwsEnv).merge(RedisEnv).merge(StreamEnv).merge(TablesEnv).merge(LogEnv);
export type ProcessorsConfig = z.infer<typeof ProcessorsConfig>;

export interface ProcessorsOverrides {
  acks?: AckLog;
  hot?: HotStore;
  log?: Logger;
}

export async function startProcessors(config: ProcessorsConfig, overrides: ProcessorsOverrides = {}): Promise<RunningService> {
  const log = overrides.log ?? createLogger(config.LOG_LEVEL, { service: 'processors' });
  await migrate(config.DATABASE_URL, (m) => log.debug(m));
  const pool = new Pool({ connectionString: config.DATABASE_URL, max: config.PG_POOL_SIZE });
  // An idle connection dropped by the server (restart, failover) must not crash the process; the pool reconnects.
  pool.on('error', (err) => log.warn('idle PostgreSQL connection lost', { err }));
  const redis = overrides.acks && overrides.hot ? undefined : createRedis(config.REDIS_URL, config.REDIS_AUTH_TOKEN);
  const acks = overrides.acks ?? new RedisAckLog(redis!, config.REDIS_PREFIX);
  const hot = overrides.hot ?? new RedisHotStore(redis!, config.REDIS_PREFIX);
  const dynamo = createDynamo({ region: config.AWS_REGION, endpoint: config.DYNAMODB_ENDPOINT });
  const durable = new DynamoDurableStore(createDocumentClient(dynamo), config.ITEMS_TABLE, config.REQUESTS_TABLE);
  const kinesis = createKinesis({ region: config.AWS_REGION, endpoint: config.KINESIS_ENDPOINT });

  // [replay] item writes fan out to every deployed version of the projection (processors/replay/fanout.ts).
  const versioned = fanOutStores({ doc: createDocumentClient(dynamo), redis, itemsTable: config.ITEMS_TABLE, requestsTable: config.REQUESTS_TABLE, redisPrefix: config.REDIS_PREFIX, base: { durable, hot } });
  const handler = createKinesisHandler({ store: new PgEventStore(pool), projector: new Projector(versioned.durable, versioned.hot), acks, log });
  const runner = new StreamRunner({
    kinesis,
    stream: config.KINESIS_STREAM,
    region: config.AWS_REGION,
    checkpoints: new PgCheckpointStore(pool, config.PROCESSOR_CONSUMER, config.KINESIS_STREAM),
    handler,
    log,
    batchSize: config.BATCH_SIZE,
    pollIntervalMs: config.POLL_INTERVAL_MS,
    retryDelayMs: config.RETRY_DELAY_MS,
    shardRefreshMs: config.SHARD_REFRESH_MS,
  });
  await runner.start();
  log.info('processors started', { stream: config.KINESIS_STREAM });

  return {
    name: 'processors',
    async close() {
      await runner.stop();
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
