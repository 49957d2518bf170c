/** Composition root of the read API. */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { Redis } from 'ioredis';
import { Agent } from 'node:http';
import { z } from 'zod';
import { TokenVerifier } from '../core/auth';
import { createDocumentClient } from '../core/aws';
import { AuthEnv, AwsEnv, LogEnv, loadConfig, port, positiveInt, RedisEnv, runMain, TablesEnv } from '../core/config';
import { createLogger, type Logger } from '../core/log';
import { closeRedis } from '../core/redis';
import { answerClientErrorsWithProblems, closeOnSignals, type RunningService } from '../core/service';
import { NearCache, RedisTracking } from './near-cache';
import { ReadModelReader } from './reader';
import { liveStores } from '../core/projections';
import { createReadServer } from './server';
import { DynamoDurableStore, type DurableStore, type HotStore, RedisHotStore } from '../core/read-store';
import { CachingTokenVerifier } from '../core/token-cache';

export const ReadConfig = z.object({
  /** HTTP port of the read API. */
  READ_PORT: port(3001),
  /** Interface the server listens on (0.0.0.0 in a container). */
  HOST: z.string().default('127.0.0.1'),
  /** Longest wait for `minVersion` / `X-Min-Version` before a 409. */
  READ_MIN_VERSION_WAIT_MS: positiveInt(2000),
  /** A Redis read slower than this counts as a failure and the read goes to DynamoDB. */
  READ_REDIS_TIMEOUT_MS: positiveInt(250),
  /** A DynamoDB call slower than this fails (503) instead of holding the request. */
  READ_DYNAMODB_TIMEOUT_MS: positiveInt(1500),
  /** Consecutive failures that open a store's circuit breaker, and how long it stays open. */
  READ_BREAKER_THRESHOLD: positiveInt(3),
  /** How long an open circuit breaker skips its store before trying it again. */
  READ_BREAKER_OPEN_MS: positiveInt(1000),
  /** Verified tokens kept (until their exp) so repeat requests skip the HMAC. */
  READ_TOKEN_CACHE_SIZE: positiveInt(10_000),
  /**
   * Near cache (read-model/near-cache.ts): hot items' answers kept in process, coherent through
   * Redis client-side caching. Bounded by entries (0 = off) and by bytes (bodies + bookkeeping).
   */
  READ_NEAR_CACHE_MAX_ENTRIES: z.coerce.number().int().min(0).max(10_000_000).default(50_000),
  /** Bytes the near cache may hold (bodies and bookkeeping), at least 1 MiB. */
  READ_NEAR_CACHE_MAX_BYTES: z.coerce.number().int().min(1024 * 1024).max(16 * 1024 ** 3).default(64 * 1024 * 1024),
  /** An invalidation connection silent this long (heartbeat unanswered) flushes the near cache. */
  READ_NEAR_CACHE_MAX_SILENCE_MS: z.coerce.number().int().min(100).max(60_000).default(1000),
}).merge(AuthEnv).merge(AwsEnv).merge(RedisEnv).merge(TablesEnv).merge(LogEnv);
export type ReadConfig = z.infer<typeof ReadConfig>;

/**
 * The read path's Redis connection: no offline queue (while Redis is down a command fails at once
 * instead of waiting for a reconnect), no retries, a short command timeout; ioredis keeps
 * reconnecting in the background, so reads return to Redis by themselves.
 */
export function createReadRedis(config: Pick<ReadConfig, 'REDIS_URL' | 'REDIS_AUTH_TOKEN' | 'READ_REDIS_TIMEOUT_MS'>, role: 'data' | 'invalidations' = 'data'): Redis {
  const redis = new Redis(config.REDIS_URL, {
    ...(config.REDIS_AUTH_TOKEN ? { password: config.REDIS_AUTH_TOKEN } : {}),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: config.READ_REDIS_TIMEOUT_MS,
    connectTimeout: 1000,
    retryStrategy: (times) => Math.min(50 * times, 1000),
    ...(role === 'data'
      ? { enableAutoPipelining: true }
      : // The near cache's invalidation connection: subscribed by RedisTracking itself after each
        // connect (it needs the connection's CLIENT ID first, which a subscribed connection cannot ask).
        { autoResubscribe: false, connectionName: 'ackstream-read-invalidations' }),
  });
  redis.on('error', () => undefined); // failures surface on the commands; the reader logs them once
  return redis;
}

