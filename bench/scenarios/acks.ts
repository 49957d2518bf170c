/**
 * acks: many concurrent WebSocket clients on one ack-service instance, laid out as in production:
 * - the ack service runs alone in its own process (bench/scenarios/acks/server.ts);
 * - the clients are spread over child processes (bench/scenarios/acks/clients.ts), so 10,000+
 *   sockets fit `ulimit -n` (each process holds only its share);
 * - those processes also play the write path: per request, `queued` then `committed` appended
 *   through RedisAckLog (the production Lua append), and the client awaits `committed` on its
 *   WebSocket before writing again (closed loop, bounded in-flight window).
 * Memory per connection is the server process's own, after a full GC, before vs after the
 * connections open. Baseline in the same run: raw Redis PUBLISH -> SUBSCRIBE of as many messages.
 * ACK_BENCH_PROFILE=<dir>: CPU profiles of the measured window, server and client processes, into
 * <dir> (summarise with bench/profile-summary.ts).
 */
import { type ChildProcess, execSync, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Redis } from 'ioredis';
import type { BenchContext, Percentiles, ScenarioResult } from '../types';
import { deleteKeysByPrefix } from '../../core/redis';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const TSX = require.resolve('tsx/cjs');

function pct(xs: number[]): Percentiles {
  const s = Float64Array.from(xs).sort();
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
  let sum = 0;
  for (const x of s) sum += x;
  const r = (x: number) => Math.round(x * 10) / 10;
  return { p50: r(at(0.5)), p95: r(at(0.95)), p99: r(at(0.99)), max: r(s.at(-1) ?? 0), mean: r(sum / (s.length || 1)) };
}

