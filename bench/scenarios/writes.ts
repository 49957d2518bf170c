/**
 * writes: sustained accepted writes/s and `queued` latency (the 202 carries the stream position,
 * so request latency = queued latency) for 1 KB bodies at several concurrency levels, plus a fixed
 * 1,000 writes/s run; in the same run the same load against an express app that answers 202 doing
 * nothing (the framework's ceiling on this machine).
 *
 * Every part has its own process or thread, so the comparison is gateway vs framework and not
 * load generator vs server on one event loop: the gateway runs as `node --import tsx
 * gateway/main.ts` (its production entry point), the ceiling as its own node process, autocannon
 * in a worker thread, kinesalite (4 shards) in a child process; Redis is the machine's.
 * Load: 127.0.0.1 only, bounded in time.
 *
 * Where the latency is: the gateway's own histograms give, per level, the time from request to 202
 * inside the gateway and the PutRecords call's duration. Second baseline, same run: kinesalite's own
 * PutRecords rate without the gateway (the gateway's HTTP sender, 4 calls in flight), to tell
 * whether the emulator on the same cores is what bounds the gateway. Third baseline, same run and
 * same load: the stream floor (bench/servers/stream-floor.ts): express + JSON body + the gateway's
 * own micro-batched PutRecords and nothing else, the least any gateway that answers only after the
 * stream accepted the write must do; its ratio to the ceiling bounds what the gateway can reach here.
 *
 * BENCH_PROFILE_DIR=<dir>: the gateway (and kinesalite, into <dir>/kinesalite) run with `--cpu-prof`.
 * Standalone: `npx tsx bench/scenarios/writes.ts [--quick]`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Redis } from 'ioredis';
import { CreateStreamCommand, DescribeStreamSummaryCommand, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { signToken } from '../../core/auth';
import { createKinesis } from '../../core/aws';
import { HttpKinesisClient } from '../../core/kinesis-http';
import { freePort, stopChild, waitForPort } from '../../scripts/local-stack';
import type { BenchContext, Figure, ScenarioResult } from '../types';
import { deleteKeysByPrefix } from '../../core/redis';

const ROOT = path.resolve(__dirname, '..', '..');
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

interface Level {
  name: string;
  connections: number;
  rate?: number;
}

/** What the load worker reports (autocannon's result, reduced to what the figures need). */
interface LoadRun {
  ok: number;
  non2xx: number;
  errors: number;
  /** How long the level ran (the fixed-rate level ends when its last answer is in). */
  seconds: number;
  latency: { p50: number; p95: number; p99: number; max: number; average: number };
}

