/**
 * AWS Lambda entry of the processors: the same handler the local runner drives, invoked by the
 * Kinesis event source mapping (ReportBatchItemFailures). Clients are created once per container;
 * the database password comes from Secrets Manager when DB_SECRET_ARN is set (RDS Proxy endpoint).
 */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { Pool } from 'pg';
import { z } from 'zod';
import { AckRetentionEnv, retentionFrom } from '../core/ack-log';
import { createDocumentClient, createDynamo, createSqs } from '../core/aws';
import { AwsEnv, LogEnv, loadConfig, positiveInt, RedisEnv, TablesEnv } from '../core/config';
import { createLogger } from '../core/log';
import { RedisAckLog } from '../core/redis-ack-log';
import { createRedis } from '../core/redis';
import { DynamoDurableStore, RedisHotStore } from '../read-model/stores';
import { PgEventStore } from './event-store';
import { createKinesisHandler, type KinesisHandler } from './handler';
import { createProjectionHandler } from './projection-handler';
import { LogDeadLetterQueue, ParkingLot, SqsDeadLetterQueue } from './parking';
import { consumerProjectors, DynamoRequestBatchWriter } from './projector';
import { fanOutStores } from './replay/fanout';
import { DynamoProjectionWatermark } from '../read-model/watermark';

const LambdaConfig = z
  .object({
    DATABASE_URL: z.string().optional(),
    DB_SECRET_ARN: z.string().optional(),
    DB_HOST: z.string().optional(),
    DB_NAME: z.string().default('ackstream'),
    /** ElastiCache AUTH token (a plain-string secret), read at cold start. */
    REDIS_AUTH_TOKEN_SECRET_ARN: z.string().optional(),
    PG_POOL_SIZE: positiveInt(2),
    MAX_ATTEMPTS: positiveInt(5),
    DLQ_URL: z.string().min(1).optional(),
    DURABLE_INLINE_BUDGET_MS: z.coerce.number().int().min(0).max(5000).default(500),
    /** Above this many records/s the commit consumer leaves the durable copy to the projection consumer. */
    DURABLE_INLINE_MAX_RATE: z.coerce.number().int().min(0).default(200),
  })
  .merge(AwsEnv).merge(AckRetentionEnv).merge(RedisEnv).merge(TablesEnv).merge(LogEnv)
  .refine((c) => c.DATABASE_URL || (c.DB_SECRET_ARN && c.DB_HOST), {
    message: 'set DATABASE_URL, or DB_SECRET_ARN and DB_HOST',
  });

type Config = z.infer<typeof LambdaConfig>;

async function readSecret(c: Config, arn: string): Promise<string> {
  const sm = new SecretsManagerClient({ region: c.AWS_REGION });
  try {
    return (await sm.send(new GetSecretValueCommand({ SecretId: arn }))).SecretString ?? '';
  } finally {
    sm.destroy();
  }
}

async function databaseUrl(c: Config): Promise<string> {
  if (c.DATABASE_URL) return c.DATABASE_URL;
  const secret = JSON.parse(await readSecret(c, c.DB_SECRET_ARN!)) as { username: string; password: string };
  return `postgres://${encodeURIComponent(secret.username)}:${encodeURIComponent(secret.password)}@${c.DB_HOST}:5432/${c.DB_NAME}?sslmode=require`;
}

interface Handlers {
  commit: KinesisHandler;
  project: KinesisHandler;
}

let ready: Promise<Handlers> | undefined;

async function build(): Promise<Handlers> {
  const config = loadConfig(LambdaConfig);
  const log = createLogger(config.LOG_LEVEL, { service: 'processors' });
  const pool = new Pool({ connectionString: await databaseUrl(config), max: config.PG_POOL_SIZE });
  pool.on('error', (err) => log.warn('idle PostgreSQL connection lost', { err }));
  const redisToken = config.REDIS_AUTH_TOKEN_SECRET_ARN ? await readSecret(config, config.REDIS_AUTH_TOKEN_SECRET_ARN) : config.REDIS_AUTH_TOKEN;
  const redis = createRedis(config.REDIS_URL, redisToken);
  const doc = createDocumentClient(createDynamo({ region: config.AWS_REGION }));
  const durable = new DynamoDurableStore(doc, config.ITEMS_TABLE, config.REQUESTS_TABLE);
  const store = new PgEventStore(pool);
  const dlq = config.DLQ_URL ? new SqsDeadLetterQueue(createSqs({ region: config.AWS_REGION }), config.DLQ_URL) : new LogDeadLetterQueue(log);
  // Item writes fan out to every deployed version of the projection (processors/replay/fanout.ts),
  // always through conditional puts: a rebuild writes the same tables, so read-then-batch is not safe.
  const versioned = fanOutStores({ doc, redis, itemsTable: config.ITEMS_TABLE, requestsTable: config.REQUESTS_TABLE, redisPrefix: config.REDIS_PREFIX,
    base: { durable, hot: new RedisHotStore(redis, config.REDIS_PREFIX) } });
  const projectors = consumerProjectors(versioned, new DynamoRequestBatchWriter(doc, config.REQUESTS_TABLE), {
    budgetMs: config.DURABLE_INLINE_BUDGET_MS, maxRate: config.DURABLE_INLINE_MAX_RATE,
  });
  return {
    // Commit consumer: commit, fast-path projection, ack (the projection consumer guarantees the read model).
    commit: createKinesisHandler({
      store,
      projector: projectors.commit,
      projectionBestEffort: true,
      acks: new RedisAckLog(redis, config.REDIS_PREFIX, retentionFrom(config)),
      log,
      // Attempts are counted in PostgreSQL, so they survive across invocations of the function.
      parking: new ParkingLot(store, dlq, config.MAX_ATTEMPTS, log),
    }),
    project: createProjectionHandler({
      lookup: store,
      projector: projectors.projection,
      log,
      watermark: new DynamoProjectionWatermark(doc, config.REQUESTS_TABLE),
    }),
  };
}

function handlers(): Promise<Handlers> {
  ready ??= build().catch((err: unknown) => {
    ready = undefined; // let the next invocation try again
    throw err;
  });
  return ready;
}

/** The commit consumer's entry (event source mapping #1). */
export async function handler(event: KinesisStreamEvent): Promise<KinesisStreamBatchResponse> {
  return (await handlers()).commit(event);
}

/** The projection consumer's entry (event source mapping #2, same stream, own checkpoints). */
export async function projectionHandler(event: KinesisStreamEvent): Promise<KinesisStreamBatchResponse> {
  return (await handlers()).project(event);
}
