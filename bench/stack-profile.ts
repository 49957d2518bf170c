/**
 * `npx tsx bench/stack-profile.ts [rate] [seconds]` (under the shared lock): `npm start` as the
 * system bench runs it, every node process of it profiling itself (bench/cpu-profile-hook.cjs), then
 * `rate` writes/s (default 100) with 500 reads/s beside them for `seconds` (default 40), then a
 * clean stop, so each process writes its profile into PROFILE_DIR (default .prof/stack-<time>).
 * Read each with `npx tsx bench/profile-summary.ts <file> 25 <seconds>`: the last `seconds`
 * of a profile are the load (startup and seeding are left out).
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { signToken } from '../core/auth';
import { ROOT } from '../scripts/local-stack';
import { Load, startNpmStack } from './scenarios/system';

async function main() {
  const rate = Number(process.argv[2] ?? 100);
  const seconds = Number(process.argv[3] ?? 40);
  const dir = process.env.PROFILE_DIR ?? path.join(ROOT, '.prof', `stack-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(dir, { recursive: true });
  const extra = process.env.BENCH_STACK_ENV ? `${process.env.BENCH_STACK_ENV},` : '';
  // Node 20 refuses --cpu-prof in NODE_OPTIONS: each process profiles itself (bench/cpu-profile-hook.cjs).
  process.env.BENCH_STACK_ENV = `${extra}NODE_OPTIONS=--require ${path.join(__dirname, 'cpu-profile-hook.cjs')},ACKSTREAM_PROFILE_DIR=${dir}`;
  const ctx = { quick: false, progress: () => undefined, log: (l: string) => console.log(l) };
  const stack = await startNpmStack(ctx);
  let load: Load | undefined;
  try {
    const tokens = await Promise.all(Array.from({ length: 4 }, (_, i) => signToken(stack.secret, { tenant: 'bench', sub: `writer${i}`, ttlSeconds: 3600 })));
    const readIds = Array.from({ length: 50 }, (_, i) => `item-${i}`);
    const auth = { authorization: `Bearer ${tokens[0]}`, 'content-type': 'application/json' };
    for (const id of readIds) {
      const res = await fetch(`${stack.gatewayUrl}/v1/collections/bench/items/${id}`, { method: 'PUT', headers: auth, body: JSON.stringify({ title: id }) });
      if (res.status !== 202) throw new Error(`seed ${id}: ${res.status}`);
    }
    await new Promise((r) => setTimeout(r, 3000));
    load = new Load({ gatewayUrl: stack.gatewayUrl, readUrl: stack.readUrl, ackUrl: stack.ackUrl, tokens, readIds, writeIds: Array.from({ length: 5000 }, (_, i) => `w-${i}`), collection: 'bench' });
    await load.call({ cmd: 'open' });
    const started = Date.now();
    const res = await load.call<{ accepted: number; lost: number }>({ cmd: 'level', rate, durationS: seconds, readRate: 500, graceMs: 5000 });
    console.log(`load: ${rate} writes/s for ${seconds} s: accepted ${res.accepted}, lost ${res.lost}; ${((Date.now() - started) / 1000).toFixed(1)} s until the last final ack`);
  } finally {
    await load?.close();
    await stack.stop();
  }
  console.log(`profiles in ${dir}`);
}
main().catch((e) => { console.error(e); process.exit(1); });
