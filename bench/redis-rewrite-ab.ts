/**
 * `npx tsx bench/redis-rewrite-ab.ts [rounds] [redisMB]` (under the shared lock): what an AOF
 * rewrite of a grown Redis costs the write path of `npm start`, and whether the rewrite child's CPU
 * priority changes it (issue #20). One stack, started with LOCAL_REDIS_REWRITE_PRIORITY=0 so this script
 * sets the child's priority itself; its Redis grown to about `redisMB` (default 450, what 300,000
 * writes leave) with keys shaped like the stack's (request statuses and final-ack copies, 24 h TTL),
 * written straight into Redis (the rewrite's cost is the dataset's size, not how it got there).
 * Then `rounds` (default 3) of interleaved 30 s windows at 400 writes/s + 500 reads/s:
 *
 * - `no rewrite`: the control;
 * - `rewrite, child as forked`: BGREWRITEAOF 2 s into the window, the child at Redis's priority;
 * - `rewrite, child nice 10`: the same, the child niced to 10 (LOCAL_REDIS_REWRITE_PRIORITY=10);
 * - `rewrite, child SCHED_IDLE`: the same, the child under Linux's idle scheduling class (chrt -i), as `npm start` does.
 *
 * Prints each window's 202 and final-ack p50/p99, the fork's pause and the rewrite's duration.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { Redis } from 'ioredis';
import { lowerPriority } from '../scripts/local-stack';
import { percentiles } from './stats';
import { openSeededLoad, stackSettings, startNpmStack, type LevelResult } from './scenarios/system';

type Arm = 'no rewrite' | 'rewrite, child as forked' | 'rewrite, child nice 10' | 'rewrite, child SCHED_IDLE';
const ARMS: Arm[] = ['no rewrite', 'rewrite, child as forked', 'rewrite, child nice 10', 'rewrite, child SCHED_IDLE'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function grow(redis: Redis, targetMB: number): Promise<void> {
  const value = JSON.stringify({ type: 'ack', stage: 'committed', requestId: '00000000-0000-4000-8000-000000000000', collection: 'bench', id: 'g-00000', version: 2, consistencyToken: `shardId-000000000000:${'4'.repeat(56)}`, at: new Date().toISOString() });
  let i = 0;
  for (;;) {
    const used = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]) / 1e6;
    process.stderr.write(`\rgrowing Redis: ${used.toFixed(0)} of ${targetMB} MB`);
    if (used >= targetMB) break;
    const p = redis.pipeline();
    for (let n = 0; n < 5000; n++, i++) {
      p.set(`ackstream:ackfinal:{grow:filler}:${i}`, value, 'EX', 86400);
      p.hset(`ackstream:req:grow:${i}`, 'd', value.slice(0, 160), 'r', '2');
      p.expire(`ackstream:req:grow:${i}`, 86400);
    }
    await p.exec();
  }
  process.stderr.write('\n');
}

async function info(redis: Redis): Promise<{ forks: number; forkUs: number; rewriteS: number; inProgress: boolean; pid: number }> {
  const stats = await redis.info('stats');
  const persistence = await redis.info('persistence');
  const server = await redis.info('server');
  return {
    forks: Number(/total_forks:(\d+)/.exec(stats)![1]),
    forkUs: Number(/latest_fork_usec:(\d+)/.exec(stats)![1]),
    rewriteS: Number(/aof_last_rewrite_time_sec:(-?\d+)/.exec(persistence)![1]),
    inProgress: /aof_rewrite_in_progress:1/.test(persistence),
    pid: Number(/process_id:(\d+)/.exec(server)![1]),
  };
}

/** Starts an AOF rewrite and puts its child under `arm`'s policy as soon as it exists. */
async function rewrite(redis: Redis, arm: Arm): Promise<void> {
  const { pid } = await info(redis);
  await redis.bgrewriteaof();
  for (let i = 0; i < 250; i++) {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
    if (children.length) {
      for (const c of children) {
        if (arm === 'rewrite, child nice 10') lowerPriority(c, 10);
        if (arm === 'rewrite, child SCHED_IDLE') lowerPriority(c, 'idle');
      }
      return;
    }
    await sleep(4);
  }
}

async function main() {
  const rounds = Number(process.argv[2] ?? 3);
  const targetMB = Number(process.argv[3] ?? 450);
  process.env['BENCH_STACK_ENV'] = [process.env['BENCH_STACK_ENV'], 'LOCAL_REDIS_REWRITE_PRIORITY=0'].filter(Boolean).join(',');
  const ctx = { quick: false, progress: () => undefined, log: (l: string) => console.log(l) };
  const stack = await startNpmStack(ctx);
  const redis = new Redis(stackSettings(stack).env.REDIS_URL!);
  const load = await openSeededLoad(stack, 5000);
  try {
    await grow(redis, targetMB);
    // The first rewrite after the growth, outside any window, and a warm-up at the same load.
    await redis.bgrewriteaof();
    while ((await info(redis)).inProgress) await sleep(500);
    await load.call({ cmd: 'level', rate: 400, durationS: 20, readRate: 500, graceMs: 5000 });
    const rows: string[] = [];
    for (let r = 1; r <= rounds; r++) {
      for (const arm of ARMS) {
        while ((await info(redis)).inProgress) await sleep(500);
        const before = await info(redis);
        const level = load.call<LevelResult>({ cmd: 'level', rate: 400, durationS: 30, readRate: 500, graceMs: 10_000 });
        if (arm !== 'no rewrite') {
          await sleep(2000);
          await rewrite(redis, arm);
        }
        const res = await level;
        while ((await info(redis)).inProgress) await sleep(500);
        const after = await info(redis);
        const a = percentiles(res.acceptLat);
        const f = percentiles(res.finals);
        const forked = after.forks - before.forks;
        const row = `| ${r} | ${arm} | ${a.p50.toFixed(1)} / ${a.p99.toFixed(1)} | ${f.p50.toFixed(1)} / ${f.p99.toFixed(1)} | ${res.lost + res.failed} | ${forked ? `${(after.forkUs / 1000).toFixed(1)} ms, rewrite ${after.rewriteS} s` : 'none'} |`;
        console.log(row);
        rows.push(row);
      }
    }
    const used = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]) / 1e6;
    console.log(`\nRedis ${used.toFixed(0)} MB in memory; ${new Date().toISOString()}; ${os.cpus()[0]?.model}, ${os.cpus().length} cores`);
    console.log('| round | window (400 writes/s + 500 reads/s, 30 s) | 202 p50 / p99 (ms) | final ack p50 / p99 (ms) | lost | fork pause, rewrite |');
    console.log('| --- | --- | --- | --- | --- | --- |');
    for (const row of rows) console.log(row);
  } finally {
    redis.disconnect();
    await load.close();
    await stack.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
