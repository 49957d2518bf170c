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
  AUTH_SECRET: z.string().min(32, 'AUTH_SECRET must be at least 32 characters (HS256 key)'),
});

export const AwsEnv = z.object({
  AWS_REGION: z.string().default('us-east-1'),
  KINESIS_ENDPOINT: optionalUrl,
  DYNAMODB_ENDPOINT: optionalUrl,
  SQS_ENDPOINT: optionalUrl,
});

export const RedisEnv = z.object({
  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL').default('redis://127.0.0.1:6379'),
  REDIS_AUTH_TOKEN: z.string().optional(),
  REDIS_PREFIX: z.string().default('ackstream:'),
});

export const TablesEnv = z.object({
  ITEMS_TABLE: z.string().default('ackstream-items'),
  REQUESTS_TABLE: z.string().default('ackstream-requests'),
});

export const StreamEnv = z.object({
  KINESIS_STREAM: z.string().default('ackstream-commands'),
});

/**
 * HTTP server timeouts. Behind a load balancer, an idle keep-alive connection must outlive the
 * balancer's idle timeout, or the balancer reuses a socket the server just closed (sporadic 502s):
 * the stack sets this above the ALB's idle timeout (infra/lib/ackstream-stack.ts).
 */
export const HttpEnv = z.object({
  HTTP_KEEP_ALIVE_MS: z.coerce.number().int().min(1000).max(3_600_000).default(65_000),
});

/** Applies {@link HttpEnv} to a server: headers timeout just above keep-alive, as Node requires. */
export function applyHttpTimeouts(server: { keepAliveTimeout: number; headersTimeout: number }, c: { HTTP_KEEP_ALIVE_MS: number }): void {
  server.keepAliveTimeout = c.HTTP_KEEP_ALIVE_MS;
  server.headersTimeout = c.HTTP_KEEP_ALIVE_MS + 1000;
}

export const LogEnv = z.object({
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
