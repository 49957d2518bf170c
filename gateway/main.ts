/** Composition root of the gateway (write API). */
import type { Server } from 'node:http';
import { z } from 'zod';
import { AckRetentionEnv, retentionFrom, type AckLog } from '../core/ack-log';
import { TokenVerifier } from '../core/auth';
import { createKinesis } from '../core/aws';
import { applyHttpTimeouts, AuthEnv, AwsEnv, HttpEnv, LogEnv, loadConfig, port, positiveInt, RedisEnv, runMain, StreamEnv } from '../core/config';
import { createLogger, type Logger } from '../core/log';
import { RedisAckLog } from '../core/redis-ack-log';
import { closeRedis, createRedis } from '../core/redis';
import { answerClientErrorsWithProblems, closeOnSignals, type RunningService } from '../core/service';
import { type HotStore, RedisHotStore } from '../core/read-store';
import { CachingTokenVerifier } from '../core/token-cache';
import { createGatewayApp } from './app';
import { AttachmentEnv, attachmentSettings } from './attachment-config';
import { BatchingCommandStream, type KinesisSender } from './batching-stream';
import { type IdempotencyStore, MemoryIdempotencyStore, RedisIdempotencyStore } from './idempotency';
import { HttpKinesisClient } from '../core/kinesis-http';
import { bufferedStdout } from './log-writer';
import { createGatewayMetrics } from './metrics';
import { type RateLimiter, TenantRateLimiter } from './rate-limit';

/** Kinesis takes records up to 1 MiB and DynamoDB items up to 400 KB: bodies stay well below both. */
export const HARD_MAX_BODY_BYTES = 256 * 1024;

const nonNegativeInt = (fallback: number) => z.coerce.number().int().min(0).default(fallback);

export const GatewayConfig = z.object({
  /** HTTP port of the gateway. */
  GATEWAY_PORT: port(3000),
  /** Interface the server listens on (0.0.0.0 in a container). */
  HOST: z.string().default('127.0.0.1'),
  /** Largest write body accepted, in bytes; larger ones get 413 (at most 262144). */
  MAX_BODY_BYTES: positiveInt(64 * 1024).pipe(z.number().max(HARD_MAX_BODY_BYTES, `MAX_BODY_BYTES may be at most ${HARD_MAX_BODY_BYTES}`)),
  /** PutRecords micro-batching (see gateway/batching-stream.ts). */
  STREAM_LINGER_MS: nonNegativeInt(5),
  /** Send at once under light load (no call in flight, none started within the linger); 'false': always linger. */
  STREAM_FLUSH_WHEN_IDLE: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
  /** Records per PutRecords call (at most 500, Kinesis' limit). */
  STREAM_MAX_BATCH_RECORDS: positiveInt(500).pipe(z.number().max(500, 'PutRecords takes at most 500 records')),
  /** Bytes per PutRecords call (at most 5 MiB, Kinesis' limit). */
  STREAM_MAX_BATCH_BYTES: positiveInt(5 * 1024 * 1024).pipe(z.number().max(5 * 1024 * 1024, 'PutRecords takes at most 5 MiB')),
  /** Records held (waiting, in a call or waiting for a retry) before a write is answered 503. */
  STREAM_MAX_BUFFERED: positiveInt(10_000),
  /** PutRecords calls in flight at once. */
  STREAM_MAX_CONCURRENT_CALLS: positiveInt(4),
  /** A write the stream has not accepted within this time (retries included) is answered 503. */
  STREAM_RETRY_BUDGET_MS: positiveInt(2_000),
  /**
   * PutRecords through the AWS SDK client (the default: the SDK's endpoint rules, partitions and
   * error handling, proven against real AWS), or over HTTP signed as the SDK's own signer signs
   * (core/kinesis-http.ts, core/sigv4-post.ts: ≈ 1.2 ms less CPU per call, tested against the emulator only).
   */
  STREAM_CLIENT: z.enum(['http', 'sdk']).default('sdk'),
  /** One PutRecords call is aborted after this long; its records count as failed and are retried within the budget. */
  STREAM_CALL_TIMEOUT_MS: positiveInt(2_000),
  /** Idempotency-Key window and the lease of an in-progress claim. */
  IDEMPOTENCY_WINDOW_S: positiveInt(24 * 3600),
  /** How long an in-progress claim holds its key; a retry with the same body after it lapses takes the claim over. */
  IDEMPOTENCY_LEASE_MS: positiveInt(5_000),
  /** Per-tenant write rate (token bucket shared through Redis); 0 turns it off. */
  RATE_LIMIT_PER_SECOND: nonNegativeInt(1_000),
  /** Extra writes a tenant may take above RATE_LIMIT_PER_SECOND, from a second bucket refilled over RATE_LIMIT_BURST_WINDOW_S. */
  RATE_LIMIT_BURST: nonNegativeInt(2_000),
  /** Seconds over which the burst bucket refills. */
  RATE_LIMIT_BURST_WINDOW_S: positiveInt(10),
  /** How long shutdown waits for open connections after the buffer is flushed. */
  SHUTDOWN_GRACE_MS: positiveInt(5_000),
}).merge(AuthEnv).merge(AckRetentionEnv).merge(AwsEnv).merge(RedisEnv).merge(StreamEnv).merge(LogEnv).merge(HttpEnv).merge(AttachmentEnv);
export type GatewayConfig = z.infer<typeof GatewayConfig>;

