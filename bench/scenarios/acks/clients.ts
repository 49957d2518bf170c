/**
 * acks bench, client side: one child process holding a share of the WebSocket clients (so 10,000+
 * sockets fit `ulimit -n` per process) and playing the write path for them: each client writes a
 * request — its `queued` and then `committed` ack appended through RedisAckLog (the production Lua
 * append, from this process, not the server's) — and awaits `committed` on its WebSocket before it
 * writes again. At most `window` requests of this process are in flight (closed loop), so the
 * latency is the system's, not a queue this bench builds.
 *
 * IPC: <- start -> connected ; <- run -> done (counts and latencies).
 */
import { Redis } from 'ioredis';
import { WebSocket } from 'ws';
import { signToken } from '../../../core/auth';
import { RedisAckLog } from '../../../core/redis-ack-log';
import { windowProfiler } from './profile';

interface Start { type: 'start'; url: string; secret: string; prefix: string; redisUrl: string; from: number; count: number; window: number }
interface Run { type: 'run'; durationMs: number }

/** Every ack starts `{"type":"ack","stage":"<stage>"`: the stage's first letter is at this offset. */
const PREFIX = Buffer.from('{"type":"ack","stage":"');
const Q = 'q'.charCodeAt(0);
const C = 'c'.charCodeAt(0);

class Client {
  ws!: WebSocket;
  /** The request awaiting its committed ack, and when it was written (performance.now()). */
  pending: string | undefined;
  /** `"<requestId>"`, as it appears in the ack JSON. */
  quoted = '';
  startedAt = 0;
  sawQueued = false;
  seq = 0;
  constructor(readonly sub: string) {}
}

async function main() {
  const start = await new Promise<Start>((res) => process.once('message', (m: Start) => res(m)));
  const redis = new Redis(start.redisUrl, { enableAutoPipelining: true });
  const log = new RedisAckLog(redis, start.prefix);
  const clients: Client[] = [];
  let received = 0;
  let outOfOrder = 0;
  let unexpected = 0;
  let completed = 0;
  let running = false;
  let inFlight = 0;
  const latencies: number[] = [];
  const idle: Client[] = [];

  const write = (c: Client) => {
    const requestId = `${c.sub}-${++c.seq}`;
    c.pending = requestId;
    c.quoted = `"${requestId}"`;
    c.sawQueued = false;
    c.startedAt = performance.now();
    inFlight++;
    const route = { tenant: 'bench', principal: c.sub };
    const at = new Date().toISOString();
    // Same connection, pipelined: Redis runs them in this order, so queued is published first.
    log.append(route, { type: 'ack', stage: 'queued', requestId, collection: 'bench', id: c.sub, at }).catch(() => unexpected++);
    log.append(route, { type: 'ack', stage: 'committed', requestId, collection: 'bench', id: c.sub, version: c.seq, at }).catch(() => unexpected++);
  };
  const pump = () => {
    while (running && inFlight < start.window && idle.length) write(idle.pop()!);
  };

  const onMessage = (c: Client, data: Buffer) => {
    received++;
    // Only the stage and request id are needed: no JSON.parse per ack on this side (it shares the cores).
    const stage = data.compare(PREFIX, 0, PREFIX.length, 0, PREFIX.length) === 0 ? data[PREFIX.length] : -1;
    if (stage === Q) {
      if (!c.pending || c.sawQueued) unexpected++;
      c.sawQueued = true;
      return;
    }
    if (stage !== C || !c.pending || data.indexOf(c.quoted) < 0) {
      unexpected++;
      return;
    }
    if (!c.sawQueued) outOfOrder++;
    if (running) latencies.push(performance.now() - c.startedAt);
    c.pending = undefined;
    completed++;
    inFlight--;
    idle.push(c);
    pump();
  };

  // Open in parallel batches: one token per client (its own principal).
  const batch = 100;
  for (let i = 0; i < start.count; i += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, start.count - i) }, async (_, k) => {
      const c = new Client(`u${start.from + i + k}`);
      const token = await signToken(start.secret, { tenant: 'bench', sub: c.sub });
      c.ws = new WebSocket(`${start.url}/v1/acks?access_token=${token}`, { perMessageDeflate: false, skipUTF8Validation: true });
      c.ws.on('message', (d: Buffer) => onMessage(c, d));
      await new Promise<void>((res, rej) => {
        c.ws.once('open', () => res());
        c.ws.once('error', rej);
      });
      clients.push(c);
    }));
  }
  process.send!({ type: 'connected', count: clients.length });

  const run = await new Promise<Run>((res) => process.once('message', (m: Run) => res(m)));
  idle.push(...clients);
  const received0 = received;
  const profiler = windowProfiler('clients');
  await profiler.start();
  const cpu0 = process.cpuUsage();
  running = true;
  const t0 = performance.now();
  pump();
  await new Promise((r) => setTimeout(r, run.durationMs));
  running = false;
  const seconds = (performance.now() - t0) / 1000;
  const inWindow = received - received0;
  const cpu = process.cpuUsage(cpu0);
  await profiler.stop();
  // Drain: every request written gets both acks (nothing lost), bounded wait.
  const deadline = Date.now() + 15_000;
  while (inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const closedEarly = clients.filter((c) => c.ws.readyState !== WebSocket.OPEN).length;
  for (const c of clients) c.ws.terminate();
  redis.disconnect();
  // The parent ends this process once it has the (large) message: exiting here could beat its delivery.
  process.send!({ type: 'done', seconds, inWindow, received, completed, unfinished: inFlight, outOfOrder, unexpected, closedEarly, cpuMs: (cpu.user + cpu.system) / 1000, latencies });
  process.once('disconnect', () => process.exit(0));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