/** DynamoDB with bounded connect and request time, and one retry: a dead store costs little. */
export function createReadDynamo(config: Pick<ReadConfig, 'AWS_REGION' | 'DYNAMODB_ENDPOINT' | 'READ_DYNAMODB_TIMEOUT_MS'>): DynamoDBClient {
  const requestHandler = new NodeHttpHandler({
    httpAgent: new Agent({ keepAlive: true, maxSockets: 64 }),
    connectionTimeout: Math.min(500, config.READ_DYNAMODB_TIMEOUT_MS),
    requestTimeout: config.READ_DYNAMODB_TIMEOUT_MS,
    throwOnRequestTimeout: true, // else the handler only warns and the request hangs
  });
  return new DynamoDBClient({
    region: config.AWS_REGION,
    maxAttempts: 2,
    requestHandler,
    ...(config.DYNAMODB_ENDPOINT
      ? { endpoint: config.DYNAMODB_ENDPOINT, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }
      : {}),
  });
}

export interface ReadOverrides {
  hot?: HotStore;
  durable?: DurableStore;
  /** Wraps the DynamoDB document client (tests count calls through it). */
  wrapDocumentClient?: (doc: DynamoDBDocumentClient) => DynamoDBDocumentClient;
  log?: Logger;
}

export interface ReadModelService extends RunningService {
  /** The near cache and its tracking, when on (stats and connection ids for operators and tests). */
  near?: { cache: NearCache; tracking: RedisTracking };
}

export async function startReadModel(config: ReadConfig, overrides: ReadOverrides = {}): Promise<ReadModelService> {
  const log = overrides.log ?? createLogger(config.LOG_LEVEL, { service: 'read-model' });
  const redis = overrides.hot ? undefined : createReadRedis(config);
  const near = redis && config.READ_NEAR_CACHE_MAX_ENTRIES > 0
    ? new NearCache({ maxEntries: config.READ_NEAR_CACHE_MAX_ENTRIES, maxBytes: config.READ_NEAR_CACHE_MAX_BYTES })
    : undefined;
  const tracking = near && new RedisTracking(redis!, createReadRedis(config, 'invalidations'), near, log, { maxSilenceMs: config.READ_NEAR_CACHE_MAX_SILENCE_MS });
  const hot = overrides.hot ?? new RedisHotStore(redis!, config.REDIS_PREFIX, undefined, near);
  const dynamo = overrides.durable ? undefined : createReadDynamo(config);
  // Two document clients over one connection pool: the item reads (which tests may wrap) and the registry's.
  const rawDoc = dynamo && createDocumentClient(dynamo);
  const itemDoc = dynamo && createDocumentClient(dynamo);
  const doc = itemDoc && overrides.wrapDocumentClient ? overrides.wrapDocumentClient(itemDoc) : itemDoc;
  const baseDurable = overrides.durable ?? new DynamoDurableStore(doc!, config.ITEMS_TABLE, config.REQUESTS_TABLE);
  // Items are read from the live version of the projection, resolved through the registry
  // (core/projections/live.ts); registry reads do not go through the test wrapper that counts item reads.
  const live = rawDoc
    ? liveStores({ doc: rawDoc, redis, itemsTable: config.ITEMS_TABLE, requestsTable: config.REQUESTS_TABLE, redisPrefix: config.REDIS_PREFIX, base: { durable: baseDurable, hot }, near })
    : { durable: baseDurable, hot };
  const reader = new ReadModelReader(live.hot, live.durable, log, {
    breakerThreshold: config.READ_BREAKER_THRESHOLD,
    breakerOpenMs: config.READ_BREAKER_OPEN_MS,
  });
  const verifier = new CachingTokenVerifier(new TokenVerifier(config.AUTH_SECRET), config.READ_TOKEN_CACHE_SIZE);
  const server = createReadServer({ reader, verifier, log, minVersionWaitMs: config.READ_MIN_VERSION_WAIT_MS });
  server.keepAliveTimeout = 65_000; // longer than typical load balancer idle timeouts
  answerClientErrorsWithProblems(server);
  await new Promise<void>((resolve, reject) => server.listen(config.READ_PORT, config.HOST, resolve).on('error', reject));
  const actual = (server.address() as { port: number }).port;
  log.info('read API listening', { port: actual });
  return {
    name: 'read-model',
    port: actual,
    url: `http://${config.HOST}:${actual}`,
    ...(near && tracking ? { near: { cache: near, tracking } } : {}),
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      if (near) log.info('near cache at shutdown', { ...near.stats, entries: near.size, bytes: near.byteSize });
      tracking?.close();
      if (redis) await closeRedis(redis);
      dynamo?.destroy();
    },
  };
}

if (require.main === module) {
  runMain(async () => {
    const service = await startReadModel(loadConfig(ReadConfig));
    closeOnSignals([service]);
  });
}
