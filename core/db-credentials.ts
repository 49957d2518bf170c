/**
 * PostgreSQL credentials kept in AWS Secrets Manager (an RDS secret: `{ username, password, ... }`),
 * for long-lived processes (warm Lambda containers, tasks) that outlive a password rotation.
 *
 * The password is read once and cached; every new connection asks for it (pg's password function),
 * and a connection refused for bad credentials (SQLSTATE 28P01 / 28000) drops the cache and is tried
 * once more with the secret as it is now. So a rotation costs one failed connect, not a dead container.
 */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { Pool, type PoolClient, type PoolConfig } from 'pg';
import { z } from 'zod';
import { loadConfig } from './config';

export interface DbSecret {
  username: string;
  password: string;
}

/** A secret read on demand and cached until {@link invalidate}; concurrent readers share one call. */
export class CachedSecret<T> {
  private value: Promise<T> | undefined;
  /** How many times the source was read (tests and logs). */
  reads = 0;
  constructor(private readonly read: () => Promise<T>) {}

  get(): Promise<T> {
    this.value ??= (this.reads++, this.read()).catch((err: unknown) => {
      this.value = undefined;
      throw err;
    });
    return this.value;
  }

  invalidate(): void {
    this.value = undefined;
  }
}

/** Reads a plain-string secret (SecretString) with the SDK's default endpoint and credentials resolution. */
export async function readSecretString(region: string, secretId: string): Promise<string> {
  const sm = new SecretsManagerClient({ region });
  try {
    return (await sm.send(new GetSecretValueCommand({ SecretId: secretId }))).SecretString ?? '';
  } finally {
    sm.destroy();
  }
}

export function parseDbSecret(json: string): DbSecret {
  const o = JSON.parse(json) as Partial<DbSecret>;
  if (typeof o.username !== 'string' || typeof o.password !== 'string') throw new Error('database secret has no username/password');
  return { username: o.username, password: o.password };
}

/** Authentication refused: invalid_password (28P01) or invalid_authorization_specification (28000). */
export function isAuthFailure(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === '28P01' || code === '28000';
}

type ConnectCallback = (err: Error | undefined, client: PoolClient | undefined, done: (release?: unknown) => void) => void;

/**
 * A pg Pool whose password comes from a {@link CachedSecret} and is re-read when the server refuses it.
 * The user name is fixed at construction (single-user rotation changes only the password).
 */
export class SecretPool extends Pool {
  constructor(private readonly secret: CachedSecret<DbSecret>, user: string, config: Omit<PoolConfig, 'user' | 'password' | 'connectionString'>) {
    super({ ...config, user, password: async () => (await secret.get()).password });
  }

  override connect(): Promise<PoolClient>;
  override connect(callback: ConnectCallback): void;
  override connect(callback?: ConnectCallback): Promise<PoolClient> | void {
    const attempt = async (): Promise<PoolClient> => {
      try {
        return await super.connect();
      } catch (err) {
        if (!isAuthFailure(err)) throw err;
        this.secret.invalidate(); // rotated since we read it: read again, try once more
        return await super.connect();
      }
    };
    if (!callback) return attempt();
    attempt().then(
      (client) => callback(undefined, client, (release?: unknown) => client.release(release as Error | boolean | undefined)),
      (err: Error) => callback(err, undefined, () => undefined),
    );
  }
}

/**
 * Where a long-lived service (an ECS task) finds PostgreSQL: a URL locally, or the RDS Proxy with the
 * password read from the rotating secret at the first connection and again after a refused login —
 * ECS-injected credentials would go stale at the first rotation.
 */
export const DbConnectionEnv = z.object({
  /** PostgreSQL URL (local); when unset, DB_HOST with the password from DB_SECRET_ARN. */
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL').optional(),
  /** Secrets Manager secret of the database user (JSON `{ username, password }`), read when a connection opens. */
  DB_SECRET_ARN: z.string().optional(),
  /** Database user of DB_SECRET_ARN (single-user rotation changes only its password). */
  DB_USER: z.string().default('ackstream_app'),
  /** Database host (the RDS Proxy endpoint) used with DB_SECRET_ARN. */
  DB_HOST: z.string().optional(),
  /** Port of DB_HOST. */
  DB_PORT: z.coerce.number().int().min(1).max(65535).default(5432),
  /** Database name on DB_HOST. */
  DB_NAME: z.string().default('ackstream'),
  /** TLS to DB_HOST (the RDS Proxy requires it); 'disable' only for a local PostgreSQL. */
  DB_SSL: z.enum(['require', 'disable']).default('require'),
});
export type DbConnectionEnv = z.infer<typeof DbConnectionEnv>;

/** True when {@link openDbPool} can connect with these settings. */
export const hasDbConnection = (c: DbConnectionEnv): boolean => Boolean(c.DATABASE_URL || (c.DB_SECRET_ARN && c.DB_HOST));

/** The pool of {@link DbConnectionEnv}: nothing is read or connected before the first query. */
export function openDbPool(c: DbConnectionEnv, opts: { region: string; max: number }): Pool {
  if (c.DATABASE_URL) return new Pool({ connectionString: c.DATABASE_URL, max: opts.max });
  if (!c.DB_SECRET_ARN || !c.DB_HOST) throw new Error('set DATABASE_URL, or DB_SECRET_ARN and DB_HOST');
  const secretId = c.DB_SECRET_ARN;
  const secret = new CachedSecret(async () => parseDbSecret(await readSecretString(opts.region, secretId)));
  return new SecretPool(secret, c.DB_USER, {
    host: c.DB_HOST, port: c.DB_PORT, database: c.DB_NAME, max: opts.max, ...(c.DB_SSL === 'require' ? { ssl: true } : {}),
  });
}

/**
 * The operator CLIs (`npm run dlq`, `npm run replay`) take DATABASE_URL. In an ECS task the parts
 * arrive separately — DB_HOST/DB_PORT/DB_NAME/DB_SSL as environment, DB_USER/DB_PASSWORD injected
 * from the rotated secret — and are joined here (password URL-encoded). An explicit DATABASE_URL wins.
 */
export const OperatorDbEnv = z.object({
  DATABASE_URL: z.string().optional(),
  DB_HOST: z.string().optional(),
  DB_PORT: z.coerce.number().int().min(1).max(65535).default(5432),
  DB_NAME: z.string().default('ackstream'),
  DB_USER: z.string().optional(),
  DB_PASSWORD: z.string().optional(),
  DB_SSL: z.enum(['require', 'disable']).default('require'),
});

export function withDatabaseUrl(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const c = loadConfig(OperatorDbEnv, env);
  if (c.DATABASE_URL || !c.DB_HOST || !c.DB_USER || c.DB_PASSWORD === undefined) return env;
  const auth = `${encodeURIComponent(c.DB_USER)}:${encodeURIComponent(c.DB_PASSWORD)}`;
  const ssl = c.DB_SSL === 'require' ? '?sslmode=require' : '';
  return { ...env, DATABASE_URL: `postgres://${auth}@${c.DB_HOST}:${c.DB_PORT}/${encodeURIComponent(c.DB_NAME)}${ssl}` };
}