/** A forked TypeScript child with a promise per awaited message type. */
function spawn(file: string, env: NodeJS.ProcessEnv, extraArgs: string[] = []) {
  const child = fork(path.join(__dirname, 'acks', file), [], {
    execArgv: ['--require', TSX, ...extraArgs],
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const next = <T>(type: string, timeoutMs = 120_000) => new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${file}: no "${type}" within ${timeoutMs / 1000}s`)), timeoutMs);
    const onMsg = (m: { type: string }) => {
      if (m.type !== type) return;
      clearTimeout(t);
      child.off('message', onMsg);
      child.off('exit', onExit);
      resolve(m as T);
    };
    const onExit = (code: number | null) => {
      clearTimeout(t);
      reject(new Error(`${file} exited (${code}) before "${type}"`));
    };
    child.on('message', onMsg);
    child.once('exit', onExit);
  });
  return { child, next };
}

interface Mem { rss: number; heapUsed: number; external: number; gc: boolean }
interface Cpu { userMs: number; systemMs: number }
interface Done {
  seconds: number; inWindow: number; received: number; completed: number; unfinished: number;
  outOfOrder: number; unexpected: number; closedEarly: number; cpuMs: number; latencies: number[];
}

async function redisCpuMs(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const f = (k: string) => Number(new RegExp(`${k}:([0-9.]+)`).exec(info)?.[1] ?? 0);
  return (f('used_cpu_user') + f('used_cpu_sys')) * 1000;
}

export async function run(ctx: BenchContext): Promise<ScenarioResult> {
  const clients = ctx.quick ? 1000 : 10_000;
  const procs = 2;
  const durationMs = ctx.quick ? 5000 : 20_000;
  /** Requests in flight per client process (each = a queued + a committed ack). */
  const window = Number(process.env.ACK_BENCH_WINDOW ?? 500);
  const prefix = `bench:acks:${randomBytes(4).toString('hex')}:`;
  const secret = randomBytes(32).toString('base64url');
  const redis = new Redis(REDIS_URL);
  const fdSoft = execSync('sh -c "ulimit -n"').toString().trim();
  const server = spawn('server.ts', {
    ACK_BENCH_SECRET: secret, ACK_BENCH_REDIS_URL: REDIS_URL, ACK_BENCH_PREFIX: prefix,
  }, ['--expose-gc']);
  const children: ChildProcess[] = [server.child];
  try {
    const { url } = await server.next<{ url: string }>('ready');
    server.child.send({ type: 'mem' });
    const memBefore = await server.next<Mem>('mem');

    const per = Math.ceil(clients / procs);
    const workers = Array.from({ length: procs }, (_, i) => {
      const w = spawn('clients.ts', {});
      children.push(w.child);
      w.child.send({ type: 'start', url, secret, prefix, redisUrl: REDIS_URL, from: i * per, count: Math.min(per, clients - i * per), window });
      return w;
    });
    ctx.progress(0, clients, 'connecting');
    const connected = (await Promise.all(workers.map((w) => w.next<{ count: number }>('connected', 300_000)))).reduce((a, b) => a + b.count, 0);
    server.child.send({ type: 'mem' });
    const memAfter = await server.next<Mem>('mem');

    server.child.send({ type: 'cpu', profile: 'start' });
    const cpu0 = await server.next<Cpu>('cpu');
    const redis0 = await redisCpuMs(redis);
    const t0 = Date.now();
    const progress = setInterval(() => ctx.progress(Math.min(durationMs, Date.now() - t0), durationMs, 'writing + awaiting committed'), 1000);
    for (const w of workers) w.child.send({ type: 'run', durationMs });
    const done = await Promise.all(workers.map((w) => w.next<Done>('done', durationMs + 60_000)));
    clearInterval(progress);
    server.child.send({ type: 'cpu', profile: 'stop' });
    const cpu1 = await server.next<Cpu>('cpu');
    const redisMs = (await redisCpuMs(redis)) - redis0;

    const seconds = Math.max(...done.map((d) => d.seconds));
    const inWindow = done.reduce((a, d) => a + d.inWindow, 0);
    const pushed = inWindow / seconds;
    const lat = pct(done.flatMap((d) => d.latencies));
    const sum = (k: keyof Omit<Done, 'latencies'>) => done.reduce((a, d) => a + d[k], 0);
    const serverCpuMs = cpu1.userMs + cpu1.systemMs - cpu0.userMs - cpu0.systemMs;
    const rssPer = (memAfter.rss - memBefore.rss) / connected;
    const heapPer = (memAfter.heapUsed - memBefore.heapUsed) / connected;

    // Baseline: raw pub/sub of as many messages, one subscriber, 500 publishes in flight.
    const total = Math.max(20_000, Math.min(inWindow, 200_000));
    const pub = new Redis(REDIS_URL, { enableAutoPipelining: true });
    const sub = new Redis(REDIS_URL);
    let got = 0;
    const chan = `${prefix}baseline`;
    await sub.subscribe(chan);
    sub.on('message', () => got++);
    const payload = JSON.stringify({ type: 'ack', stage: 'committed', requestId: 'u1-1', collection: 'bench', id: 'u1', version: 1, at: new Date().toISOString(), cursor: 1 });
    const b0 = Date.now();
    for (let n = 0; n < total; n += 500) await Promise.all(Array.from({ length: 500 }, () => pub.publish(chan, payload)));
    while (got < total && Date.now() < b0 + 60_000) await new Promise((r) => setTimeout(r, 10));
    const baseRate = got / ((Date.now() - b0) / 1000);
    sub.disconnect();
    pub.disconnect();

    const notes = [
      `Layout: ack service alone in one process; ${connected} clients in ${procs} child processes (ulimit -n ${fdSoft} each); ` +
      `per request queued + committed appended through RedisAckLog (Lua) from the client processes, ${window} requests in flight per process, ${(seconds).toFixed(1)} s.`,
      `Acks: ${inWindow} received in the window, ${sum('received')} in all; requests completed ${sum('completed')}, unfinished after drain ${sum('unfinished')}, ` +
      `committed before queued ${sum('outOfOrder')}, unexpected acks ${sum('unexpected')}, connections lost ${sum('closedEarly')}.`,
      `CPU in the window: ack service ${(serverCpuMs / 1000).toFixed(1)} s (${((serverCpuMs / 1000 / seconds) * 100).toFixed(0)}% of a core, ` +
      `${((serverCpuMs * 1000) / inWindow).toFixed(1)} µs/ack); Redis ${(redisMs / 1000).toFixed(1)} s (${((redisMs / 1000 / seconds) * 100).toFixed(0)}%, shared with other users); ` +
      `client processes ${(sum('cpuMs') / 1000).toFixed(1)} s. 2 shared cores: noisy.`,
      `Server memory after GC (${memAfter.gc ? 'global.gc' : 'no gc available'}): rss ${(memBefore.rss / 1e6).toFixed(1)} -> ${(memAfter.rss / 1e6).toFixed(1)} MB, ` +
      `heapUsed ${(memBefore.heapUsed / 1e6).toFixed(1)} -> ${(memAfter.heapUsed / 1e6).toFixed(1)} MB for ${connected} connections.`,
    ];
    ctx.log(notes.join('\n'));
    return {
      scenario: 'acks',
      figures: [
        { name: 'open connections', value: connected, unit: 'connections' },
        { name: 'acks pushed', value: Math.round(pushed), unit: 'acks/s' },
        { name: 'write -> committed ack at the client', value: lat.p50, unit: 'ms', latency: lat },
        { name: 'memory per connection (server rss, after gc)', value: Math.round(rssPer), unit: 'bytes' },
        { name: 'memory per connection (server heap, after gc)', value: Math.round(heapPer), unit: 'bytes' },
        { name: 'ack service cpu per ack', value: Math.round(((serverCpuMs * 1000) / inWindow) * 10) / 10, unit: 'µs' },
      ],
      baseline: { name: 'raw Redis PUBLISH -> SUBSCRIBE', figures: [{ name: 'messages', value: Math.round(baseRate), unit: 'msg/s' }] },
      ratios: [{ name: 'acks pushed / raw pub/sub', value: pushed / baseRate }],
      notes,
    };
  } finally {
    if (server.child.connected) {
      server.child.send({ type: 'stop' });
      await new Promise((r) => { server.child.once('exit', r); setTimeout(r, 10_000); });
    }
    // Client processes leave on disconnect; kill whatever stays.
    const alive = (c: ChildProcess) => c.exitCode === null && c.signalCode === null;
    for (const c of children) if (c.connected) c.disconnect();
    await Promise.all(children.map((c) => alive(c) ? new Promise((r) => { c.once('exit', r); setTimeout(r, 5000); }) : undefined));
    for (const c of children) if (alive(c)) c.kill();
    await deleteKeysByPrefix(redis, prefix);
    redis.disconnect();
  }
}

if (require.main === module) {
  const quick = process.argv.includes('--quick');
  run({ quick, progress: () => undefined, log: (l) => console.log(l) }).then((r) => {
    console.log(JSON.stringify(r, null, 2));
    process.exit(0);
  }, (err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
