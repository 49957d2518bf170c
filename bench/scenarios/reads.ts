/**
 * reads: the read API under hot-key traffic. Zipf-distributed keys (s = 1) over 100 k items
 * (10 k with --quick) seeded straight into Redis through the store, 64 keep-alive connections,
 * wrk (when installed; autocannon otherwise) as the client; and in the same run a bare node:http server answering a constant 1 KB
 * body, the ceiling of this machine. Both servers run in their own process (the load generator in this one
 * would steal their CPU); the read API runs as `node --import tsx read-model/main.ts`.
 *
 * Standalone: `npx tsx bench/scenarios/reads.ts [--quick]`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { procStat, TICK_MS } from '../proc-stat';
import { tmpdir } from 'node:os';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import { signToken } from '../../core/auth';
import { createDocumentClient, createDynamo } from '../../core/aws';
import { DynamoDurableStore, ensureTable, itemsTableDefinition, RedisHotStore } from '../../core/read-store';
import { freePort, stopChild, waitForPort } from '../../scripts/local-stack';
import type { BenchContext, Figure, ScenarioResult, Series } from '../types';
import { deleteKeysByPrefix } from '../../core/redis';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const dynalite = require('dynalite') as (opts: Record<string, unknown>) => Server;

const ROOT = path.resolve(__dirname, '..', '..');
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const CONNECTIONS = 64;
const TENANT = 'bench';
const COLLECTION = 'items';

/** Key indices drawn from Zipf(s) over n keys (inverse CDF, binary search), reproducible. */
export function zipfSample(n: number, s: number, count: number): Uint32Array {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) cdf[i] = sum += 1 / Math.pow(i + 1, s);
  let seed = 42;
  // 32-bit LCG in integer arithmetic: in doubles, seed * 1103515245 loses its low bits and the
  // sequence fell into a short cycle (≈ 5.3 k distinct keys in 200 k draws instead of ≈ 38 k).
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const out = new Uint32Array(count);
  for (let k = 0; k < count; k++) {
    const u = rand() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    out[k] = lo;
  }
  return out;
}

function docFor(i: number, at: string): string {
  // ≈ 1 KB, like the ceiling's body
  return JSON.stringify({ collection: COLLECTION, id: `i${i}`, version: 1, updatedAt: at, data: { n: i, text: 'x'.repeat(900) } });
}

interface Run {
  /** CPU seconds the load generator used, when it ran in another process (wrk). */
  clientCpuSeconds?: number;
  rps: number;
  total: number;
  latency: { p50: number; p95: number; p99: number; max: number; mean: number };
  non2xx: number;
  errors: number;
  perSecond: number[];
}

/** Where a request sequence goes on: the measured run continues after its warm-up, it does not replay it. */
interface Cursor {
  next: number;
}

async function loadAutocannon(ctx: BenchContext, label: string, url: string, seconds: number, paths: string[] | undefined, headers: Record<string, string>, cursor: Cursor = { next: 0 }): Promise<Run> {
  const perSecond: number[] = [];
  const instance = autocannon({
    url,
    connections: CONNECTIONS,
    duration: seconds,
    headers,
    ...(paths
      ? {
          requests: [
            {
              setupRequest: (req: { path?: string }) => {
                req.path = paths[cursor.next++ % paths.length];
                return req;
              },
            },
          ],
        }
      : {}),
  } as autocannon.Options) as unknown as Promise<autocannon.Result> & { on(ev: 'tick', f: (c: { counter: number }) => void): void };
  instance.on('tick', (c: { counter: number }) => {
    if (perSecond.length >= seconds) return; // autocannon's closing partial tick
    perSecond.push(c.counter);
    ctx.progress(perSecond.length, seconds, label);
  });
  const r = await instance;
  const l = r.latency as unknown as Record<string, number>;
  return {
    rps: r.requests.average,
    total: r.requests.total,
    // autocannon's histogram has no p95 bucket: p97.5 stands in for it (stricter)
    latency: { p50: l.p50!, p95: l.p97_5!, p99: l.p99!, max: l.max!, mean: l.average! },
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
    perSecond,
  };
}

