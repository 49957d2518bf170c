/**
 * The full fault run (`npm run test:faults`): 10,000 writes spread over all six faults — 20
 * processor kill -9s at random moments, PostgreSQL and Redis unreachable for 10 s, the Kinesis
 * emulator killed and restarted on its persistent data, the ack service killed and restarted
 * under connected clients, and network delay plus connection resets on every proxy. The seed is
 * printed so a run can be repeated (FAULT_SEED); FAULTS_REPORT=<file> writes the table to a file.
 */
import { FAULTS, type FaultRunOptions, report, runFaults } from './harness';
import { INVARIANTS } from './invariants';

const totalWrites = Number(process.env.FAULT_WRITES ?? 10_000);
const opts: FaultRunOptions = {
  seed: Number(process.env.FAULT_SEED ?? Date.now() % 1_000_000),
  faults: [...FAULTS],
  writesPerFault: Math.ceil(totalWrites / FAULTS.length),
  items: 300,
  processorKills: 20,
  outageMs: 10_000,
  concurrency: 12,
  ackDeadlineMs: 120_000,
};

test('under every fault, every accepted write is decided once, acked once and read back as the log says', async () => {
  const results = await runFaults({ ...opts, log: (l) => process.stdout.write(`${l}\n`) });
  report(results, opts, `full fault run, ${new Date().toISOString()}`);
  const failures = results.flatMap((r) => INVARIANTS.filter((i) => !r.checks[i].ok).map((i) => `${r.fault} × ${i}: ${r.checks[i].detail}`));
  expect(failures).toEqual([]);
  expect(results.map((r) => r.fault)).toEqual([...FAULTS]);
});
