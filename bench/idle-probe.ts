/**
 * Idle probe (issue #17): starts `npm start` as the system bench does and prints the CPU of each
 * process of the stack per 10 s window for `IDLE_PROBE_S` seconds (default 120), to see when the
 * idle settles and who stays awake. Run: `npx tsx bench/idle-probe.ts` (under the shared lock).
 */
import { cpuBetween, StackProcesses, startNpmStack } from './scenarios/system';

async function main() {
  const total = Number(process.env.IDLE_PROBE_S ?? 120);
  const ctx = { quick: false, progress: () => undefined, log: (l: string) => console.log(l) };
  const stack = await startNpmStack(ctx);
  const procs = new StackProcesses(stack.child.pid!);
  const t0 = Date.now();
  let prev = procs.sample();
  try {
    for (let t = 10; t <= total; t += 10) {
      await new Promise((r) => setTimeout(r, t0 + t * 1000 - Date.now()));
      const now = procs.sample();
      const rows = cpuBetween(prev, now);
      prev = now;
      console.log(`${String(t).padStart(4)} s: ${rows.filter((r) => r.pct > 0).map((r) => `${r.name} ${r.pct}`).join(', ')}`);
    }
  } finally {
    await stack.stop();
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