/**
 * wrk (C, one thread, 64 connections) as the load generator, when it is installed (`apt-get install
 * wrk`): it costs a fraction of autocannon's CPU per request, so on 2 shared cores the servers, not
 * the client, run out first. The request sequence is the same: a file of paths, walked in order
 * from the cursor on, the token in a header.
 */
const WRK_SCRIPT = `
local paths, i = {}, 0
init = function(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  i = tonumber(args[2]) or 0
end
request = function()
  i = i + 1
  if i > #paths then i = 1 end
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKJSON {\\"requests\\":%d,\\"us\\":%d,\\"p50\\":%.3f,\\"p95\\":%.3f,\\"p99\\":%.3f,\\"max\\":%.3f,\\"mean\\":%.3f,\\"non2xx\\":%d,\\"errors\\":%d}\\n",
    summary.requests, summary.duration, latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, latency.mean / 1000, e.status, e.connect + e.read + e.write + e.timeout))
end
`;

export function wrkAvailable(): boolean {
  if (process.env.BENCH_LOADGEN === 'autocannon') return false;
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    return true;
  } catch (err) {
    // wrk --version exits 1 after printing its version
    return (err as { status?: number }).status === 1;
  }
}

export async function loadWrk(ctx: BenchContext, label: string, url: string, seconds: number, paths: string[] | undefined, headers: Record<string, string>, cursor: Cursor = { next: 0 }): Promise<Run> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ackstream-wrk-'));
  try {
    const script = path.join(dir, 'paths.lua');
    writeFileSync(script, WRK_SCRIPT);
    const pathFile = path.join(dir, 'paths.txt');
    writeFileSync(pathFile, `${(paths ?? [new URL(url).pathname]).join('\n')}\n`);
    const args = ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--timeout', '5s', '-s', script];
    for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
    args.push(url, '--', pathFile, String(cursor.next % Math.max(1, paths?.length ?? 1)));
    const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    // wrk's CPU, sampled until it exits (a finished process has no /proc entry to read).
    let cpu = 0;
    let tick = 0;
    const sampler = setInterval(() => {
      const c = processCpuSeconds(child.pid);
      if (Number.isFinite(c)) cpu = c;
      ctx.progress(Math.min(seconds, ++tick / 5), seconds, label);
    }, 200);
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    clearInterval(sampler);
    const line = out.split('\n').find((l) => l.startsWith('WRKJSON '));
    if (code !== 0 || !line) throw new Error(`wrk failed (${code}): ${out.slice(-500)}`);
    const j = JSON.parse(line.slice(8)) as { requests: number; us: number; p50: number; p95: number; p99: number; max: number; mean: number; non2xx: number; errors: number };
    if (paths) cursor.next += j.requests;
    return {
      clientCpuSeconds: cpu,
      rps: j.requests / (j.us / 1e6),
      total: j.requests,
      latency: { p50: j.p50, p95: j.p95, p99: j.p99, max: j.max, mean: j.mean },
      non2xx: j.non2xx,
      errors: j.errors,
      perSecond: [],
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** CPU seconds (user + system) a process used so far, from /proc (Linux; USER_HZ is 100 there). */
export function processCpuSeconds(pid: number | undefined): number {
  const t = processCpuTimes(pid);
  return t.user + t.system;
}

/** User and system (kernel: TCP, wake-ups of the peer) CPU seconds of a process so far. */
function processCpuTimes(pid: number | undefined): { user: number; system: number } {
  const s = pid === undefined ? undefined : procStat(pid);
  return s ? { user: (s.utime * TICK_MS) / 1000, system: (s.stime * TICK_MS) / 1000 } : { user: NaN, system: NaN };
}

/** CPU per request of each party during one load run: the server, the load generator (this process), Redis. */
interface Cost {
  serverUs: number;
  /** The part of serverUs spent in the kernel. */
  serverSysUs: number;
  clientUs: number;
  redisUs: number;
  /** Redis keyspace reads (hits + misses) per request. */
  redisReads: number;
}

async function redisCounters(redis: Redis): Promise<{ cpu: number; reads: number }> {
  const info = await redis.info();
  const n = (k: string) => Number(new RegExp(`^${k}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN);
  return { cpu: n('used_cpu_sys') + n('used_cpu_user'), reads: n('keyspace_hits') + n('keyspace_misses') };
}

/** Runs `run` and measures what it cost. Redis is the machine's shared server: bench runs hold the machine's lock. */
async function withCost(redis: Redis, serverPid: number | undefined, run: () => Promise<Run>): Promise<Run & { cost: Cost }> {
  const server0 = processCpuSeconds(serverPid);
  const serverSys0 = processCpuTimes(serverPid).system;
  const client0 = process.cpuUsage();
  const redis0 = await redisCounters(redis);
  const r = await run();
  const client = process.cpuUsage(client0);
  const clientSeconds = r.clientCpuSeconds ?? (client.user + client.system) / 1e6;
  const redis1 = await redisCounters(redis);
  const per = (seconds: number) => Math.round((seconds * 1e6) / Math.max(1, r.total) * 10) / 10;
  return {
    ...r,
    cost: {
      serverUs: per(processCpuSeconds(serverPid) - server0),
      serverSysUs: per(processCpuTimes(serverPid).system - serverSys0),
      clientUs: per(clientSeconds),
      redisUs: per(redis1.cpu - redis0.cpu),
      redisReads: Math.round(((redis1.reads - redis0.reads) / Math.max(1, r.total)) * 1000) / 1000,
    },
  };
}

function spawnNode(args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
  return child;
}

const CEILING_SERVER = `
const body = Buffer.alloc(1024, 'x');
require('node:http').createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': body.length });
  res.end(body);
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

// The contract floor: bare node:http doing only what API contract v1 makes every item GET do, with
// nothing behind it: find the path's collection and id, look at the Authorization and If-None-Match
// headers, and answer a constant 1 KB body with the item headers the contract requires (ETag,
// Cache-Control, Vary). No token check, no lookup. The read API can be no faster than this here.
export const CONTRACT_FLOOR_SERVER = `
const body = Buffer.alloc(1024, 'x');
require('node:http').createServer((req, res) => {
  const seg = req.url.split('/');
  const auth = req.headers.authorization;
  const inm = req.headers['if-none-match'];
  if (seg.length !== 6 || auth === undefined || inm === '"1"') {
    res.writeHead(404, { 'Content-Length': 0 });
    res.end();
    return;
  }
  res.writeHead(200, ['Content-Type', 'application/json', 'ETag', '"1"', 'Cache-Control', 'private, no-cache', 'Vary', 'Authorization', 'Content-Length', body.length]);
  res.end(body);
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

export async function run(ctx: BenchContext): Promise<ScenarioResult> {
  const nItems = ctx.quick ? 10_000 : 100_000;
  const seconds = ctx.quick ? 3 : 10;
  const warmup = ctx.quick ? 1 : 3;
  const prefix = `bench:reads:${randomBytes(4).toString('hex')}:`;
  const secret = randomBytes(32).toString('base64url');
  const redis = new Redis(REDIS_URL, { enableAutoPipelining: true });
  const dyn = dynalite({ createTableMs: 0 });
  const dynPort = await new Promise<number>((resolve) => dyn.listen(0, '127.0.0.1', () => resolve((dyn.address() as { port: number }).port)));
  const dynamo = createDynamo({ region: 'us-east-1', endpoint: `http://127.0.0.1:${dynPort}` });
  const children: ChildProcess[] = [];
  try {
    await ensureTable(dynamo, itemsTableDefinition('bench-items')); // the items table every runtime uses
    const hot = new RedisHotStore(redis, prefix);
    const durable = new DynamoDurableStore(createDocumentClient(dynamo), 'bench-items', 'bench-requests');
    const at = new Date().toISOString();
    for (let i = 0; i < nItems; i += 2000) {
      const batch = [];
      for (let j = i; j < Math.min(i + 2000, nItems); j++) {
        batch.push(hot.putItem({ tenant: TENANT, collection: COLLECTION, id: `i${j}`, version: 1, updatedAt: at, json: docFor(j, at) }));
      }
      await Promise.all(batch);
      ctx.progress(Math.min(i + 2000, nItems), nItems, 'seed Redis');
    }
    // DynamoDB (the emulator, slow to load) gets the hottest keys only: the run is all Redis hits,
    // the durable copy is there for misses.
    const durableCount = ctx.quick ? 200 : 2000;
    for (let i = 0; i < durableCount; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, k) => durable.putItem({ tenant: TENANT, collection: COLLECTION, id: `i${i + k}`, version: 1, updatedAt: at, json: docFor(i + k, at) })));
      ctx.progress(i + 50, durableCount, 'seed DynamoDB');
    }

    const readPort = await freePort();
    // BENCH_READ_API_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=.prof", profiles the read API under this load.
    const extraArgs = (process.env.BENCH_READ_API_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const readApi = spawnNode([...extraArgs, '--import', 'tsx', 'read-model/main.ts'], {
      READ_PORT: String(readPort), AUTH_SECRET: secret, REDIS_URL, REDIS_PREFIX: prefix,
      DYNAMODB_ENDPOINT: `http://127.0.0.1:${dynPort}`, ITEMS_TABLE: 'bench-items', REQUESTS_TABLE: 'bench-requests', LOG_LEVEL: 'warn',
    });
    children.push(readApi);
    const ceilingPort = await freePort();
    // BENCH_CEILING_NODE_ARGS profiles the ceiling the same way (to compare where the time goes).
    const ceilingArgs = (process.env.BENCH_CEILING_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const ceiling = spawnNode([...ceilingArgs, '-e', CEILING_SERVER], { PORT: String(ceilingPort) });
    children.push(ceiling);
    const floorPort = await freePort();
    const floor = spawnNode(['-e', CONTRACT_FLOOR_SERVER], { PORT: String(floorPort) });
    children.push(floor);
    await waitForPort(readPort, () => readApi.exitCode !== null, 30_000);
    await waitForPort(ceilingPort, () => ceiling.exitCode !== null);
    await waitForPort(floorPort, () => floor.exitCode !== null);

    const token = await signToken(secret, { tenant: TENANT, sub: 'bench', ttlSeconds: 3600 });
    const auth = { authorization: `Bearer ${token}` };
    const paths = Array.from(zipfSample(nItems, 1, 200_000), (i) => `/v1/collections/${COLLECTION}/items/i${i}`);
    const readUrl = `http://127.0.0.1:${readPort}`;
    const ceilingUrl = `http://127.0.0.1:${ceilingPort}/`;
    const floorUrl = `http://127.0.0.1:${floorPort}`;

    const useWrk = wrkAvailable();
    const generator = useWrk ? 'wrk (1 thread)' : 'autocannon';
    const load = useWrk ? loadWrk : loadAutocannon;
    ctx.log(`reads: ${nItems} items, ${CONNECTIONS} connections, ${seconds} s per server (+${warmup} s warm-up), load: ${generator}`);
    await load(ctx, 'warm-up ceiling', ceilingUrl, warmup, undefined, {});
    // Two ceilings. autocannon shares the 2 cores with the server, and a request rebuilt per call
    // (setupRequest: a new path each time, with the token) costs it about twice the CPU of one
    // prebuilt request; so the ceiling the ratio is taken against gets exactly the read API's
    // requests. The one-fixed-request ceiling (what this scenario measured before 2026-12-01)
    // is kept for comparison.
    const baseFixed = await withCost(redis, ceiling.pid, () => load(ctx, 'ceiling, one fixed request', ceilingUrl, seconds, undefined, {}));
    const base = await withCost(redis, ceiling.pid, () => load(ctx, 'ceiling, same requests', ceilingUrl, seconds, paths, auth));
    await load(ctx, 'warm-up contract floor', floorUrl, warmup, paths, auth);
    const contract = await withCost(redis, floor.pid, () => load(ctx, 'contract floor, same requests', floorUrl, seconds, paths, auth));
    const sequence: Cursor = { next: 0 };
    await load(ctx, 'warm-up reads', readUrl, warmup, paths, auth, sequence);
    // Redis keyspace reads during the run = reads the near cache did not answer.
    const reads = await withCost(redis, readApi.pid, () => load(ctx, 'reads', readUrl, seconds, paths, auth, sequence));
    const redisPerRead = reads.cost.redisReads;
    if (reads.non2xx || reads.errors) ctx.log(`reads: ${reads.non2xx} non-2xx, ${reads.errors} errors`);

    const fig = (name: string, r: Run): Figure => ({ name, value: Math.round(r.rps), unit: 'req/s', latency: r.latency });
    const series = (name: string, r: Run): Series => ({ name, unit: 'req/s', points: r.perSecond.map((v, i) => [i + 1, v]) });
    const ratio = reads.rps / base.rps;
    const ratioFixed = reads.rps / baseFixed.rps;
    return {
      scenario: 'reads',
      figures: [
        fig('read API, Zipf item GETs', reads),
        { name: 'read API non-2xx + errors', value: reads.non2xx + reads.errors, unit: 'count' },
        { name: 'Redis reads per request (near cache misses)', value: Math.round(redisPerRead * 1000) / 1000, unit: 'ratio' },
        { name: 'distinct keys in the request sequence', value: new Set(paths).size, unit: 'count' },
        // CPU per request of each process (client-independent: the throughput above is bounded by
        // whichever of server, autocannon and Redis runs out of the 2 shared cores first).
        ...(
          [
            ['read API', reads],
            ['ceiling, same requests', base],
            ['ceiling, one fixed request', baseFixed],
            ['contract floor, same requests', contract],
          ] as const
        ).flatMap(([who, r]) => [
          { name: `CPU per request, ${who}: server`, value: r.cost.serverUs, unit: 'µs' },
          { name: `CPU per request, ${who}: server, of it in the kernel`, value: r.cost.serverSysUs, unit: 'µs' },
          { name: `CPU per request, ${who}: load generator (${generator})`, value: r.cost.clientUs, unit: 'µs' },
          { name: `CPU per request, ${who}: redis-server`, value: r.cost.redisUs, unit: 'µs' },
        ]),
        { name: 'items', value: nItems, unit: 'count' },
      ],
      baseline: {
        name: 'bare node:http, constant 1 KB',
        figures: [fig('ceiling (same requests as the read API)', base), fig('ceiling (one fixed request, as measured before)', baseFixed), fig('contract floor (same requests; the contract\'s item headers, no lookup)', contract)],
      },
      ratios: [
        { name: 'read API / ceiling throughput', value: Math.round(ratio * 1000) / 1000 },
        { name: 'read API / one-fixed-request ceiling throughput', value: Math.round(ratioFixed * 1000) / 1000 },
        { name: 'contract floor / ceiling throughput', value: Math.round((contract.rps / base.rps) * 1000) / 1000 },
        { name: 'read API / contract floor throughput', value: Math.round((reads.rps / contract.rps) * 1000) / 1000 },
      ],
      // wrk reports totals, not a per-second count: no throughput-over-time series then.
      series: useWrk ? [] : [series('read API', reads), series('ceiling', base), series('ceiling, one fixed request', baseFixed), series('contract floor', contract)],
      notes: [
        `goal: ratio >= 0.8 and p99 <= 10 ms; got ratio ${ratio.toFixed(2)} (${ratioFixed.toFixed(2)} against the one-fixed-request ceiling), p99 ${reads.latency.p99} ms (ceiling p99 ${base.latency.p99} ms)`,
        'every GET is a hit of the near cache or of Redis (HMGET v d through ioredis auto-pipelining); JWTs come from the verified-token cache',
        `load generator: ${generator}${useWrk ? '' : ' (latency p95 is autocannon p97.5)'}; 2 shared cores: the load generator, the server and Redis compete, numbers are noisy`,
      ],
    };
  } finally {
    for (const c of children) await stopChild(c);
    await deleteKeysByPrefix(redis, prefix);
    redis.disconnect();
    dynamo.destroy();
    await new Promise<void>((resolve) => dyn.close(() => resolve()));
  }
}

if (require.main === module) {
  const quick = process.argv.includes('--quick');
  let last = '';
  run({
    quick,
    progress: (done, total, label) => {
      const line = `${label ?? ''} ${Math.round((100 * done) / Math.max(total, 1))}%`;
      if (line !== last) process.stderr.write(`\r${(last = line).padEnd(40)}`);
    },
    log: (l) => process.stderr.write(`\n${l}\n`),
  })
    .then((r) => {
      process.stdout.write(`\n${JSON.stringify(r, null, 2)}\n`);
      process.exit(0);
    })
    .catch((err: unknown) => {
      process.stderr.write(`\n${(err as Error).stack}\n`);
      process.exit(1);
    });
}
