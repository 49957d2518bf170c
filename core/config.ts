/**
 * Configuration is read once, in each service's main.ts, validated with a schema, and fails fast
 * with every problem named.
 */
import { z } from 'zod';
import { ConfigError } from './errors';

export function loadConfig<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  - ${i.path.join('.') || '(env)'}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  return parsed.data;
}

/** Environment fragments shared by the services. */
export const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);
export const optionalUrl = z.string().url().optional();
export const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);

export const AuthEnv = z.object({
  /** HS256 key that signs and verifies the API's JWTs (at least 32 characters). */
  AUTH_SECRET: z.string().min(32, 'AUTH_SECRET must be at least 32 characters (HS256 key)'),
});

export const AwsEnv = z.object({
  /** AWS region of the stream, tables and queue (any value works with the local emulators). */
  AWS_REGION: z.string().default('us-east-1'),
  /** Kinesis endpoint override (the local emulator); unset: AWS's endpoint for AWS_REGION. */
  KINESIS_ENDPOINT: optionalUrl,
  /** DynamoDB endpoint override (the local emulator); unset: AWS's endpoint for AWS_REGION. */
  DYNAMODB_ENDPOINT: optionalUrl,
  /** SQS endpoint override (the local emulator); unset: AWS's endpoint for AWS_REGION. */
  SQS_ENDPOINT: optionalUrl,
});

export const RedisEnv = z.object({
  /** Redis (hot copy, ack log, idempotency, rate limits); rediss:// for TLS. */
  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL').default('redis://127.0.0.1:6379'),
  /** Redis AUTH token (ElastiCache), if the server needs one. */
  REDIS_AUTH_TOKEN: z.string().optional(),
  /** Prefix of every Redis key this deployment uses. */
  REDIS_PREFIX: z.string().default('ackstream:'),
});

export const TablesEnv = z.object({
  /** DynamoDB table of the read model's items (version 1; rebuilt versions add `-v<n>`). */
  ITEMS_TABLE: z.string().default('ackstream-items'),
  /** DynamoDB table of request statuses. */
  REQUESTS_TABLE: z.string().default('ackstream-requests'),
});

export const StreamEnv = z.object({
  /** The Kinesis stream of commands. */
  KINESIS_STREAM: z.string().default('ackstream-commands'),
});

export const LogEnv = z.object({
  /** Structured log lines at this level and above. */
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
});

/** Runs a service's main(): prints configuration errors plainly and exits non-zero. */
export function runMain(main: () => Promise<unknown>): void {
  main().catch((err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
    } else {
      process.stderr.write(`Fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    }
    process.exit(1);
  });
}
