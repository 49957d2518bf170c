/**
 * The real stack as CHILD PROCESSES the test owns (`node --import tsx <svc>/main.ts`), so any of
 * them can be `kill -9`ed and restarted: the Kinesis and DynamoDB emulators (persistent data
 * dirs), processors, read API, ack service and gateway. PostgreSQL, Redis and Kinesis are reached
 * through TCP proxies the test controls; the shared servers are never touched beyond the test's
 * own database and Redis key prefix, which close() removes.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { Redis } from 'ioredis';
import { Pool } from 'pg';
import { signToken, type TokenRequest } from '../../core/auth';
import { createDocumentClient, createDynamo, createKinesis } from '../../core/aws';
import { freePort, provision, ROOT, waitForPort } from '../../scripts/local-stack';
import { TcpProxy } from './proxy';
import { BASE_DATABASE_URL, createTestDatabase, dropTestDatabase, REDIS_URL, uniqueName } from './stack';
import { deleteKeysByPrefix } from '../../core/redis';

export type ServiceName = 'kinesis' | 'dynamodb' | 'processors' | 'read-model' | 'ack-service' | 'gateway';

const ENTRY: Record<ServiceName, string[]> = {
  kinesis: [path.join(ROOT, 'scripts/emulator-child.ts'), 'kinesis'],
  dynamodb: [path.join(ROOT, 'scripts/emulator-child.ts'), 'dynamodb'],
  processors: [path.join(ROOT, 'processors/main.ts')],
  'read-model': [path.join(ROOT, 'read-model/main.ts')],
  'ack-service': [path.join(ROOT, 'ack-service/main.ts')],
  gateway: [path.join(ROOT, 'gateway/main.ts')],
};

/** One service process; its stdout and stderr are kept for the test to inspect. */
export class ChildService {
  proc: ChildProcess | undefined;
  readonly output: string[] = [];
  readonly pids: number[] = [];
  starts = 0;
  /** Index in `output` where the latest run's output begins. */
  startIndex = 0;
  private exitWaiters: Array<() => void> = [];

  constructor(
    readonly name: ServiceName,
    readonly port: number,
    private readonly args: string[],
    private readonly env: () => NodeJS.ProcessEnv,
    private readonly ready: (svc: ChildService) => Promise<void>,
  ) {}

