/**
 * AWS Lambda entry of the processors: the same handler the local runner drives, invoked by the
 * Kinesis event source mapping (ReportBatchItemFailures). Clients are created once per container;
 * the database password comes from Secrets Manager when DB_SECRET_ARN is set (RDS Proxy endpoint).
 */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { Pool } from 'pg';
import { z } from 'zod';
import { createDocumentClient, createDynamo } from '../core/aws';
import { AwsEnv, LogEnv, loadConfig, positiveInt, RedisEnv, TablesEnv } from '../core/config';
import { createLogger } from '../core/log';
import { RedisAckLog } from '../core/redis-ack-log';
import { createRedis } from '../core/redis';
import { DynamoDurableStore, RedisHotStore } from '../read-model/stores';
import { PgEventStore } from './event-store';
import { createKinesisHandler, type KinesisHandler } from './handler';
import { Projector } from './projector';
import { fanOutStores } from './replay/fanout'; // [replay]

const LambdaConfig = z
  .object({
    DATABASE_URL: z.string().optional(),
    DB_SECRET_ARN: z.string().optional(),
    DB_HOST: z.string().optional(),
    DB_NAME: z.string().default('ackstream'),
    PG_POOL_SIZE: positiveInt(2),
  })
  .merge(AwsEnv).merge(RedisEnv).merge(TablesEnv).merge(LogEnv)
  .refine((c) => c.DATABASE_URL || (c.DB_SECRET_ARN && c.DB_HOST), {
    message: 'set DATABASE_URL, or DB_SECRET_ARN and DB_HOST',
  });

async function databaseUrl(c: z.infer<typeof LambdaConfig>): Promise<string> {
  if (c.DATABASE_URL) return c.DATABASE_URL;
  const sm = new SecretsManagerClient({ region: c.AWS_REGION });
  const out = await sm.send(new GetSecretValueCommand({ SecretId: c.DB_SECRET_ARN }));
  const secret = JSON.parse(out.SecretString ?? '{}') as { username: string; password: string };
  sm.destroy();
  return `postgres://${encodeURIComponent(secret.username)}:${encodeURIComponent(secret.password)}@${c.DB_HOST}:5432/${c.DB_NAME}?sslmode=require`;
}

let ready: Promise<KinesisHandler> | undefined;

async function build(): Promise<KinesisHandler> {
  const config = loadConfig(LambdaConfig);
  const log = createLogger(config.LOG_LEVEL, { service: 'processors' });
  const pool = new Pool({ connectionString: await databaseUrl(config), max: config.PG_POOL_SIZE });
  pool.on('error', (err) => log.warn('idle PostgreSQL connection lost', { err }));
  const redis = createRedis(config.REDIS_URL, config.REDIS_AUTH_TOKEN);
  const doc = createDocumentClient(createDynamo({ region: config.AWS_REGION }));
  const durable = new DynamoDurableStore(doc, config.ITEMS_TABLE, config.REQUESTS_TABLE);
  // [replay] item writes fan out to every deployed version of the projection (processors/replay/fanout.ts).
  const versioned = fanOutStores({ doc, redis, itemsTable: config.ITEMS_TABLE, requestsTable: config.REQUESTS_TABLE, redisPrefix: config.REDIS_PREFIX,
    base: { durable, hot: new RedisHotStore(redis, config.REDIS_PREFIX) } });
  return createKinesisHandler({
    store: new PgEventStore(pool),
    projector: new Projector(versioned.durable, versioned.hot),
    acks: new RedisAckLog(redis, config.REDIS_PREFIX),
    log,
  });
}

export async function handler(event: KinesisStreamEvent): Promise<KinesisStreamBatchResponse> {
  ready ??= build().catch((err: unknown) => {
    ready = undefined; // let the next invocation try again
    throw err;
  });
  return (await ready)(event);
}
