/**
 * writes: sustained accepted writes/s and `queued` latency (the 202 carries the stream position,
 * so request latency = queued latency) for 1 KB bodies at several concurrency levels, plus a fixed
 * 1,000 writes/s run; in the same run the same load against an express app that answers 202 doing
 * nothing (the framework's ceiling on this machine). Kinesis is kinesalite in a child process;
 * Redis is the machine's. Load: 127.0.0.1 only, bounded in time.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import path from 'node:path';
import autocannon from 'autocannon';
import express from 'express';
import { Redis } from 'ioredis';
import { CreateStreamCommand, DescribeStreamSummaryCommand } from '@aws-sdk/client-kinesis';
import { signToken } from '../../core/auth';
import { createKinesis } from '../../core/aws';
import { loadConfig } from '../../core/config';
import { createLogger } from '../../core/log';
import { GatewayConfig, startGateway } from '../../gateway/main';
import type { BenchContext, Figure, ScenarioResult } from '../types';

const ROOT = path.resolve(__dirname, '..', '..');
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

interface Level {
  name: string;
  connections: number;
  rate?: number;
}

async function startKinesalite(): Promise<{ endpoint: string; child: ChildProcess }> {
  const child = spawn(
    process.execPath,
    ['-e', "require('kinesalite')({createStreamMs:0,shardLimit:100}).listen(0,'127.0.0.1',function(){console.log(this.address().port)})"],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (c) => reject(new Error(`kinesalite exited ${c}`)));
  });
  return { endpoint: `http://127.0.0.1:${port}`, child };
}

function load(url: string, token: string, level: Level, seconds: number): Promise<autocannon.Result> {
  const body = JSON.stringify({ text: 'x'.repeat(1000) }); // ~1 KB
  let n = 0;
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url,
        connections: level.connections,
        duration: seconds,
        ...(level.rate ? { overallRate: level.rate } : {}),
        requests: [
          {
            method: 'PUT',
            body,
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            // Spread over 1,000 items (and so over shards), as real traffic would be.
            setupRequest: (req) => ({ ...req, path: `/v1/collections/bench/items/i${n++ % 1000}` }),
          },
        ],
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
  });
}

function figure(name: string, r: autocannon.Result, seconds: number): Figure {
  return {
    name,
    unit: 'writes/s',
    value: Math.round(r['2xx'] / seconds),
    // autocannon's histogram has no p95; p97.5 is reported in its place (conservative).
    latency: { p50: r.latency.p50, p95: r.latency.p97_5, p99: r.latency.p99, max: r.latency.max, mean: r.latency.average },
  };
}

export async function run(ctx: BenchContext): Promise<ScenarioResult> {
  const seconds = ctx.quick ? 3 : 10;
  const levels: Level[] = ctx.quick
    ? [{ name: 'c=10', connections: 10 }, { name: '1000/s', connections: 20, rate: 1000 }]
    : [
      { name: 'c=10', connections: 10 },
      { name: 'c=50', connections: 50 },
      { name: 'c=100', connections: 100 },
      { name: '1000/s', connections: 20, rate: 1000 },
    ];
  const kin = await startKinesalite();
  const name = `bench-${randomBytes(4).toString('hex')}`;
  const prefix = `bench:${name}:`;
  const kinesis = createKinesis({ region: 'us-east-1', endpoint: kin.endpoint });
  await kinesis.send(new CreateStreamCommand({ StreamName: name, ShardCount: 4 }));
  for (let i = 0; i < 100; i++) {
    const d = await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: name }));
    if (d.StreamDescriptionSummary?.StreamStatus === 'ACTIVE') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  kinesis.destroy();
  const secret = randomBytes(32).toString('base64url');
  // Logs are formatted as in production but not written, so terminal speed does not bound the figure.
  const gw = await startGateway(
    loadConfig(GatewayConfig, {
      AUTH_SECRET: secret, KINESIS_ENDPOINT: kin.endpoint, KINESIS_STREAM: name, REDIS_URL, REDIS_PREFIX: prefix,
      GATEWAY_PORT: '0', RATE_LIMIT_PER_SECOND: '1000000', RATE_LIMIT_BURST: '1000000',
    }),
    { log: createLogger('info', { service: 'gateway' }, () => undefined) },
  );
  const ceilingApp = express();
  ceilingApp.disable('x-powered-by');
  ceilingApp.put('/v1/collections/:collection/items/:id', (_req, res) => {
    res.status(202).json({ requestId: 'x', status: 'queued', shardId: 'shardId-000000000000', sequenceNumber: '1' });
  });
  const ceiling = await new Promise<Server>((r) => {
    const s = ceilingApp.listen(0, '127.0.0.1', () => r(s));
  });
  const ceilingUrl = `http://127.0.0.1:${(ceiling.address() as { port: number }).port}`;
  const token = await signToken(secret, { tenant: 'bench', sub: 'bench' });

  const figures: Figure[] = [];
  const base: Figure[] = [];
  const notes: string[] = [];
  const total = levels.length * 2;
  let done = 0;
  try {
    for (const level of levels) {
      ctx.progress(done, total, `gateway ${level.name}`);
      const g = await load(gw.url!, token, level, seconds);
      figures.push(figure(`gateway ${level.name}`, g, seconds));
      if (g.non2xx || g.errors) notes.push(`gateway ${level.name}: ${g.non2xx} non-2xx, ${g.errors} errors`);
      ctx.progress(++done, total, `ceiling ${level.name}`);
      const c = await load(ceilingUrl, token, level, seconds);
      base.push(figure(`ceiling ${level.name}`, c, seconds));
      ctx.progress(++done, total);
      ctx.log(`${level.name}: gateway ${figures.at(-1)!.value}/s p99 ${g.latency.p99} ms; ceiling ${base.at(-1)!.value}/s p99 ${c.latency.p99} ms`);
    }
  } finally {
    await gw.close();
    await new Promise<void>((r) => ceiling.close(() => r()));
    kin.child.kill();
    const redis = new Redis(REDIS_URL);
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  }
  const ratios = levels
    .map((l, i) => ({ l, i }))
    .filter(({ l }) => !l.rate)
    .map(({ l, i }) => ({
      name: `gateway/ceiling ${l.name}`,
      value: Math.round((figures[i]!.value / Math.max(1, base[i]!.value)) * 100) / 100,
    }));
  notes.push('2 cores shared with other engineers and with kinesalite, Redis and autocannon (same process as the server): figures are noisy.');
  return { scenario: 'writes', figures, baseline: { name: 'express 202, no work', figures: base }, ratios, notes };
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
