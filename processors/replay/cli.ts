/**
 * `npm run replay -- <command>`: composition root of the replay tool. Reads its configuration once
 * (the same environment as the processors), wires the adapters, runs one command, returns the
 * exit code.
 */
import { z } from 'zod';
import { createDocumentClient, createDynamo, createKinesis } from '../../core/aws';
import { AwsEnv, LogEnv, loadConfig, RedisEnv, StreamEnv, TablesEnv } from '../../core/config';
import { createLogger } from '../../core/log';
import { closeRedis, createRedis } from '../../core/redis';
import { DynamoProjectionRegistry, registryTableName } from '../../core/projections';
import { createProgress } from '../../core/progress';
import { createPool, reprocessHandler } from '../composition';
import { abandon, rebuild, type ReplayDeps, retire, sweepRetirements, switchTo } from './rebuild';
import { reprocess } from './reprocess';
import { formatStatus, status } from './status';
import { verify } from './verify';

export const ReplayConfig = z.object({
  /** PostgreSQL of the processors (the event log a rebuild folds, the command store a reprocess commits to). */
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL'),
}).merge(AwsEnv).merge(RedisEnv).merge(StreamEnv).merge(TablesEnv).merge(LogEnv);

export const USAGE = `usage: npm run replay -- <command> [options]
  rebuild   --projection <name> [--from log|stream] [--since <ISO time>] [--keep-old <duration>] [--page-size <n>] [--concurrency <n>]
            build a new version of the projection from the event log (or the stream's retention window),
            switch readers when caught up (rerun the same command to resume a killed rebuild)
  verify    --projection <name> [--max-diffs <n>] [--json]   compare the live read model with the log; exit 1 on a difference
  reprocess --from stream [--since <ISO time>]            feed a stream range through the processors again
  status    [--json]                                        projections, versions, live, progress, lag
  switch    --projection <name> [--version <n>]             make a kept version live again (rollback)
  retire    --projection <name> [--version <n>]             retire kept versions now (or those past --keep-old)
  abandon   --projection <name>                             drop an unfinished rebuild
durations: 0, 90s, 30m, 12h, 7d`;

export class UsageError extends Error {
  override name = 'UsageError';
}

export function parseArgs(argv: string[]): { command: string; flags: Record<string, string | true> } {
  const [command = '', ...rest] = argv;
  const flags: Record<string, string | true> = {};
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument "${a}"`);
    const eq = a.indexOf('=');
    if (eq > 0) flags[a.slice(2, eq)] = a.slice(eq + 1);
    else if (rest[i + 1] !== undefined && !rest[i + 1]!.startsWith('--')) flags[a.slice(2)] = rest[++i]!;
    else flags[a.slice(2)] = true;
  }
  return { command, flags };
}

export function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(s.trim());
  if (!m) throw new UsageError(`invalid duration "${s}" (examples: 0, 90s, 30m, 12h, 7d)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms'];
  return Number(m[1]) * unit;
}

function str(flags: Record<string, string | true>, name: string, required: true): string;
function str(flags: Record<string, string | true>, name: string, required?: false): string | undefined;
function str(flags: Record<string, string | true>, name: string, required = false): string | undefined {
  const v = flags[name];
  if (v === true) throw new UsageError(`--${name} needs a value`);
  if (v === undefined && required) throw new UsageError(`--${name} is required`);
  return v;
}

function int(flags: Record<string, string | true>, name: string): number | undefined {
  const v = str(flags, name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new UsageError(`--${name} must be a positive integer`);
  return Number(v);
}

export interface CliIo {
  out: (line: string) => void;
  err: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean };
}