  get running(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  async start(): Promise<void> {
    this.startIndex = this.output.length;
    const child = spawn(process.execPath, ['--import', 'tsx', ...this.args], {
      cwd: ROOT,
      env: this.env(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = child;
    this.starts++;
    if (child.pid) this.pids.push(child.pid);
    child.stdout!.setEncoding('utf8').on('data', (c: string) => this.output.push(c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => this.output.push(c));
    child.once('exit', () => {
      const w = this.exitWaiters;
      this.exitWaiters = [];
      for (const f of w) f();
    });
    await this.ready(this);
  }

  text(): string {
    return this.output.join('');
  }

  /** Resolves when `needle` has appeared in the output since index `from`. */
  async waitForOutput(needle: string, from = 0, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.output.slice(from).join('').includes(needle)) {
      if (!this.running) throw new Error(`${this.name} exited before "${needle}":\n${this.text().slice(-3000)}`);
      if (Date.now() > deadline) throw new Error(`${this.name}: no "${needle}" within ${timeoutMs} ms:\n${this.text().slice(-3000)}`);
      await sleep(50);
    }
  }

  /** Sends a signal and waits for the process to be gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.proc;
    if (!child || !this.running) return;
    const gone = new Promise<void>((resolve) => this.exitWaiters.push(resolve));
    child.kill(signal);
    await gone;
  }

  async restart(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.kill(signal);
    await this.start();
  }

  /** Resident memory of the running process in MiB (Linux /proc). */
  rssMiB(): number | undefined {
    if (!this.running || !this.proc?.pid) return undefined;
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.proc.pid}/status`, 'utf8'));
      return m ? Number(m[1]) / 1024 : undefined;
    } catch {
      return undefined;
    }
  }
}

export interface ProcessStackOptions {
  shardCount?: number;
  /** Extra environment for every service (e.g. LOG_LEVEL). */
  env?: Record<string, string>;
  services?: Array<'processors' | 'read-model' | 'ack-service' | 'gateway'>;
}

export interface ProcessStack {
  name: string;
  secret: string;
  env: NodeJS.ProcessEnv;
  dataDir: string;
  databaseUrl: string;
  redisPrefix: string;
  gatewayUrl: string;
  readUrl: string;
  ackUrl: string;
  /** Direct connections (not through the proxies), for the test's own checks. */
  pg: Pool;
  redis: Redis;
  dynamo: DynamoDBClient;
  doc: DynamoDBDocumentClient;
  proxies: { pg: TcpProxy; redis: TcpProxy; kinesis: TcpProxy };
  services: Record<ServiceName, ChildService>;
  token(req: Partial<TokenRequest> & { tenant: string; sub: string }): Promise<string>;
  /** Every pid this stack ever started that is still alive (none after close()). */
  livePids(): number[];
  close(): Promise<void>;
}

export async function startProcessStack(label: string, opts: ProcessStackOptions = {}): Promise<ProcessStack> {
  const name = uniqueName(label);
  const dataDir = mkdtempSync(path.join(tmpdir(), `${name}-`));
  const databaseUrl = await createTestDatabase(name);
  const redisPrefix = `test:${name}:`;
  const secret = randomBytes(32).toString('base64url');
  const pgTarget = new URL(BASE_DATABASE_URL);
  const redisTarget = new URL(REDIS_URL);
  const kinesisPort = await freePort();
  const dynamoPort = await freePort();
  const proxies = {
    pg: new TcpProxy('postgres', pgTarget.hostname, Number(pgTarget.port || 5432)),
    redis: new TcpProxy('redis', redisTarget.hostname, Number(redisTarget.port || 6379)),
    kinesis: new TcpProxy('kinesis', '127.0.0.1', kinesisPort),
  };
  for (const p of Object.values(proxies)) await p.start();
  const proxiedDb = new URL(databaseUrl);
  proxiedDb.host = proxies.pg.url;
  const proxiedRedis = new URL(REDIS_URL);
  proxiedRedis.host = proxies.redis.url;

  const ports = {
    gateway: await freePort(),
    'read-model': await freePort(),
    'ack-service': await freePort(),
  };
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'test',
    AUTH_SECRET: secret,
    AWS_REGION: 'us-east-1',
    // The emulators accept any credentials; set so the SDK never looks elsewhere.
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    DATABASE_URL: proxiedDb.toString(),
    REDIS_URL: proxiedRedis.toString(),
    REDIS_PREFIX: redisPrefix,
    KINESIS_ENDPOINT: `http://${proxies.kinesis.url}`,
    DYNAMODB_ENDPOINT: `http://127.0.0.1:${dynamoPort}`,
    KINESIS_STREAM: `${name}-commands`,
    ITEMS_TABLE: `${name}-items`,
    REQUESTS_TABLE: `${name}-requests`,
    GATEWAY_PORT: String(ports.gateway),
    READ_PORT: String(ports['read-model']),
    ACK_PORT: String(ports['ack-service']),
    LOG_LEVEL: 'info',
    POLL_INTERVAL_MS: '10',
    RETRY_DELAY_MS: '100',
    ...opts.env,
  };

  const onPort = (port: number) => async (svc: ChildService) => waitForPort(port, () => !svc.running, 60_000);
  const mk = (svc: ServiceName, port: number, extra: string[], ready: (s: ChildService) => Promise<void>) =>
    new ChildService(svc, port, [...ENTRY[svc], ...extra], () => env, ready);
  const services: Record<ServiceName, ChildService> = {
    kinesis: mk('kinesis', kinesisPort, [String(kinesisPort), path.join(dataDir, 'kinesis')], onPort(kinesisPort)),
    dynamodb: mk('dynamodb', dynamoPort, [String(dynamoPort), path.join(dataDir, 'dynamodb')], onPort(dynamoPort)),
    processors: mk('processors', 0, [], async (s) => s.waitForOutput('processors started', s.startIndex, 60_000)),
    'read-model': mk('read-model', ports['read-model'], [], onPort(ports['read-model'])),
    'ack-service': mk('ack-service', ports['ack-service'], [], onPort(ports['ack-service'])),
    gateway: mk('gateway', ports.gateway, [], onPort(ports.gateway)),
  };

  const pg = new Pool({ connectionString: databaseUrl, max: 3 });
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  const dynamo = createDynamo({ region: 'us-east-1', endpoint: env.DYNAMODB_ENDPOINT });
  const stack: ProcessStack = {
    name, secret, env, dataDir, databaseUrl, redisPrefix,
    gatewayUrl: `http://127.0.0.1:${ports.gateway}`,
    readUrl: `http://127.0.0.1:${ports['read-model']}`,
    ackUrl: `ws://127.0.0.1:${ports['ack-service']}`,
    pg, redis, dynamo, doc: createDocumentClient(dynamo), proxies, services,
    token: (req) => signToken(secret, req),
    livePids() {
      return Object.values(services).flatMap((s) => s.pids).filter(isAlive);
    },
    async close() {
      for (const svc of ['gateway', 'ack-service', 'read-model', 'processors', 'dynamodb', 'kinesis'] as const) {
        await services[svc].kill('SIGTERM');
      }
      for (const p of Object.values(proxies)) await p.close();
      await pg.end();
      dynamo.destroy();
      await dropTestDatabase(name);
      await deleteKeysByPrefix(redis, redisPrefix);
      redis.disconnect();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };

  try {
    await services.kinesis.start();
    await services.dynamodb.start();
    const kinesis = createKinesis({ region: 'us-east-1', endpoint: `http://127.0.0.1:${kinesisPort}` });
    await provision({
      kinesis, dynamo, stream: env.KINESIS_STREAM!, shardCount: opts.shardCount ?? 2,
      itemsTable: env.ITEMS_TABLE!, requestsTable: env.REQUESTS_TABLE!, databaseUrl,
    });
    kinesis.destroy();
    // The processors migrate on start: start them alone first so the others find the schema.
    for (const svc of opts.services ?? (['processors', 'read-model', 'ack-service', 'gateway'] as const)) {
      await services[svc].start();
    }
  } catch (err) {
    await stack.close().catch(() => undefined);
    throw err;
  }
  return stack;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