async function startKinesalite(): Promise<{ endpoint: string; child: ChildProcess }> {
  const profileDir = process.env.BENCH_PROFILE_DIR;
  const child = spawn(
    process.execPath,
    [...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}/kinesalite`] : []), '-e', "require('kinesalite')({createStreamMs:0,shardLimit:100}).listen(0,'127.0.0.1',function(){console.log(this.address().port)});process.on('SIGTERM',()=>process.exit(0))"],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (c) => reject(new Error(`kinesalite exited ${c}`)));
  });
  return { endpoint: `http://127.0.0.1:${port}`, child };
}

// The framework's ceiling: express 5 answering the gateway's 202 body without doing anything.
const CEILING_SERVER = `
const express = require('express');
const app = express();
app.disable('x-powered-by');
app.put('/v1/collections/:collection/items/:id', (_req, res) => {
  res.status(202).json({ requestId: 'x', status: 'queued', shardId: 'shardId-000000000000', sequenceNumber: '1' });
});
app.listen(Number(process.env.PORT), '127.0.0.1');
`;

// The load generator runs in a worker thread: its own event loop, not the servers' (they are other processes).
// Closed loop (c=N): autocannon. Fixed rate: autocannon's `overallRate` is a per-second quota that
// each connection fires back to back at the start of every second (a burst of 1,000 at once, not a
// rate), so the fixed-rate level is an open-loop generator here: one PUT every 1/rate s on a
// keep-alive pool of N connections, latency measured from the scheduled send time (no coordinated omission).
const LOAD_WORKER = `
const { parentPort, workerData: d } = require('node:worker_threads');
const body = JSON.stringify({ text: 'x'.repeat(1000) }); // ~1 KB
// Spread over 1,000 items (and so over shards), as real traffic would be.
let n = 0;
const nextPath = () => '/v1/collections/bench/items/i' + (n++ % 1000);
const headers = { authorization: 'Bearer ' + d.token, 'content-type': 'application/json' };
const done = (m) => parentPort.postMessage(m);

if (!d.rate) {
  const autocannon = require('autocannon');
  const opts = {
    url: d.url, connections: d.connections, duration: d.seconds,
    requests: [{ method: 'PUT', body, headers, setupRequest: (req) => ({ ...req, path: nextPath() }) }],
  };
  autocannon(opts, (err, raw) => {
    if (err) return done({ error: String((err && err.stack) || err) });
    // In a worker thread autocannon returns raw histograms; aggregate them as its main thread would.
    const r = autocannon.aggregateResult([raw], opts);
    done({ ok: r['2xx'], non2xx: r.non2xx, errors: r.errors + r.timeouts, seconds: d.seconds,
      latency: { p50: r.latency.p50, p95: r.latency.p97_5, p99: r.latency.p99, max: r.latency.max, average: r.latency.average } });
  });
} else {
  const http = require('node:http');
  const u = new URL(d.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: d.connections });
  const total = Math.round(d.rate * d.seconds);
  const gap = 1000 / d.rate;
  const lat = [];
  let sent = 0, finished = 0, ok = 0, non2xx = 0, errors = 0;
  const start = performance.now();
  const finish = () => {
    if (++finished < total) return;
    lat.sort((a, b) => a - b);
    const q = (p) => (lat.length ? Math.round(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] * 100) / 100 : 0);
    agent.destroy();
    done({ ok, non2xx, errors, seconds: (performance.now() - start) / 1000,
      latency: { p50: q(0.5), p95: q(0.95), p99: q(0.99), max: q(1), average: lat.reduce((a, b) => a + b, 0) / Math.max(1, lat.length) } });
  };
  const fire = (due) => {
    const req = http.request({ agent, host: u.hostname, port: u.port, method: 'PUT', path: nextPath(), headers: { ...headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode >= 200 && res.statusCode < 300) { ok++; lat.push(performance.now() - due); } else non2xx++;
        finish();
      });
    });
    req.on('error', () => { errors++; finish(); });
    req.end(body);
  };
  const tick = () => {
    const now = performance.now();
    while (sent < total && start + sent * gap <= now) fire(start + gap * sent++);
    if (sent < total) setTimeout(tick, 1);
  };
  tick();
}
`;

function load(url: string, token: string, level: Level, seconds: number): Promise<LoadRun> {
  return new Promise((resolve, reject) => {
    const w = new Worker(LOAD_WORKER, {
      eval: true,
      workerData: { url, token, connections: level.connections, rate: level.rate, seconds },
    });
    let settled = false;
    w.once('message', (m: LoadRun & { error?: string }) => {
      settled = true;
      if (m.error) reject(new Error(`load worker: ${m.error}`));
      else resolve(m);
      void w.terminate();
    });
    w.once('error', (e) => {
      if (!settled) reject(e);
    });
    w.once('exit', (code) => {
      if (!settled) reject(new Error(`load worker exited (${code}) before reporting`));
    });
  });
}

function figure(name: string, r: LoadRun): Figure {
  return {
    name,
    unit: 'writes/s',
    value: Math.round(r.ok / r.seconds),
    // Closed-loop levels: autocannon's histogram has no p95, its p97.5 stands in (conservative).
    latency: { p50: r.latency.p50, p95: r.latency.p95, p99: r.latency.p99, max: r.latency.max, mean: Math.round(r.latency.average * 100) / 100 },
  };
}

/** CPU time (user + system, ms) a process has used so far, from /proc (Linux); 10 ms resolution. */
function cpuMs(pid: number | undefined): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime, stime (fields 14, 15) in USER_HZ = 100
  } catch {
    return NaN;
  }
}

