/**
 * `npx tsx bench/stack-profile.ts [rate] [seconds]` (under the shared lock): `npm start` as the
 * system bench runs it, every node process of it profiling itself (bench/cpu-profile-hook.cjs), then
 * `rate` writes/s (default 100) with 500 reads/s beside them for `seconds` (default 40), then a
 * clean stop, so each process writes its profile into PROFILE_DIR (default .prof/stack-<time>).
 * Read each with `npx tsx bench/profile-summary.ts <file> 25 <seconds>`: the last `seconds`
 * of a profile are the load (startup and seeding are left out).
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from '../scripts/local-stack';
import { Load, openSeededLoad, startNpmStack } from './scenarios/system';

/**
 * SIGUSR2 to every node process that profiles itself into `dir` (bench/cpu-profile-hook.cjs writes
 * its profile on it), found by its environment. Only node processes other than npm: the stack's
 * shells, PostgreSQL and Redis inherit the same environment, and a shell or Redis ends on a SIGUSR2.
 */
function profileNow(dir: string): void {
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'node') continue;
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('npm-cli')) continue;
      if (readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`ACKSTREAM_PROFILE_DIR=${dir}`)) process.kill(pid, 'SIGUSR2');
    } catch {
      // gone, or not ours to read
    }
  }
}

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
    load = await openSeededLoad(stack, 3000);
    const started = Date.now();
    const res = await load.call<{ accepted: number; lost: number }>({ cmd: 'level', rate, durationS: seconds, readRate: 500, graceMs: 5000 });
    console.log(`load: ${rate} writes/s for ${seconds} s: accepted ${res.accepted}, lost ${res.lost}; ${((Date.now() - started) / 1000).toFixed(1)} s until the last final ack`);
  } finally {
    await load?.close();
    profileNow(dir);
    await new Promise((r) => setTimeout(r, 3000));
    await stack.stop();
  }
  console.log(`profiles in ${dir}`);
}
main().catch((e) => { console.error(e); process.exit(1); });
