/**
 * acks: many concurrent WebSocket clients on one ack-service instance; acks appended straight
 * through RedisAckLog (independent of the write path) and counted at the clients. Baseline in the
 * same run: raw Redis PUBLISH -> SUBSCRIBE of the same number of messages.
 * Clients and server share this process, so open sockets = 2 x clients: bounded by `ulimit -n`.
 */
import { randomBytes } from 'node:crypto';
import { execSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { WebSocket } from 'ws';
import { signToken } from '../../core/auth';
import { loadConfig } from '../../core/config';
import { RedisAckLog } from '../../core/redis-ack-log';
import { AckConfig, startAckService } from '../../ack-service/main';
import type { BenchContext, Percentiles, ScenarioResult } from '../types';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

function pct(xs: number[]): Percentiles {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: s.at(-1) ?? 0, mean: s.reduce((a, b) => a + b, 0) / (s.length || 1) };
}

export async function run(ctx: BenchContext): Promise<ScenarioResult> {
  const fdLimit = Number(execSync('sh -c "ulimit -n"').toString().trim()) || 1024;
  const wanted = ctx.quick ? 1000 : 10_000;
  const clients = Math.min(wanted, Math.floor((fdLimit - 200) / 2));
  const totalAcks = ctx.quick ? 20_000 : 100_000;
  const prefix = `bench:acks:${randomBytes(4).toString('hex')}:`;
  const secret = randomBytes(32).toString('base64url');
  const redis = new Redis(REDIS_URL, { enableAutoPipelining: true });
  const svc = await startAckService(loadConfig(AckConfig, { AUTH_SECRET: secret, REDIS_URL, REDIS_PREFIX: prefix, ACK_PORT: '0', LOG_LEVEL: 'silent', HEARTBEAT_MS: '30000' }));
  const notes: string[] = [`fd limit ${fdLimit}: ${clients} clients (server + clients in one process). Shared 2-core machine: noisy.`];
  try {
    global.gc?.();
    const memBefore = process.memoryUsage();
    const sockets: WebSocket[] = [];
    let received = 0;
    const latencies: number[] = [];
    for (let i = 0; i < clients; i++) {
      const token = await signToken(secret, { tenant: 'bench', sub: `u${i}` });
      const ws = new WebSocket(`${svc.url}/v1/acks?access_token=${token}`, { perMessageDeflate: false });
      ws.on('message', (d) => {
        received++;
        if (received % 50 === 0) latencies.push(Date.now() - Date.parse((JSON.parse(d.toString()) as { at: string }).at));
      });
      sockets.push(ws);
      await new Promise<void>((res, rej) => { ws.once('open', () => res()); ws.once('error', rej); });
      if (i % 100 === 0) ctx.progress(i, clients, 'connecting');
    }
    global.gc?.();
    const memAfter = process.memoryUsage();
    const perConn = (memAfter.rss - memBefore.rss) / clients;

    const log = new RedisAckLog(redis, prefix);
    const t0 = Date.now();
    const batch = 500;
    for (let n = 0; n < totalAcks; n += batch) {
      await Promise.all(Array.from({ length: Math.min(batch, totalAcks - n) }, (_, k) => log.append(
        { tenant: 'bench', principal: `u${(n + k) % clients}` },
        { type: 'ack', stage: 'queued', requestId: `r${n + k}`, collection: 'c', id: 'i', at: new Date().toISOString() },
      )));
      ctx.progress(n, totalAcks, 'appending');
    }
    const deadline = Date.now() + 60_000;
    while (received < totalAcks && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const pushSeconds = (Date.now() - t0) / 1000;
    const pushed = received / pushSeconds;

    // Baseline: raw pub/sub of the same count, one subscriber.
    const sub = redis.duplicate();
    let got = 0;
    const chan = `${prefix}baseline`;
    await sub.subscribe(chan);
    sub.on('message', () => got++);
    const payload = JSON.stringify({ type: 'ack', stage: 'queued', requestId: 'r0', collection: 'c', id: 'i', at: new Date().toISOString(), cursor: 1 });
    const b0 = Date.now();
    for (let n = 0; n < totalAcks; n += batch) await Promise.all(Array.from({ length: batch }, () => redis.publish(chan, payload)));
    while (got < totalAcks && Date.now() < b0 + 60_000) await new Promise((r) => setTimeout(r, 10));
    const baseRate = got / ((Date.now() - b0) / 1000);
    sub.disconnect();

    for (const ws of sockets) ws.terminate();
    notes.push(`${received}/${totalAcks} acks received; each append is one Lua script (XADD + INCR + PUBLISH) from this same process.`);
    return {
      scenario: 'acks',
      figures: [
        { name: 'open connections', value: clients, unit: 'connections' },
        { name: 'acks pushed', value: Math.round(pushed), unit: 'acks/s' },
        { name: 'ack latency (at -> client)', value: pct(latencies).p50, unit: 'ms', latency: pct(latencies) },
        { name: 'memory per connection (rss, server + client side)', value: Math.round(perConn), unit: 'bytes' },
      ],
      baseline: { name: 'raw Redis PUBLISH -> SUBSCRIBE', figures: [{ name: 'messages', value: Math.round(baseRate), unit: 'msg/s' }] },
      ratios: [{ name: 'acks pushed / raw pub/sub', value: pushed / baseRate }],
      notes,
    };
  } finally {
    await svc.close();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
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