/** Whole-machine CPU: busy and total jiffies (every core), so a level can say how loaded the machine was. */
function machineCpu(): { busy: number; total: number } {
  const [, ...v] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const n = v.map(Number);
  const idle = n[3]! + n[4]!;
  const total = n.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** Runs one level against one server and measures the CPU its processes used meanwhile. */
async function measured(url: string, token: string, level: Level, seconds: number, pids: Record<string, number | undefined>) {
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuMs(pid)]));
  const m0 = machineCpu();
  const run = await load(url, token, level, seconds);
  const m1 = machineCpu();
  const cpu = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuMs(pid) - before[k]!]));
  return { run, cpu, machineBusy: (m1.busy - m0.busy) / Math.max(1, m1.total - m0.total) };
}

/** Cumulative histogram buckets (upper bound in s → count), summed over every series whose labels match. */
type Buckets = Map<number, number>;
interface GatewayTotals {
  records: number;
  calls: number;
  /** Time to the 202 inside the gateway (ackstream_gateway_request_duration_seconds, item route, 202). */
  answer: Buckets;
  /** One PutRecords call (ackstream_gateway_putrecords_call_seconds). */
  call: Buckets;
  /** The gateway's event-loop delay p99 (ms) since the previous scrape (prom-client resets it on each scrape). */
  loopLagP99: number;
}

/** Records, PutRecords calls and two latency histograms so far, from the gateway's own metrics. */
async function gatewayTotals(gwUrl: string): Promise<GatewayTotals> {
  const text = await (await fetch(`${gwUrl}/metrics`)).text();
  const num = (name: string) => Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  const buckets = (name: string, labels: string[]): Buckets => {
    const m: Buckets = new Map();
    for (const line of text.split('\n')) {
      if (!line.startsWith(`${name}_bucket{`) || !labels.every((l) => line.includes(l))) continue;
      const le = /le="([^"]+)"/.exec(line)![1]!;
      const bound = le === '+Inf' ? Infinity : Number(le);
      m.set(bound, (m.get(bound) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
    }
    return m;
  };
  return {
    records: num('ackstream_gateway_putrecords_batch_records_sum'),
    calls: num('ackstream_gateway_putrecords_batch_records_count'),
    answer: buckets('ackstream_gateway_request_duration_seconds', ['route="item"', 'status="202"']),
    call: buckets('ackstream_gateway_putrecords_call_seconds', []),
    loopLagP99: Math.round(Number(/^nodejs_eventloop_lag_p99_seconds(?:\{[^}]*\})? (\S+)$/m.exec(text)?.[1] ?? NaN) * 1e5) / 100,
  };
}

/** Percentiles (ms) from the difference of two cumulative histograms: each is its bucket's upper bound. */
function bucketPercentiles(before: Buckets, after: Buckets): Figure['latency'] {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const counts = bounds.map((b) => (after.get(b) ?? 0) - (before.get(b) ?? 0));
  const total = counts.at(-1) ?? 0;
  const q = (p: number) => {
    const i = counts.findIndex((c) => c >= p * total);
    const b = bounds[Math.max(0, i)]!;
    return Number.isFinite(b) ? b * 1000 : Infinity;
  };
  return { p50: q(0.5), p95: q(0.95), p99: q(0.99), max: q(1) };
}

/**
 * The second baseline: kinesalite's own PutRecords rate, without the gateway, through the same
 * HTTP sender the gateway uses: `inFlight` loops of back-to-back calls of `records` 1 KB records.
 */