export async function runReplay(argv: string[], env: NodeJS.ProcessEnv = process.env, io: CliIo = { out: (l) => process.stdout.write(`${l}\n`), err: process.stderr }): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs(argv);
  } catch (err) {
    io.err.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const { command, flags } = parsed;
  if (!command || command === 'help' || flags.help) {
    io.out(USAGE);
    return command ? 0 : 2;
  }
  const config = loadConfig(ReplayConfig, env);
  const log = createLogger(config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL, { service: 'replay' }, (l) => io.err.write(l));
  const pool = createPool(config.DATABASE_URL, 'replay', undefined, log);
  const dynamo = createDynamo({ region: config.AWS_REGION, endpoint: config.DYNAMODB_ENDPOINT });
  const doc = createDocumentClient(dynamo);
  const redis = createRedis(config.REDIS_URL, config.REDIS_AUTH_TOKEN);
  const deps: ReplayDeps = {
    pool, dynamo, doc, redis,
    registry: new DynamoProjectionRegistry(doc, registryTableName(config.ITEMS_TABLE), { itemsTable: config.ITEMS_TABLE, redisPrefix: config.REDIS_PREFIX }),
    itemsTable: config.ITEMS_TABLE,
    requestsTable: config.REQUESTS_TABLE,
    redisPrefix: config.REDIS_PREFIX,
    log: (line) => io.err.write(`${line}\n`),
    ...(env.REPLAY_SETTLE_MS ? { settleMs: Number(env.REPLAY_SETTLE_MS) } : {}),
  };
  try {
    switch (command) {
      case 'rebuild': {
        const projection = str(flags, 'projection', true);
        const from = str(flags, 'from') ?? 'log';
        if (from !== 'log' && from !== 'stream') throw new UsageError('--from must be log or stream');
        const sinceRaw = str(flags, 'since');
        if (sinceRaw !== undefined && from === 'log') throw new UsageError('a log rebuild folds the whole log into a new version; --since applies to --from stream (see docs/RUNBOOK.md)');
        const since = sinceRaw === undefined ? undefined : new Date(sinceRaw);
        if (since && Number.isNaN(since.getTime())) throw new UsageError(`--since must be an ISO time, got "${sinceRaw}"`);
        const pageSize = int(flags, 'page-size');
        const concurrency = int(flags, 'concurrency');
        const kinesis = from === 'stream' ? createKinesis({ region: config.AWS_REGION, endpoint: config.KINESIS_ENDPOINT }) : undefined;
        let res;
        try {
          res = await rebuild({ ...deps, ...(kinesis ? { kinesis, stream: config.KINESIS_STREAM } : {}) }, {
            projection,
            from,
            ...(since ? { since } : {}),
            keepOldMs: parseDuration(str(flags, 'keep-old') ?? '24h'),
            ...(pageSize ? { pageSize } : {}),
            ...(concurrency ? { concurrency } : {}),
            progress: createProgress({ label: `rebuild ${projection}`, out: io.err }),
          });
        } finally {
          kinesis?.destroy();
        }
        io.out(`rebuilt ${projection} v${res.version}${res.resumed ? ' (resumed)' : ''}: ${res.events} events, ${res.items} items in ${res.seconds.toFixed(1)} s; live: v${res.version} (previous v${res.previous} kept)`);
        return 0;
      }
      case 'verify': {
        const maxDiffs = int(flags, 'max-diffs');
        const rep = await verify(deps, { projection: str(flags, 'projection', true), ...(maxDiffs ? { maxDiffs } : {}) });
        if (flags.json) io.out(JSON.stringify(rep, null, 2));
        else {
          io.out(`verify ${rep.projection} v${rep.version} (${rep.table}) against the log up to position ${rep.head}: ${rep.items} items`);
          for (const c of rep.collections) {
            io.out(`  ${c.ok ? 'ok  ' : 'DIFF'} ${c.pk}: log ${c.logCount} items #${c.logChecksum}, read model ${c.modelCount} items #${c.modelChecksum}`);
          }
          for (const d of rep.diffs) io.out(`  differs: ${d.key}: log ${JSON.stringify(d.log ?? null)} read model ${JSON.stringify(d.model ?? null)}`);
          io.out(rep.ok ? 'verify: clean' : `verify: ${rep.diffCount} items differ`);
        }
        return rep.ok ? 0 : 1;
      }
      case 'reprocess': {
        if ((str(flags, 'from') ?? 'stream') !== 'stream') throw new UsageError('reprocess reads the stream (--from stream)');
        const sinceRaw = str(flags, 'since');
        const since = sinceRaw === undefined ? undefined : new Date(sinceRaw);
        if (since && Number.isNaN(since.getTime())) throw new UsageError(`--since must be an ISO time, got "${sinceRaw}"`);
        const handler = reprocessHandler({ config, pool, doc, redis, log });
        const kinesis = createKinesis({ region: config.AWS_REGION, endpoint: config.KINESIS_ENDPOINT });
        try {
          const res = await reprocess({
            kinesis, stream: config.KINESIS_STREAM, region: config.AWS_REGION, handler, ...(since ? { since } : {}),
            log: deps.log, progress: createProgress({ label: 'reprocess', out: io.err }),
          });
          io.out(`reprocessed ${res.records} records from ${res.shards} shards in ${res.seconds.toFixed(1)} s`);
        } finally {
          kinesis.destroy();
        }
        return 0;
      }
      case 'status': {
        const s = await status(deps);
        io.out(flags.json ? JSON.stringify(s, null, 2) : formatStatus(s));
        return 0;
      }
      case 'switch': {
        const version = int(flags, 'version');
        const r = await switchTo(deps, str(flags, 'projection', true), version);
        io.out(`switched readers from v${r.from} to v${r.to}; v${r.from} is kept`);
        return 0;
      }
      case 'retire': {
        const projection = str(flags, 'projection', true);
        const version = int(flags, 'version');
        if (version) await retire(deps, projection, version);
        const swept = version ? [version] : await sweepRetirements(deps, projection);
        io.out(swept.length ? `retired ${swept.map((n) => `v${n}`).join(', ')}` : 'nothing to retire');
        return 0;
      }
      case 'abandon': {
        const n = await abandon(deps, str(flags, 'projection', true));
        io.out(n ? `abandoned the rebuild of v${n}` : 'no rebuild in progress');
        return 0;
      }
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.err.write(`${err.message}\n${USAGE}\n`);
      return 2;
    }
    io.err.write(`replay ${command} failed: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await pool.end();
    await closeRedis(redis);
    dynamo.destroy();
  }
}
