/**
 * `npx tsx bench/sweeper-cost.ts [rows]` (issue #20, under the shared lock): what one TtlSweeper page
 * (Scan of 200 rows with the TTL filter, strongly consistent) costs in CPU on a requests table
 * holding `rows` request-shaped rows (default 60,000; the grown stack of system-growth holds
 * ≈ 315,000): the DynamoDB emulator (dynalite, a child at the stack's niceness, as `npm start` runs
 * it) and the client (the orchestrator's share), from /proc. Nothing is expired, as in the bench.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BatchWriteItemCommand } from '@aws-sdk/client-dynamodb';
import { createDynamo } from '../core/aws';
import { ensureTable, requestsTableDefinition } from '../core/read-store';
import { startEmulators } from '../scripts/local-stack';
import { TtlSweeper } from '../scripts/local-retention';
import { cpuTicksOf } from './proc-stat';

async function main() {
  const rows = Number(process.argv[2] ?? 60_000);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sweeper-cost-'));
  const emulators = await startEmulators({ dataDir: dir, dynamoNice: 10 });
  const dynamo = createDynamo({ region: 'us-east-1', endpoint: emulators.dynamoEndpoint });
  try {
    const table = 'requests';
    await ensureTable(dynamo, requestsTableDefinition(table));
    const doc = JSON.stringify({ requestId: 'r', status: 'committed', collection: 'bench', id: 'item-12345', at: new Date().toISOString(), version: 3 });
    const expires = String(Math.floor(Date.now() / 1000) + 30 * 86_400);
    for (let i = 0; i < rows; i += 25) {
      const items = Array.from({ length: Math.min(25, rows - i) }, (_, j) => ({ PutRequest: { Item: { pk: { S: `growth${(i + j) % 4}#r-${i + j}-${'x'.repeat(20)}` }, rank: { N: '3' }, doc: { S: doc }, expiresAt: { N: expires } } } }));
      await dynamo.send(new BatchWriteItemCommand({ RequestItems: { [table]: items } }));
      if (i % 10_000 === 0) process.stderr.write(`\rfilled ${i} of ${rows}`);
    }
    process.stderr.write(`\rfilled ${rows} rows\n`);
    // The emulator at rest, then with the sweeper at npm start's pace: its CPU (LevelDB's threads
    // included: an iterator's reads can start compactions) over the same time.
    const windowS = Number(process.env.SWEEPER_WINDOW_S ?? 60);
    await new Promise((r) => setTimeout(r, 20_000));
    let a = cpuTicksOf(emulators.dynamoPid!);
    await new Promise((r) => setTimeout(r, windowS * 1000));
    const restPct = (cpuTicksOf(emulators.dynamoPid!) - a) / windowS;
    const paced = new TtlSweeper(dynamo, { table, pageIntervalMs: 5_000 });
    a = cpuTicksOf(emulators.dynamoPid!);
    paced.start();
    await new Promise((r) => setTimeout(r, windowS * 1000));
    await paced.stop();
    const sweepPct = (cpuTicksOf(emulators.dynamoPid!) - a) / windowS;
    console.log(`emulator CPU over ${windowS} s: at rest ${restPct.toFixed(2)} % of a core, sweeping a page every 5 s ${sweepPct.toFixed(2)} %`);
    const sweeper = new TtlSweeper(dynamo, { table, pageIntervalMs: 1_000 });
    const pages = 100;
    const emuA = cpuTicksOf(emulators.dynamoPid!);
    const selfA = process.cpuUsage();
    const t0 = performance.now();
    let scanned = 0;
    for (let p = 0; p < pages; p++) scanned += (await sweeper.sweepPage()).scanned;
    const ms = performance.now() - t0;
    const emuMs = (cpuTicksOf(emulators.dynamoPid!) - emuA) * 10;
    const self = process.cpuUsage(selfA);
    const clientMs = (self.user + self.system) / 1000;
    console.log(`${rows} rows: ${pages} pages (${scanned} rows scanned) in ${Math.round(ms)} ms; CPU per page: emulator ${(emuMs / pages).toFixed(1)} ms, client ${(clientMs / pages).toFixed(1)} ms`);
    for (const interval of [5, 30]) console.log(`  one page every ${interval} s: ${((100 * (emuMs + clientMs)) / pages / (interval * 1000)).toFixed(2)} % of a core`);
  } finally {
    dynamo.destroy();
    await emulators.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
void main();
