/**
 * The small fault run of the normal suite: 500 writes per fault under three faults (processor
 * kill -9, ack service restart, network delay + resets). The full run — 10,000 writes, all six
 * faults — is `npm run test:faults` (tests/faults/full.faults.ts).
 */
import { type FaultRunOptions, report, runFaults } from './harness';
import { INVARIANTS } from './invariants';

jest.setTimeout(170_000);

const opts: FaultRunOptions = {
  seed: Number(process.env.FAULT_SEED ?? 20261122),
  faults: ['processor kill -9', 'ack service restart', 'network delay + resets'],
  writesPerFault: 500,
  items: 60,
  processorKills: 3,
  outageMs: 3_000,
  concurrency: 8,
  ackDeadlineMs: 30_000,
};

test('under processor kill -9, ack service restart and network faults, no write is lost, duplicated or mis-acked', async () => {
  const results = await runFaults({ ...opts, log: (l) => process.stdout.write(`${l}\n`) });
  report(results, opts, 'small fault run');
  const failures = results.flatMap((r) => INVARIANTS.filter((i) => !r.checks[i].ok).map((i) => `${r.fault} × ${i}: ${r.checks[i].detail}`));
  expect(failures).toEqual([]);
  // The faults really happened while writes were being accepted.
  for (const r of results) expect(r.accepted).toBeGreaterThan(opts.writesPerFault / 2);
});
