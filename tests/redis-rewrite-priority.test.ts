/**
 * `npm start`'s redis-server rewrites its append-only file in a forked child; that child runs at
 * LOCAL_REDIS_REWRITE_PRIORITY (default: Linux's idle scheduling class) so a rewrite of a grown
 * dataset takes only the cores' spare time (#20).
 * Real redis-server, real fork: the rewrite is slowed down (rdb-key-save-delay) so it lives long
 * enough to be looked at.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { ensureRedis, freePort, type ManagedProcess } from '../scripts/local-stack';
import { schedulingOf } from './helpers/scheduling';

const linux = process.platform === 'linux';
/** Niceness and scheduling class of a process. */
const priorityOf = (pid: number) => {
  const { nice, policy } = schedulingOf(pid);
  return { nice, policy: policy === 5 ? 'idle' : policy === 0 ? 'normal' : String(policy) };
};
const childrenOf = (pid: number) => readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

(linux ? describe : describe.skip)('the local redis-server', () => {
  let dir: string;
  let redis: ManagedProcess | undefined;
  let client: Redis | undefined;
  const saved = process.env.LOCAL_REDIS_REWRITE_PRIORITY;

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ackstream-redis-nice-'));
  });
  afterEach(async () => {
    client?.disconnect();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
    if (saved === undefined) delete process.env.LOCAL_REDIS_REWRITE_PRIORITY;
    else process.env.LOCAL_REDIS_REWRITE_PRIORITY = saved;
  });

  async function rewriteChildPriority(): Promise<{ server: ReturnType<typeof priorityOf>; child: ReturnType<typeof priorityOf> }> {
    redis = await ensureRedis(dir, await freePort());
    client = new Redis(redis!.url);
    const server = Number(/process_id:(\d+)/.exec(await client.info('server'))![1]);
    await rewriteDone(); // the first AOF, written when the server turns it on
    await client.mset(...Array.from({ length: 500 }, (_, i) => [`k${i}`, 'v']).flat());
    await client.config('SET', 'rdb-key-save-delay', '2000'); // 2 ms per key: a rewrite of 1 s
    await client.bgrewriteaof();
    let child: number | undefined;
    for (let i = 0; i < 50 && !child; i++) {
      await sleep(20);
      child = childrenOf(server)[0];
    }
    expect(child).toBeDefined();
    await sleep(600); // the watcher looks every 200 ms
    const childPriority = priorityOf(child!);
    await client.config('SET', 'rdb-key-save-delay', '0');
    await rewriteDone(); // redis-server does not stop while it writes an AOF
    return { server: priorityOf(server), child: childPriority };
  }

  async function rewriteDone(): Promise<void> {
    for (let i = 0; i < 200; i++) {
      const info = await client!.info('persistence');
      if (/aof_enabled:1/.test(info) && /aof_rewrite_in_progress:0/.test(info) && /aof_rewrite_scheduled:0/.test(info)) return;
      await sleep(50);
    }
    throw new Error('the AOF rewrite did not end within 10 s');
  }

  it('rewrites its append-only file in a child in the idle scheduling class by default, itself at normal priority', async () => {
    delete process.env.LOCAL_REDIS_REWRITE_PRIORITY;
    expect(await rewriteChildPriority()).toEqual({ server: { nice: 0, policy: 'normal' }, child: { nice: 0, policy: 'idle' } });
  }, 20_000);

  it('rewrites in a child at the niceness LOCAL_REDIS_REWRITE_PRIORITY gives', async () => {
    process.env.LOCAL_REDIS_REWRITE_PRIORITY = '12';
    expect(await rewriteChildPriority()).toEqual({ server: { nice: 0, policy: 'normal' }, child: { nice: 12, policy: 'normal' } });
  }, 20_000);

  it('leaves the child at normal priority when LOCAL_REDIS_REWRITE_PRIORITY is 0', async () => {
    process.env.LOCAL_REDIS_REWRITE_PRIORITY = '0';
    expect(await rewriteChildPriority()).toEqual({ server: { nice: 0, policy: 'normal' }, child: { nice: 0, policy: 'normal' } });
  }, 20_000);
});
