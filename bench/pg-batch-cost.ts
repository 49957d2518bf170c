/**
 * `npx tsx bench/pg-batch-cost.ts [batches]` (under the shared lock; PostgreSQL at 127.0.0.1:5432, a
 * database of its own, dropped after): PostgreSQL and Node CPU per batch of two records on the
 * processors' path — the commit consumer's executeBatch, the projection consumer's lookupBatch and a
 * checkpoint save (issue #17). PostgreSQL CPU is summed over every `postgres` process in /proc: run it
 * on a quiet machine.
 */
import { procStat, TICK_MS } from './proc-stat';
import { Client, Pool } from 'pg';
import { migrate } from '../processors/migrate';
import { PgCommandStore } from '../processors/command-store';
import { PgCheckpointStore } from '../processors/checkpoints';
import { randomUUID } from 'node:crypto';

const pgCpu = (): number => {
  const fs = require('node:fs');
  let t = 0;
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const s = procStat(pid);
    if (s?.comm.startsWith('postgres')) t += s.utime + s.stime;
  }
  return t * TICK_MS;
};

async function main() {
  const db = `procbench_${process.pid}`;
  const admin = new Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/postgres' });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${db}`);
  const url = `postgres://postgres@127.0.0.1:5432/${db}`;
  try {
    await migrate(url);
    const pool = new Pool({ connectionString: url, max: 4 });
    const store = new PgCommandStore(pool);
    const cps = new PgCheckpointStore(pool, 'processors', 's');
    const n = Number(process.argv[2] ?? 2000);
    let seq = 1000n;
    const mk = (i: number) => ({ cmd: { v: 1, kind: 'put', requestId: randomUUID(), tenant: 'bench', principal: 'w1', collection: 'bench', id: `w-${i % 500}`, data: { title: `t${i}` }, receivedAt: new Date().toISOString() } as any, shardId: 'shard-0', sequenceNumber: String(seq++) });
    // warm
    for (let i = 0; i < 50; i++) await store.executeBatch([mk(i), mk(i + 1)]);
    const c0 = pgCpu(); const n0 = process.cpuUsage(); const t0 = Date.now();
    for (let i = 0; i < n; i++) {
      const b = [mk(2 * i), mk(2 * i + 1)];
      const r = await store.executeBatch(b);
      if (r.failure) throw r.failure.error;
      await store.lookupBatch(b);
      await cps.save('shard-0', b[1]!.sequenceNumber!);
    }
    const pg = pgCpu() - c0; const nu = process.cpuUsage(n0); const wall = Date.now() - t0;
    console.log(JSON.stringify({ batches: n, wallMs: wall, pgCpuMsPerBatch: +(pg / n).toFixed(3), nodeCpuMsPerBatch: +((nu.user + nu.system) / 1000 / n).toFixed(3) }));
    await pool.end();
  } finally {
    await admin.query(`DROP DATABASE ${db} WITH (FORCE)`);
    await admin.end();
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