async function kinesaliteAlone(endpoint: string, stream: string, records: number, inFlight: number, seconds: number) {
  const sender = new HttpKinesisClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
  const data = Buffer.from(JSON.stringify({ text: 'x'.repeat(1000) }));
  let n = 0;
  let sent = 0;
  const lat: number[] = [];
  const end = performance.now() + seconds * 1000;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (performance.now() < end) {
      const batch = Array.from({ length: records }, () => ({ PartitionKey: `bench:bench:i${n++ % 1000}`, Data: data }));
      const t0 = performance.now();
      const out = await sender.send(new PutRecordsCommand({ StreamName: stream, Records: batch }));
      lat.push(performance.now() - t0);
      sent += records - (out.FailedRecordCount ?? 0);
    }
  }));
  sender.destroy();
  lat.sort((a, b) => a - b);
  const q = (p: number) => Math.round(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]! * 100) / 100;
  return { recordsPerSecond: Math.round(sent / seconds), latency: { p50: q(0.5), p95: q(0.95), p99: q(0.99), max: q(1) } };
}

function spawnNode(args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  // stdout (the gateway's one log line per request) goes to /dev/null: formatted as in production, not displayed.
  return spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
}

export async function run(ctx: BenchContext): Promise<ScenarioResult> {
  const seconds = ctx.quick ? 3 : 10;
  const warmup = ctx.quick ? 1 : 3;
  const levels: Level[] = ctx.quick
    ? [{ name: 'c=10', connections: 10 }, { name: '1000/s', connections: 20, rate: 1000 }]
    : [
      { name: 'c=10', connections: 10 },
      { name: 'c=50', connections: 50 },
      { name: 'c=100', connections: 100 },
      { name: '1000/s', connections: 20, rate: 1000 },
    ];
  const kin = await startKinesalite();
  const children: ChildProcess[] = [];
  const name = `bench-${randomBytes(4).toString('hex')}`;
  const prefix = `bench:${name}:`;
  const figures: Figure[] = [];
  const base: Figure[] = [];
  const cpu: Figure[] = [];
  const phases: Figure[] = [];
  const alone: Figure[] = [];
  const floors: Figure[] = [];
  const floorCpu: Figure[] = [];
  const notes: string[] = [];
  try {
    const kinesis = createKinesis({ region: 'us-east-1', endpoint: kin.endpoint });
    await kinesis.send(new CreateStreamCommand({ StreamName: name, ShardCount: 4 }));
    for (let i = 0; i < 100; i++) {
      const d = await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: name }));
      if (d.StreamDescriptionSummary?.StreamStatus === 'ACTIVE') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    kinesis.destroy();
    const secret = randomBytes(32).toString('base64url');
    const gwPort = await freePort();
    const profileDir = process.env.BENCH_PROFILE_DIR;
    // The gateway with its defaults; the rate limit is raised out of the way but still consulted in Redis.
    const gw = spawnNode([...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []), '--import', 'tsx', 'gateway/main.ts'], {
      AUTH_SECRET: secret, KINESIS_ENDPOINT: kin.endpoint, KINESIS_STREAM: name, REDIS_URL, REDIS_PREFIX: prefix,
      GATEWAY_PORT: String(gwPort), RATE_LIMIT_PER_SECOND: '1000000', RATE_LIMIT_BURST: '1000000', LOG_LEVEL: 'info',
    });
    children.push(gw);
    const ceilingPort = await freePort();
    const ceiling = spawnNode(['-e', CEILING_SERVER], { PORT: String(ceilingPort) });
    children.push(ceiling);
    const floorPort = await freePort();
    const floor = spawnNode(['--import', 'tsx', 'bench/servers/stream-floor.ts'], { PORT: String(floorPort), KINESIS_ENDPOINT: kin.endpoint, KINESIS_STREAM: name });
    children.push(floor);
    await waitForPort(gwPort, () => gw.exitCode !== null, 30_000);
    await waitForPort(ceilingPort, () => ceiling.exitCode !== null);
    await waitForPort(floorPort, () => floor.exitCode !== null, 30_000);
    const gwUrl = `http://127.0.0.1:${gwPort}`;
    const ceilingUrl = `http://127.0.0.1:${ceilingPort}`;
    const floorUrl = `http://127.0.0.1:${floorPort}`;
    const token = await signToken(secret, { tenant: 'bench', sub: 'bench' });

    // Both servers are warmed up (JIT, connection pools) before anything is measured.
    ctx.progress(0, 1, 'warm-up');
    await load(gwUrl, token, { name: 'warm-up', connections: 10 }, warmup);
    await load(ceilingUrl, token, { name: 'warm-up', connections: 10 }, warmup);
    await load(floorUrl, token, { name: 'warm-up', connections: 10 }, warmup);
    const total = levels.length * 3;
    let done = 0;
    for (const level of levels) {
      ctx.progress(done, total, `gateway ${level.name}`);
      const b0 = await gatewayTotals(gwUrl);
      const gm = await measured(gwUrl, token, level, seconds, { gateway: gw.pid, kinesalite: kin.child.pid });
      const b1 = await gatewayTotals(gwUrl);
      const g = gm.run;
      figures.push(figure(`gateway ${level.name}`, g));
      // Where the latency is: inside the gateway (request in → 202 out), and the PutRecords call within it.
      const inside = bucketPercentiles(b0.answer, b1.answer)!;
      const call = bucketPercentiles(b0.call, b1.call)!;
      phases.push(
        { name: `time to 202 inside the gateway ${level.name} (bucket bounds)`, value: inside.p99, unit: 'ms (p99)', latency: inside },
        { name: `PutRecords call ${level.name} (bucket bounds)`, value: call.p99, unit: 'ms (p99)', latency: call },
        // prom-client samples the delay every 10 ms, so 10 means no delay.
        { name: `gateway event-loop delay ${level.name} (10 ms sampling)`, value: b1.loopLagP99, unit: 'ms (p99)' },
      );
      if (g.non2xx || g.errors) notes.push(`gateway ${level.name}: ${g.non2xx} non-2xx, ${g.errors} errors`);
      ctx.progress(++done, total, `ceiling ${level.name}`);
      const cm = await measured(ceilingUrl, token, level, seconds, { ceiling: ceiling.pid });
      const c = cm.run;
      base.push(figure(`ceiling ${level.name}`, c));
      ctx.progress(++done, total, `stream floor ${level.name}`);
      const fm = await measured(floorUrl, token, level, seconds, { floor: floor.pid, kinesalite: kin.child.pid });
      const f = fm.run;
      floors.push(figure(`stream floor ${level.name}`, f));
      if (f.non2xx || f.errors) notes.push(`stream floor ${level.name}: ${f.non2xx} non-2xx, ${f.errors} errors`);
      ctx.progress(++done, total);
      // CPU per answered request: what each write costs, independent of how busy the shared machine was.
      const per = (ms: number, n: number) => Math.round((ms * 1000) / Math.max(1, n));
      cpu.push(
        { name: `gateway CPU per write ${level.name}`, value: per(gm.cpu.gateway!, g.ok), unit: 'µs' },
        { name: `kinesalite CPU per write ${level.name}`, value: per(gm.cpu.kinesalite!, g.ok), unit: 'µs' },
        { name: `ceiling CPU per request ${level.name}`, value: per(cm.cpu.ceiling!, c.ok), unit: 'µs' },
        { name: `records per PutRecords call ${level.name}`, value: Math.round(((b1.records - b0.records) / Math.max(1, b1.calls - b0.calls)) * 10) / 10, unit: 'records' },
        { name: `machine busy during gateway ${level.name}`, value: Math.round(gm.machineBusy * 100), unit: '%' },
        { name: `machine busy during ceiling ${level.name}`, value: Math.round(cm.machineBusy * 100), unit: '%' },
      );
      floorCpu.push(
        { name: `stream floor CPU per write ${level.name}`, value: per(fm.cpu.floor!, f.ok), unit: 'µs' },
        { name: `kinesalite CPU per write, stream floor ${level.name}`, value: per(fm.cpu.kinesalite!, f.ok), unit: 'µs' },
      );
      ctx.log(`${level.name}: gateway ${figures.at(-1)!.value}/s p99 ${g.latency.p99} ms (inside ≤ ${inside.p99} ms, PutRecords ≤ ${call.p99} ms, loop delay p99 ${b1.loopLagP99} ms; ${cpu.at(-6)!.value} µs CPU/write + kinesalite ${cpu.at(-5)!.value} µs, ${cpu.at(-3)!.value} records/call); ceiling ${base.at(-1)!.value}/s p99 ${c.latency.p99} ms (${cpu.at(-4)!.value} µs CPU/request); stream floor ${floors.at(-1)!.value}/s p99 ${f.latency.p99} ms (${floorCpu.at(-2)!.value} µs CPU/write + kinesalite ${floorCpu.at(-1)!.value} µs)`);
    }
    // Second baseline: what kinesalite takes on its own on these cores (is the emulator the bound?).
    for (const records of ctx.quick ? [25] : [5, 25, 100]) {
      const k0 = cpuMs(kin.child.pid);
      const k = await kinesaliteAlone(kin.endpoint, name, records, 4, ctx.quick ? 2 : 5);
      const kcpu = cpuMs(kin.child.pid) - k0;
      alone.push(
        { name: `kinesalite alone: PutRecords of ${records} records, 4 in flight`, value: k.recordsPerSecond, unit: 'records/s', latency: k.latency },
        { name: `kinesalite alone: kinesalite CPU per record (${records}/call)`, value: Math.round((kcpu * 1000) / Math.max(1, k.recordsPerSecond * (ctx.quick ? 2 : 5))), unit: 'µs' },
      );
      ctx.log(`kinesalite alone, ${records} records/call: ${k.recordsPerSecond} records/s, call p99 ${k.latency.p99} ms, ${alone.at(-1)!.value} µs kinesalite CPU/record`);
    }
  } finally {
    // SIGTERM: the gateway flushes and exits cleanly (and writes its CPU profile when profiling).
    for (const c of children) await stopChild(c);
    await stopChild(kin.child); // SIGTERM: exits (and writes its profile when profiling)
    const redis = new Redis(REDIS_URL);
    await deleteKeysByPrefix(redis, prefix);
    redis.disconnect();
  }
  const ratios = levels
    .map((l, i) => ({ l, i }))
    .filter(({ l }) => !l.rate)
    .flatMap(({ l, i }) => {
      const r = (a: Figure[], b: Figure[]) => Math.round((a[i]!.value / Math.max(1, b[i]!.value)) * 100) / 100;
      return [
        { name: `gateway/ceiling ${l.name}`, value: r(figures, base) },
        { name: `stream floor/ceiling ${l.name}`, value: r(floors, base) },
        { name: `gateway/stream floor ${l.name}`, value: r(figures, floors) },
      ];
    });
  notes.push('latency p95: autocannon p97.5 for c=N levels; true p95 for the fixed-rate level (open loop, from the scheduled send time)');
  notes.push('gateway, ceiling, kinesalite and the load generator (worker thread) each have their own event loop, but share 2 cores with Redis and other engineers: figures are noisy.');
  notes.push('time to 202 inside the gateway and PutRecords call: from the gateway\'s Prometheus histograms, so each percentile is its bucket\'s upper bound (1, 2.5, 5, 7.5, 10, 15, 20, 30, 50 ms …)');
  return { scenario: 'writes', figures: [...figures, ...floors, ...phases, ...cpu, ...floorCpu, ...alone], baseline: { name: 'express 202, no work', figures: base }, ratios, notes };
}

if (require.main === module) {
  const quick = process.argv.includes('--quick');
  run({ quick, progress: () => undefined, log: (l) => process.stderr.write(`${l}\n`) })
    .then((r) => {
      process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      process.exit(0);
    })
    .catch((err: unknown) => {
      process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    });
}
