/**
 * The processors' configuration. `ProcessorsSharedEnv` holds the keys every processors runtime
 * reads (the local runner, processors/main.ts; the Lambda entry, processors/lambda.ts; the
 * operator CLIs) — declared once here; each runtime adds only its own keys.
 */
import { z } from 'zod';
import { AckRetentionEnv } from '../core/ack-log';
import { AwsEnv, LogEnv, port, positiveInt, RedisEnv, StreamEnv, TablesEnv } from '../core/config';

export const ProcessorsSharedEnv = z.object({
  /**
   * PostgreSQL connections per process. No schema default: the default depends on the runtime
   * (processors/composition.ts, PG_POOL_DEFAULTS).
   */
  PG_POOL_SIZE: z.coerce.number().int().positive().optional(),
  /** Failed attempts (for a reason in the record itself) before a record is parked. */
  MAX_ATTEMPTS: positiveInt(5),
  /** SQS queue that receives a letter for each parked record (without it: a log line). */
  DLQ_URL: z.string().min(1).optional(),
  /**
   * How durable item rows are written. `batched`: the projection consumer is their only writer on
   * the live path, read-then-batch (BatchGetItem + BatchWriteItem of 25: a few calls per batch, not
   * one PutItem per item); listings show a write once the projection consumer wrote it. `guarded`:
   * one conditional PutItem per item, and under light traffic the commit consumer writes items
   * before the ack too, so listings usually show a write when its ack arrives.
   */
  PROJECTION_ITEM_WRITES: z.enum(['batched', 'guarded']).default('batched'),
  /** Under light traffic the commit consumer writes the durable copy (request statuses; items too with PROJECTION_ITEM_WRITES=guarded) before the ack, waiting at most this long (0: never). */
  DURABLE_INLINE_BUDGET_MS: z.coerce.number().int().min(0).max(5000).default(500),
  /** Above this many records/s the commit consumer leaves the durable copy to the projection consumer. */
  DURABLE_INLINE_MAX_RATE: z.coerce.number().int().min(0).default(200),
}).merge(AwsEnv).merge(AckRetentionEnv).merge(RedisEnv).merge(TablesEnv).merge(LogEnv);
export type ProcessorsSharedConfig = z.infer<typeof ProcessorsSharedEnv>;

