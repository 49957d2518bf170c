/**
 * The deploy's migration function (a CDK trigger, infra/lib/constructs/migrations.ts): runs the SQL
 * migrations (processors/migrations, bundled next to this file) as the master user, through the RDS
 * Proxy the processors use, then sets the application role's password from its own secret. It runs
 * before the event source mappings exist, on every deploy whose bundle changed; a second run applies
 * nothing (node-pg-migrate records what ran, under an advisory lock) and sets the same password.
 */
import { Client } from 'pg';
import { z } from 'zod';
import { AwsEnv, loadConfig, port } from '../../core/config';
import { parseDbSecret, readSecretString } from '../../core/db-credentials';
import { migrate } from '../../processors/migrate';

export const MigrateConfig = z
  .object({
    /** Local runs and tests: the URL to migrate (superuser); otherwise the master secret + host. */
    DATABASE_URL: z.string().optional(),
    DB_SECRET_ARN: z.string().optional(),
    DB_HOST: z.string().optional(),
    DB_PORT: port(5432),
    DB_NAME: z.string().default('ackstream'),
    DB_SSL: z.enum(['require', 'disable']).default('require'),
    /** The application role's secret ({ username, password }): its password is (re)set on every run. */
    APP_DB_SECRET_ARN: z.string().min(1),
  })
  .merge(AwsEnv)
  .refine((c) => c.DATABASE_URL || (c.DB_SECRET_ARN && c.DB_HOST), { message: 'set DATABASE_URL, or DB_SECRET_ARN and DB_HOST' });
export type MigrateConfig = z.infer<typeof MigrateConfig>;

export interface MigrateResult {
  /** Migrations applied by this run, in order (empty: the schema was already current). */
  applied: string[];
  appUser: string;
}

function connectionString(c: MigrateConfig, master: { username: string; password: string } | undefined): string {
  if (c.DATABASE_URL) return c.DATABASE_URL;
  const auth = `${encodeURIComponent(master!.username)}:${encodeURIComponent(master!.password)}`;
  const ssl = c.DB_SSL === 'require' ? '?sslmode=require' : '';
  return `postgres://${auth}@${c.DB_HOST}:${c.DB_PORT}/${encodeURIComponent(c.DB_NAME)}${ssl}`;
}

export async function handler(): Promise<MigrateResult> {
  const c = loadConfig(MigrateConfig);
  const master = c.DATABASE_URL ? undefined : parseDbSecret(await readSecretString(c.AWS_REGION, c.DB_SECRET_ARN!));
  const url = connectionString(c, master);
  const applied = await migrate(url);
  const app = parseDbSecret(await readSecretString(c.AWS_REGION, c.APP_DB_SECRET_ARN));
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    // ALTER ROLE takes no bind parameters: quote both as literals/identifiers with pg's own escaping.
    await client.query(`ALTER ROLE ${client.escapeIdentifier(app.username)} WITH LOGIN PASSWORD ${client.escapeLiteral(app.password)}`);
  } finally {
    await client.end();
  }
  process.stdout.write(`${JSON.stringify({ level: 'info', msg: 'migrations done', applied, appUser: app.username })}\n`);
  return { applied, appUser: app.username };
}
