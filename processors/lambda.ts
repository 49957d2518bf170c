/**
 * AWS Lambda entry of the processors: the same handler the local runner drives, invoked by the
 * Kinesis event source mapping (ReportBatchItemFailures). Clients are created once per container;
 * the database credentials come from Secrets Manager when DB_SECRET_ARN is set (RDS Proxy endpoint),
 * and are read again when the server refuses them (password rotation: core/db-credentials.ts).
 */
import type { Pool } from 'pg';
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { retentionFrom } from '../core/ack-log';
import { createDocumentClient, createDynamo, createSqs } from '../core/aws';
import { loadConfig } from '../core/config';
import { CachedSecret, parseDbSecret, readSecretString, SecretPool } from '../core/db-credentials';
import { createLogger, type Logger } from '../core/log';
import { RedisHotStore } from '../core/read-store';
import { RedisAckLog } from '../core/redis-ack-log';
import { createRedis } from '../core/redis';
import type { KinesisHandler } from './commit-consumer';
import { composeConsumers, createDeadLetterQueue, createPool, PG_POOL_DEFAULTS } from './composition';
import { LambdaConfig } from './config';

type Config = LambdaConfig;

/** The pool: a plain URL locally, or the proxy with credentials from the rotating secret. */
async function lambdaPool(c: Config, log: Logger): Promise<Pool> {
  if (c.DATABASE_URL) return createPool(c.DATABASE_URL, 'lambda', c.PG_POOL_SIZE, log);
  const secret = new CachedSecret(async () => parseDbSecret(await readSecretString(c.AWS_REGION, c.DB_SECRET_ARN!)));
  const { username } = await secret.get();
  const pool = new SecretPool(secret, username, {
    host: c.DB_HOST!, port: c.DB_PORT, database: c.DB_NAME, max: c.PG_POOL_SIZE ?? PG_POOL_DEFAULTS.lambda,
    ...(c.DB_SSL === 'require' ? { ssl: true } : {}),
  });
  pool.on('error', (err) => log.warn('idle PostgreSQL connection lost', { err }));
  return pool;
}

interface Handlers {
  commit: KinesisHandler;
  project: KinesisHandler;
}

let ready: Promise<Handlers> | undefined;

async function build(): Promise<Handlers> {
  const config = loadConfig(LambdaConfig);
  const log = createLogger(config.LOG_LEVEL, { service: 'processors' });
  const pool = await lambdaPool(config, log);
  const redisToken = config.REDIS_AUTH_TOKEN_SECRET_ARN ? await readSecretString(config.AWS_REGION, config.REDIS_AUTH_TOKEN_SECRET_ARN) : config.REDIS_AUTH_TOKEN;
  const redis = createRedis(config.REDIS_URL, redisToken);
  const { commit, project } = composeConsumers({
    config, pool, redis, log,
    doc: createDocumentClient(createDynamo({ region: config.AWS_REGION })),
    hot: new RedisHotStore(redis, config.REDIS_PREFIX),
    acks: new RedisAckLog(redis, config.REDIS_PREFIX, retentionFrom(config)),
    dlq: createDeadLetterQueue(config, config.DLQ_URL ? createSqs({ region: config.AWS_REGION }) : undefined, log),
  });
  return { commit, project };
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