/** The local runner's (and the CLIs') configuration: the shared keys plus the stream polling of processors/runner.ts. */
export const ProcessorsConfig = z.object({
  /** PostgreSQL (event log, current state, checkpoints, parked records). */
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL'),
  /** The commit consumer's checkpoint name (processors/commit-consumer.ts). */
  PROCESSOR_CONSUMER: z.string().default('processors'),
  /** The projection consumer's checkpoint name (processors/projection-consumer.ts). */
  PROJECTION_CONSUMER: z.string().default('projections'),
  /** Which consumers this process runs: both (default), or one each in separate processes (as the two Lambdas in AWS). */
  CONSUMERS: z.enum(['commit,projection', 'commit', 'projection']).default('commit,projection'),
  /** Records per GetRecords call and per batch handed to a consumer (like the event source's BatchSize). */
  BATCH_SIZE: positiveInt(500),
  /**
   * The commit consumer's batching window, like MaximumBatchingWindowInSeconds: while a shard has
   * records it is polled at most once per window (0: read on at once, the next GetRecords in flight
   * while a batch is handled). It delays every ack by up to the window: keep 0 unless acks may wait.
   */
  BATCH_WINDOW_MS: z.coerce.number().int().min(0).max(300_000).default(0),
  /**
   * The projection consumer's batching window: while a shard has records it is polled once per
   * window, so the durable copy is written in fewer, bigger batches (fewer GetRecords, DynamoDB
   * calls and checkpoints; several writes of a hot item in one window become one). Not on the ack
   * path; it is how much later than the ack a write may show in listings (with
   * PROJECTION_ITEM_WRITES=guarded only under heavy traffic: under light traffic the commit
   * consumer writes items itself) and how long a `consistentWith` listing may wait. 0: read on at
   * once, as the commit consumer does.
   */
  PROJECTION_BATCH_WINDOW_MS: z.coerce.number().int().min(0).max(300_000).default(500),
  /**
   * With both consumers in one process: the longest the projection consumer holds a batch until
   * the commit consumer has finished its records (decided them in PostgreSQL). Handed over
   * earlier, the records not decided yet fail the batch from there and are read again after
   * RETRY_DELAY_MS (a GetShardIterator, a GetRecords and a PostgreSQL lookup each time). 0: no
   * waiting, as when the consumers run apart (the two Lambdas in AWS).
   */
  PROJECTION_FOLLOW_MAX_WAIT_MS: z.coerce.number().int().min(0).max(60_000).default(2000),
  /** Wait after a shard's first empty poll; it doubles with each further empty poll, up to IDLE_POLL_MAX_MS. */
  POLL_INTERVAL_MS: positiveInt(20),
  /**
   * The longest wait between polls of an empty shard (Lambda polls an idle shard about once a
   * second). A write queued through the gateway wakes the consumers at once (they watch the ack
   * log; the commit consumer only the write's shard), so this bounds only the delay of records
   * that reach the stream another way.
   */
  IDLE_POLL_MAX_MS: positiveInt(1000),
  /**
   * How long each shard's checkpoint may trail the batches it has finished (0: saved after every
   * batch, as Lambda does). With an interval, one PostgreSQL commit saves the newest finished
   * position of the interval's batches; the reader's stop, failure or a shard's end saves at once.
   * It never passes an unfinished record: a crash only redelivers up to this long's records,
   * which change nothing (they are decided already). `npm start` uses 1000.
   */
  CHECKPOINT_INTERVAL_MS: z.coerce.number().int().min(0).max(60_000).default(0),
  /** Wait before retrying a failed batch. */
  RETRY_DELAY_MS: positiveInt(200),
  /** How often the shard list is refreshed (new shards after a reshard). */
  SHARD_REFRESH_MS: positiveInt(10_000),
  /**
   * GetRecords and GetShardIterator through the AWS SDK client (the default: the SDK's endpoint
   * rules, partitions, retries and error handling, proven against real AWS), or over HTTP signed
   * as the SDK's own signer signs (core/kinesis-http.ts: less CPU per poll, tested against the
   * emulator only; `npm start` uses it). Without KINESIS_ENDPOINT, `http` calls the regional
   * endpoint of the standard partition. The Lambda entry does not poll: the event source does.
   */
  STREAM_READ_CLIENT: z.enum(['http', 'sdk']).default('sdk'),
  /** Port of the processors' Prometheus /metrics (0: any free port). */
  PROCESSORS_METRICS_PORT: port(3003),
  /** How often each shard's lag is logged. */
  LAG_LOG_MS: positiveInt(10_000),
}).merge(ProcessorsSharedEnv).merge(StreamEnv);
export type ProcessorsConfig = z.infer<typeof ProcessorsConfig>;

/** The Lambda entry's configuration: the shared keys plus how it finds its secrets (RDS Proxy, ElastiCache AUTH). */
export const LambdaConfig = z
  .object({
    /** PostgreSQL URL; when unset, it is built from DB_SECRET_ARN, DB_HOST and DB_NAME. */
    DATABASE_URL: z.string().optional(),
    /** Secrets Manager secret holding the database username and password (JSON), read at cold start. */
    DB_SECRET_ARN: z.string().optional(),
    /** Database host (the RDS Proxy endpoint), port 5432, TLS required. */
    DB_HOST: z.string().optional(),
    /** Database name on DB_HOST. */
    DB_NAME: z.string().default('ackstream'),
    /** Port of the RDS Proxy (or a local PostgreSQL). */
    DB_PORT: port(5432),
    /** TLS to the database (the RDS Proxy requires it); 'disable' only for a local PostgreSQL. */
    DB_SSL: z.enum(['require', 'disable']).default('require'),
    /** ElastiCache AUTH token (a plain-string secret), read at cold start. */
    REDIS_AUTH_TOKEN_SECRET_ARN: z.string().optional(),
  })
  .merge(ProcessorsSharedEnv)
  .refine((c) => c.DATABASE_URL || (c.DB_SECRET_ARN && c.DB_HOST), {
    message: 'set DATABASE_URL, or DB_SECRET_ARN and DB_HOST',
  });
export type LambdaConfig = z.infer<typeof LambdaConfig>;
