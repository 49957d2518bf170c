/**
 * `npx tsx bench/stack-cpu.ts [rate] [seconds] [readRate]` (under the shared lock): `npm start` as the
 * system bench runs it (BENCH_STACK_ENV honoured), `rate` writes/s (default 400) with `readRate`
 * reads/s (default 500) beside them for `seconds` (default 30), and each process' CPU from /proc over the sending window, as
 * % of a core and as ms of CPU per accepted write. A lighter A/B than the system bench for one
 * component's CPU per write: one level after a warm-up at the same load (STACK_CPU_WARMUP_S, default
 * 30), no floor.
 */
import { Load, StackProcesses, cpuBetween, openSeededLoad, startNpmStack } from './scenarios/system';

async function main() {
  const rate = Number(process.argv[2] ?? 400);
  const seconds = Number(process.argv[3] ?? 30);
  const readRate = Number(process.argv[4] ?? 500);
  const ctx = { quick: false, progress: () => undefined, log: (l: string) => console.log(l) };
  const stack = await startNpmStack(ctx);
  let load: Load | undefined;
  try {
    const procs = new StackProcesses(stack.child.pid!);
    load = await openSeededLoad(stack, 5000);
    // Warm-up at the same load first: in a fresh stack the first tens of seconds cost far more CPU per write (JIT, caches).
    const warmupS = Number(process.env.STACK_CPU_WARMUP_S ?? 30);
    if (warmupS > 0) await load.call({ cmd: 'level', rate, durationS: warmupS, readRate, graceMs: 5000 });
    const before = await putRecordsCalls(stack.gatewayUrl);
    const a = procs.sample();
    let cpu: ReturnType<typeof cpuBetween> | undefined;
    // The CPU window is the sending window only (the grace after it is the drain).
    const timer = setTimeout(() => { cpu = cpuBetween(a, procs.sample()); }, seconds * 1000);
    const res = await load.call<{ accepted: number; lost: number; acceptLat: number[]; finals: number[] }>({ cmd: 'level', rate, durationS: seconds, readRate, graceMs: 5000 });
    clearTimeout(timer);
    cpu ??= cpuBetween(a, procs.sample());
    const after = await putRecordsCalls(stack.gatewayUrl);
    console.log(`PutRecords: ${after.calls - before.calls} calls, ${((after.records - before.records) / Math.max(1, after.calls - before.calls)).toFixed(2)} records per call`);
    const quantiles = (xs: number[]) => {
      const lat = [...xs].sort((x, y) => x - y);
      const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]?.toFixed(0);
      return `${q(0.5)}/${q(0.99)}`;
    };
    console.log(`load: ${rate} writes/s, ${readRate} reads/s for ${seconds} s: accepted ${res.accepted}, lost ${res.lost}; 202 p50/p99 ${quantiles(res.acceptLat)} ms, final ack p50/p99 ${quantiles(res.finals)} ms`);
    for (const row of cpu) {
      const perWrite = (row.pct / 100) * seconds * 1000 / Math.max(1, res.accepted);
      console.log(`${row.name.padEnd(45)} ${row.pct.toFixed(1).padStart(6)} %  ${perWrite.toFixed(3)} ms/write`);
    }
  } finally {
    await load?.close();
    await stack.stop();
  }
}
/** PutRecords calls and records so far, from the gateway's /metrics. */
async function putRecordsCalls(gatewayUrl: string): Promise<{ calls: number; records: number }> {
  const text = await (await fetch(`${gatewayUrl}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { calls: value('ackstream_gateway_putrecords_batch_records_count'), records: value('ackstream_gateway_putrecords_batch_records_sum') };
}

main().catch((e) => { console.error(e); process.exit(1); });
