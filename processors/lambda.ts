/**
 * AWS Lambda entry of the processors: the same handler the local runner drives, invoked by the
 * Kinesis event source mapping (ReportBatchItemFailures). Clients are created once per container;
 * the database password comes from Secrets Manager when DB_SECRET_ARN is set (RDS Proxy endpoint).
 */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { retentionFrom } from '../core/ack-log';
import { createDocumentClient, createDynamo, createSqs } from '../core/aws';
import { loadConfig } from '../core/config';
import { createLogger } from '../core/log';
import { RedisHotStore } from '../core/read-store';
import { RedisAckLog } from '../core/redis-ack-log';
import { createRedis } from '../core/redis';
import type { KinesisHandler } from './commit-consumer';
import { composeConsumers, createDeadLetterQueue, createPool } from './composition';
import { LambdaConfig } from './config';

type Config = LambdaConfig;

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
  const pool = createPool(await databaseUrl(config), 'lambda', config.PG_POOL_SIZE, log);
  const redisToken = config.REDIS_AUTH_TOKEN_SECRET_ARN ? await readSecret(config, config.REDIS_AUTH_TOKEN_SECRET_ARN) : config.REDIS_AUTH_TOKEN;
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
