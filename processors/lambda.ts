/**
 * AWS Lambda entry of the processors: the same handler the local runner drives, invoked by the
 * Kinesis event source mapping (ReportBatchItemFailures). Clients are created once per container;
 * the database credentials come from Secrets Manager when DB_SECRET_ARN is set (RDS Proxy endpoint),
 * and are read again when the server refuses them (password rotation: core/db-credentials.ts).
 */
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { Pool } from 'pg';
import { z } from 'zod';
import { AckRetentionEnv, retentionFrom } from '../core/ack-log';
import { createDocumentClient, createDynamo, createSqs } from '../core/aws';
import { AwsEnv, LogEnv, loadConfig, port, positiveInt, RedisEnv, TablesEnv } from '../core/config';
import { CachedSecret, parseDbSecret, readSecretString, SecretPool } from '../core/db-credentials';
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

export const LambdaConfig = z
  .object({
    DATABASE_URL: z.string().optional(),
    DB_SECRET_ARN: z.string().optional(),
    DB_HOST: z.string().optional(),
    DB_NAME: z.string().default('ackstream'),
    DB_PORT: port(5432),
    /** TLS to the database (the RDS Proxy requires it); 'disable' only for a local PostgreSQL. */
    DB_SSL: z.enum(['require', 'disable']).default('require'),
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

/** The pool: a plain URL locally, or the proxy with credentials from the rotating secret. */
async function createPool(c: Config): Promise<Pool> {
  if (c.DATABASE_URL) return new Pool({ connectionString: c.DATABASE_URL, max: c.PG_POOL_SIZE });
  const secret = new CachedSecret(async () => parseDbSecret(await readSecretString(c.AWS_REGION, c.DB_SECRET_ARN!)));
  const { username } = await secret.get();
  return new SecretPool(secret, username, {
    host: c.DB_HOST!, port: c.DB_PORT, database: c.DB_NAME, max: c.PG_POOL_SIZE,
    ...(c.DB_SSL === 'require' ? { ssl: true } : {}),
  });
}

interface Handlers {
  commit: KinesisHandler;
  project: KinesisHandler;
}

let ready: Promise<Handlers> | undefined;

async function build(): Promise<Handlers> {
  const config = loadConfig(LambdaConfig);
  const log = createLogger(config.LOG_LEVEL, { service: 'processors' });
  const pool = await createPool(config);
  pool.on('error', (err) => log.warn('idle PostgreSQL connection lost', { err }));
  const redisToken = config.REDIS_AUTH_TOKEN_SECRET_ARN ? await readSecretString(config.AWS_REGION, config.REDIS_AUTH_TOKEN_SECRET_ARN) : config.REDIS_AUTH_TOKEN;
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
