/**
 * Starts the real stack for one test file: AWS emulators in-process, a fresh PostgreSQL database
 * on the machine's server, a private Redis key prefix, and every service on a free port.
 * Everything it creates is removed by close().
 */
import { randomBytes } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { Redis } from 'ioredis';
import { Client, Pool } from 'pg';
import { signToken, type TokenRequest } from '../../core/auth';
import { createDocumentClient, createDynamo, createKinesis, createSqs } from '../../core/aws';
import { loadConfig } from '../../core/config';
import type { RunningService } from '../../core/service';
import { AckConfig, startAckService } from '../../ack-service/main';
import { GatewayConfig, startGateway } from '../../gateway/main';
import { ProcessorsConfig, startProcessors } from '../../processors/main';
import { ReadConfig, startReadModel } from '../../read-model/main';
import { type Emulators, provision, startEmulators } from '../../scripts/local-stack';
import { deleteKeysByPrefix } from '../../core/redis';

export const BASE_DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface StackOptions {
  shardCount?: number;
  /** Start only these services (default: all). */
  services?: Array<'gateway' | 'processors' | 'read-model' | 'ack-service'>;
  env?: Record<string, string>;
}

export interface Stack {
  name: string;
  env: NodeJS.ProcessEnv;
  gatewayUrl: string;
  readUrl: string;
  ackUrl: string;
  databaseUrl: string;
  redisPrefix: string;
  emulators: Emulators;
  pg: Pool;
  redis: Redis;
  dynamo: DynamoDBClient;
  doc: DynamoDBDocumentClient;
  services: Map<string, RunningService>;
  token(req: Partial<TokenRequest> & { tenant: string; sub: string }): Promise<string>;
  startService(name: 'gateway' | 'processors' | 'read-model' | 'ack-service'): Promise<RunningService>;
  /**
   * Resolves once the projection consumer has checkpointed past a record (the durable copy and
   * its own Redis write are done): tests that remove the hot copy must not race its late refill.
   */
  projected(at: { shardId: string; sequenceNumber: string }, timeoutMs?: number): Promise<void>;
  stopService(name: string): Promise<void>;
  close(): Promise<void>;
}

/** Creates a database for one test file on the shared server. */
export async function createTestDatabase(name: string): Promise<string> {
  const admin = new Client({ connectionString: BASE_DATABASE_URL });
  try {
    await admin.connect();
  } catch (err) {
    throw new Error(
      `Tests need PostgreSQL at ${BASE_DATABASE_URL} (set DATABASE_URL to another server): ${(err as Error).message}`,
    );
  }
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  const url = new URL(BASE_DATABASE_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function dropTestDatabase(name: string): Promise<void> {
  const admin = new Client({ connectionString: BASE_DATABASE_URL });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.end();
}


export function uniqueName(label: string): string {
  return `t_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase().slice(0, 30)}_${randomBytes(4).toString('hex')}`;
}

export async function startStack(label: string, opts: StackOptions = {}): Promise<Stack> {
  const name = uniqueName(label);
  const emulators = await startEmulators();
  const databaseUrl = await createTestDatabase(name);
  const redisPrefix = `test:${name}:`;
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    await redis.ping();
  } catch (err) {
    throw new Error(`Tests need Redis at ${REDIS_URL} (set REDIS_URL to another server): ${(err as Error).message}`);
  }
  const secret = randomBytes(32).toString('base64url');
  const env: NodeJS.ProcessEnv = {
    AUTH_SECRET: secret,
    AWS_REGION: 'us-east-1',
    DATABASE_URL: databaseUrl,
    REDIS_URL,
    REDIS_PREFIX: redisPrefix,
    KINESIS_ENDPOINT: emulators.kinesisEndpoint,
    DYNAMODB_ENDPOINT: emulators.dynamoEndpoint,
    SQS_ENDPOINT: emulators.sqsEndpoint,
    KINESIS_STREAM: `${name}-commands`,
    ITEMS_TABLE: `${name}-items`,
    REQUESTS_TABLE: `${name}-requests`,
    GATEWAY_PORT: '0',
    READ_PORT: '0',
    ACK_PORT: '0',
    PROCESSORS_METRICS_PORT: '0',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    POLL_INTERVAL_MS: '10',
    RETRY_DELAY_MS: '50',
    ...opts.env,
  };
  const kinesis = createKinesis({ region: 'us-east-1', endpoint: emulators.kinesisEndpoint });
  const dynamo = createDynamo({ region: 'us-east-1', endpoint: emulators.dynamoEndpoint });
  const sqs = createSqs({ region: 'us-east-1', endpoint: emulators.sqsEndpoint });
  const { dlqUrl } = await provision({
    kinesis, dynamo, sqs,
    stream: env.KINESIS_STREAM!,
    shardCount: opts.shardCount ?? 2,
    itemsTable: env.ITEMS_TABLE!,
    requestsTable: env.REQUESTS_TABLE!,
    dlqName: `${name}-dlq`,
    databaseUrl,
  });
  if (dlqUrl) env.DLQ_URL = dlqUrl;
  kinesis.destroy();
  sqs.destroy();

  const services = new Map<string, RunningService>();
  const starters = {
    processors: () => startProcessors(loadConfig(ProcessorsConfig, env)),
    'read-model': () => startReadModel(loadConfig(ReadConfig, env)),
    'ack-service': () => startAckService(loadConfig(AckConfig, env)),
    gateway: () => startGateway(loadConfig(GatewayConfig, env)),
  };
  const stack: Stack = {
    name, env, databaseUrl, redisPrefix, emulators, redis, dynamo,
    gatewayUrl: '', readUrl: '', ackUrl: '',
    pg: new Pool({ connectionString: databaseUrl, max: 3 }),
    doc: createDocumentClient(dynamo),
    services,
    token: (req) => signToken(secret, req),
    async startService(svc) {
      const running = await starters[svc]();
      services.set(svc, running);
      if (svc === 'gateway') stack.gatewayUrl = running.url!;
      if (svc === 'read-model') stack.readUrl = running.url!;
      if (svc === 'ack-service') stack.ackUrl = running.url!;
      return running;
    },
    async projected(at, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const res = await stack.pg.query(
          `SELECT 1 FROM checkpoints WHERE consumer = $1 AND stream = $2 AND shard_id = $3
             AND sequence_number::numeric >= $4::numeric`,
          [env.PROJECTION_CONSUMER ?? 'projections', env.KINESIS_STREAM, at.shardId, at.sequenceNumber],
        );
        if (res.rowCount) return;
        if (Date.now() > deadline) throw new Error(`the projection consumer did not reach ${at.shardId}/${at.sequenceNumber} in ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stopService(svc) {
      const running = services.get(svc);
      services.delete(svc);
      await running?.close();
    },
    async close() {
      for (const svc of [...services.keys()]) await stack.stopService(svc);
      await stack.pg.end();
      await emulators.close();
      dynamo.destroy();
      await dropTestDatabase(name);
      await deleteKeysByPrefix(redis, redisPrefix);
      redis.disconnect();
    },
  };
  for (const svc of opts.services ?? (['processors', 'read-model', 'ack-service', 'gateway'] as const)) {
    await stack.startService(svc);
  }
  return stack;
}