export interface GatewayOverrides {
  acks?: AckLog;
  hot?: HotStore;
  log?: Logger;
  /** Single-node runs without Redis pass the in-memory store (with acks and hot). */
  idempotency?: IdempotencyStore;
  rateLimiter?: RateLimiter;
  /** A Kinesis client to use instead of one built from the config (tests inject faults here). */
  kinesis?: KinesisSender;
}

export async function startGateway(config: GatewayConfig, overrides: GatewayOverrides = {}): Promise<RunningService> {
  const log = overrides.log ?? createLogger(config.LOG_LEVEL, { service: 'gateway' }, bufferedStdout());
  // Without Redis (acks and hot store given in memory), the idempotency store and rate limiter stay in process too.
  const singleNode = Boolean(overrides.acks && overrides.hot);
  const redis = singleNode ? undefined : createRedis(config.REDIS_URL, config.REDIS_AUTH_TOKEN);
  const acks = overrides.acks ?? new RedisAckLog(redis!, config.REDIS_PREFIX, retentionFrom(config));
  const hot = overrides.hot ?? new RedisHotStore(redis!, config.REDIS_PREFIX);
  const idemTimes = { windowSeconds: config.IDEMPOTENCY_WINDOW_S, leaseMs: config.IDEMPOTENCY_LEASE_MS };
  const idempotency = overrides.idempotency
    ?? (redis ? new RedisIdempotencyStore(redis, config.REDIS_PREFIX, idemTimes) : new MemoryIdempotencyStore(idemTimes));
  const rateLimiter = overrides.rateLimiter ?? (config.RATE_LIMIT_PER_SECOND > 0
    ? new TenantRateLimiter(
      { perSecond: config.RATE_LIMIT_PER_SECOND, burst: config.RATE_LIMIT_BURST, burstWindowSeconds: config.RATE_LIMIT_BURST_WINDOW_S },
      redis ? { client: redis, prefix: config.REDIS_PREFIX } : undefined,
    )
    : undefined);
  const ownKinesis = overrides.kinesis ? undefined : createKinesis({ region: config.AWS_REGION, endpoint: config.KINESIS_ENDPOINT });
  // The SDK client stays the source of credentials (its provider chain and refresh) even when the calls go over plain HTTP.
  // Without KINESIS_ENDPOINT the regional endpoint of the standard partition is used; elsewhere
  // (China, GovCloud, FIPS) set KINESIS_ENDPOINT or STREAM_CLIENT=sdk.
  const httpKinesis = ownKinesis && config.STREAM_CLIENT === 'http'
    ? new HttpKinesisClient({
      endpoint: config.KINESIS_ENDPOINT ?? `https://kinesis.${config.AWS_REGION}.amazonaws.com`,
      region: config.AWS_REGION,
      credentials: ownKinesis.config.credentials,
      maxSockets: config.STREAM_MAX_CONCURRENT_CALLS * 2,
    })
    : undefined;
  const metrics = createGatewayMetrics();
  const stream = new BatchingCommandStream(overrides.kinesis ?? httpKinesis ?? ownKinesis!, config.KINESIS_STREAM, {
    lingerMs: config.STREAM_LINGER_MS,
    flushWhenIdle: config.STREAM_FLUSH_WHEN_IDLE,
    maxRecords: config.STREAM_MAX_BATCH_RECORDS,
    maxBytes: config.STREAM_MAX_BATCH_BYTES,
    maxBuffered: config.STREAM_MAX_BUFFERED,
    maxConcurrentCalls: config.STREAM_MAX_CONCURRENT_CALLS,
    retryBudgetMs: config.STREAM_RETRY_BUDGET_MS,
    callTimeoutMs: config.STREAM_CALL_TIMEOUT_MS,
  }, metrics.observer, log);
  const lifecycle = { closing: false };
  const attachments = attachmentSettings(config, hot);
  const app = createGatewayApp({
    ...(attachments ? { attachments: attachments.settings } : {}),
    stream, acks, hot, log, idempotency, metrics, lifecycle,
    ...(rateLimiter ? { rateLimiter } : {}),
    // Verified tokens are cached until their exp (HS256 verification was ~4 % of the gateway's CPU per write).
    verifier: new CachingTokenVerifier(new TokenVerifier(config.AUTH_SECRET)), maxBodyBytes: config.MAX_BODY_BYTES,
  });
  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(config.GATEWAY_PORT, config.HOST, () => resolve(s)).on('error', reject);
  });
  applyHttpTimeouts(server, config);
  answerClientErrorsWithProblems(server);
  const actual = (server.address() as { port: number }).port;
  log.info('gateway listening', { port: actual });
  let closed: Promise<void> | undefined;
  return {
    name: 'gateway',
    port: actual,
    url: `http://${config.HOST}:${actual}`,
    /**
     * Graceful shutdown: stop accepting (new connections refused, new requests 503), flush the
     * buffer so every pending write is answered 202 or 503, then close connections and clients.
     */
    close() {
      closed ??= (async () => {
        lifecycle.closing = true;
        log.info('gateway shutting down', { buffered: stream.depth });
        const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        await stream.close();
        const grace = setTimeout(() => server.closeAllConnections(), config.SHUTDOWN_GRACE_MS);
        // Answers just written go out; idle keep-alive connections go now.
        server.closeIdleConnections();
        await serverClosed;
        clearTimeout(grace);
        await idempotency.close();
        if (redis) await closeRedis(redis);
        httpKinesis?.destroy();
        ownKinesis?.destroy();
        await attachments?.close();
        log.info('gateway stopped');
      })();
      return closed;
    },
  };
}

if (require.main === module) {
  runMain(async () => {
    const service = await startGateway(loadConfig(GatewayConfig));
    closeOnSignals([service]);
  });
}
