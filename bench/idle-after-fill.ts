/**
 * `npx tsx bench/idle-after-fill.ts [writes] [seconds]` (under the shared lock), issue #20: starts
 * `npm start` as the system bench does, samples each process's CPU at rest for 60 s, fills it with
 * `writes` 1 KB PUTs (default 100,000; the closed loop system-growth uses), then prints each
 * process's CPU per 10 s window for `seconds` (default 600) after the fill: how long the stack
 * stays awake after a burst, and who (system-growth's idle windows start after a rest, its plan's `restS`).
 */
import { signToken } from '../core/auth';
import { cpuBetween, StackProcesses, startNpmStack } from './scenarios/system';
import { Filler, type FillResult } from './scenarios/system-growth';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const writes = Number(process.argv[2] ?? 100_000);
  const seconds = Number(process.argv[3] ?? 600);
  const ctx = { quick: false, progress: () => undefined, log: (l: string) => console.log(l) };
  const stack = await startNpmStack(ctx);
  const procs = new StackProcesses(stack.child.pid!);
  const row = (label: string, a: ReturnType<StackProcesses['sample']>) =>
    console.log(`${label}: ${cpuBetween(a, procs.sample()).filter((r) => r.pct > 0 && !r.name.startsWith('machine')).map((r) => `${r.name.replace(/ \(.*\)/, '')} ${r.pct}`).join(', ')}`);
  try {
    await sleep(60_000);
    let a = procs.sample();
    await sleep(60_000);
    row('fresh, 60 s at rest', a);
    const tokens = await Promise.all(Array.from({ length: 4 }, (_, i) => signToken(stack.secret, { tenant: `growth${i}`, sub: 'loader', ttlSeconds: 7200 })));
    const filler = new Filler({ gatewayUrl: stack.gatewayUrl, readUrl: stack.readUrl, tokens, collection: 'bench' });
    a = procs.sample();
    let shown = 0;
    const fill = await filler.call<FillResult>({ cmd: 'fill', total: writes, concurrency: 48, items: 100_000, maxLagS: 10 }, (m) => {
      if (m.done - shown >= 10_000) process.stderr.write(`fill: ${(shown = m.done).toLocaleString('en')} of ${writes.toLocaleString('en')} writes accepted (${Math.round(m.done / m.elapsedS)} /s)\n`);
    });
    await filler.close();
    row(`fill ${fill.accepted} in ${Math.round(fill.durationS)} s`, a);
    const t0 = Date.now();
    for (let t = 10; t <= seconds; t += 10) {
      a = procs.sample();
      await sleep(t0 + t * 1000 - Date.now());
      row(`+${String(t).padStart(4)} s`, a);
    }
  } finally {
    await stack.stop();
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
