/**
 * `npx tsx bench/dynalite-growth.ts [--items N] [--writes N] [--stores default,tuned] [--out DIR]`
 *
 * The DynamoDB emulator's CPU per write, on an empty store and on a grown one, with LevelDB's
 * default options and with the local stack's (DYNALITE_LEVELDB; scripts/local-stack.ts), in one
 * run (issue #20). Per store: dynalite in a process of its own, as `npm start`'s data directory
 * keeps it (scripts/emulator-child.ts, on disk), driven with the real AWS SDK client through the
 * read model's own DynamoDB code; its CPU (all threads, LevelDB's compactions included) from
 * /proc. Each kind of write: a warm-up of a quarter of `--writes`, a wait until LevelDB's compactions
 * are done, then `--writes` writes (default 20,000, so the compactions they cause fall within),
 * closed-loop at 8 in flight as the projection writes:
 *  - `update`: the projection's conditional PutItem of an item that exists (a newer version),
 *  - `new item`: the same of an item that does not exist yet,
 *  - `request row`: final request statuses, BatchWriteItem of 25 (µs per row).
 * Grown = after `--items` items of 1 KB (4 tenants) and three request rows per item, about what
 * the `system-growth` scenario's 300,000 writes leave. Linux only. Writes JSON and an SVG into
 * bench/results/ (or --out).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpuTicksOf, TICK_MS } from './proc-stat';
import os from 'node:os';
import path from 'node:path';
import { BatchWriteCommand } from '@aws-sdk/lib-dynamodb';
import { createDocumentClient, createDynamo } from '../core/aws';
import { createProgress } from '../core/progress';
import { mapLimit } from '../core/map-limit';
import { DynamoDurableStore, DynamoRequestBatchWriter, ensureTable, itemRow, itemsTableDefinition, requestRow, requestsTableDefinition, type ItemWrite } from '../core/read-store';
import { freePort, ROOT, stopChild } from '../scripts/local-stack';
import { barChart } from './plot';
import { describeMachine } from './report';

const ITEMS = 'items';
const REQUESTS = 'requests';
const TENANTS = ['t0', 't1', 't2', 't3'];
const CONCURRENCY = 8;
const progress = createProgress({ label: 'dynalite-growth', unit: 'writes/s' });

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const FILL_ITEMS = Number(arg('items') ?? 100_000);
const MEASURED = Number(arg('writes') ?? 20_000);
const WARMUP = Math.round(MEASURED / 4);
const STORES = (arg('stores') ?? 'default,tuned').split(',') as Array<'default' | 'tuned'>;
const OUT = arg('out') ?? path.join(__dirname, 'results');

const doc1k = (id: string, v: number) => JSON.stringify({ id, v, body: 'x'.repeat(1000) });
/** CPU time (user + system, all threads) of a process so far, in µs. */
const cpuUs = (pid: number): number => cpuTicksOf(pid) * TICK_MS * 1000;

function dirSize(dir: string): { mb: number; tableFiles: number } {
  let bytes = 0;
  let tableFiles = 0;
  for (const f of readdirSync(dir)) {
    bytes += statSync(path.join(dir, f)).size;
    if (f.endsWith('.ldb')) tableFiles++;
  }
  return { mb: Math.round((bytes / 2 ** 20) * 10) / 10, tableFiles };
}

/** Waits until the process is idle (under 5 % of a core for 2 s: LevelDB's compactions done), at most 60 s. */
async function settle(pid: number): Promise<void> {
  let quiet = 0;
  for (let i = 0; i < 120 && quiet < 4; i++) {
    const c0 = cpuUs(pid);
    await new Promise((r) => setTimeout(r, 500));
    quiet = cpuUs(pid) - c0 < 25_000 ? quiet + 1 : 0;
  }
}

async function startDynalite(dir: string, store: 'default' | 'tuned'): Promise<{ child: ChildProcess; endpoint: string }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts', 'emulator-child.ts'), 'dynamodb', String(port), dir], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, DYNALITE_LEVELDB: store },
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`dynalite exited (${c}) before it listened`)));
  });
  child.stdout!.resume();
  return { child, endpoint: `http://127.0.0.1:${port}` };
}

interface Measure { kind: string; writes: number; cpuUsPerWrite: number; writesPerSecond: number; compactedBytesPerWrite: number }

/**
 * Bytes LevelDB has written into table files so far, by its LOG (`dir`/LOG): memtable flushes
 * ("Level-0 table #N: M bytes OK") and compactions ("Compacted ... => N bytes").
 */
function tableBytesWritten(dir: string): number {
  let log: string;
  try {
    log = readFileSync(path.join(dir, 'LOG'), 'utf8');
  } catch {
    return 0;
  }
  let bytes = 0;
  for (const m of log.matchAll(/Level-0 table #\d+: (\d+) bytes OK|=> (\d+) bytes/g)) bytes += Number(m[1] ?? m[2]);
  return bytes;
}

async function runStore(store: 'default' | 'tuned', dir: string): Promise<{ store: string; empty: Measure[]; grown: Measure[]; fillSeconds: number; size: { mb: number; tableFiles: number } }> {
  const { child, endpoint } = await startDynalite(dir, store);
  const dynamo = createDynamo({ region: 'us-east-1', endpoint });
  const doc = createDocumentClient(dynamo);
  const durable = new DynamoDurableStore(doc, ITEMS, REQUESTS);
  const requests = new DynamoRequestBatchWriter(doc, REQUESTS);
  const put = async (w: ItemWrite) => {
    if (!(await durable.putItem(w))) throw new Error(`the bench's write of ${w.id} v${w.version} was refused as stale`);
  };
  let reqSeq = 0;
  const item = (n: number, version: number): ItemWrite => ({
    tenant: TENANTS[n % TENANTS.length]!, collection: 'things', id: `item-${n}`, version, updatedAt: new Date().toISOString(), json: doc1k(`item-${n}`, version),
  });
  const requestRows = (count: number) =>
    Array.from({ length: count }, () => {
      const n = reqSeq++;
      return { tenant: TENANTS[n % TENANTS.length]!, requestId: `req-${n}`, rank: 3, json: JSON.stringify({ requestId: `req-${n}`, status: 'committed', seq: n }) };
    });

  /** `count` writes made by `write(i)`, 8 at a time; the emulator's CPU per write. */
  async function measure(kind: string, count: number, write: (i: number) => Promise<unknown>, perCall = 1): Promise<Measure> {
    const run = async (n: number) => {
      const calls = Math.ceil(n / perCall);
      await mapLimit(Array.from({ length: calls }, (_, i) => i), CONCURRENCY, write);
      return calls * perCall;
    };
    await run(Math.max(perCall, Math.round(count / 4))); // warm-up
    await settle(child.pid!); // what the warm-up left to compact is not this measurement's
    const cpu0 = cpuUs(child.pid!);
    const bytes0 = tableBytesWritten(dir);
    const t0 = process.hrtime.bigint();
    const writes = await run(count);
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const m = {
      kind, writes, cpuUsPerWrite: Math.round((cpuUs(child.pid!) - cpu0) / writes), writesPerSecond: Math.round(writes / secs),
      compactedBytesPerWrite: Math.round((tableBytesWritten(dir) - bytes0) / writes),
    };
    progress.log(`${store}: ${kind}: ${m.cpuUsPerWrite} µs of CPU per write, ${m.writesPerSecond} writes/s, LevelDB wrote ${m.compactedBytesPerWrite} bytes of table files per write`);
    return m;
  }

  /**
   * One round of the three kinds; `next` is the first item number not written yet. Updates go to
   * the items of the fill (0..existing-1) or, on the empty store, to the ones just written.
   */
  async function round(next: number, existing: number): Promise<{ measures: Measure[]; next: number }> {
    let n = next;
    const fresh = await measure('new item', MEASURED, async () => put(item(n++, 1)));
    const [base, pool] = existing > 0 ? [0, existing] : [next, n - next];
    let k = 0;
    const step = 7919; // a prime: walks the pool in a scattered order without repeating until it wraps
    const updated = await measure('update', MEASURED, async () => {
      const i = k++;
      return put(item(base + ((i * step) % pool), 2 + Math.floor(i / pool)));
    });
    const rows = await measure('request row', MEASURED, async () => requests.putFinalRequests(requestRows(25)), 25);
    return { measures: [fresh, updated, rows], next: n };
  }

  try {
    await ensureTable(dynamo, itemsTableDefinition(ITEMS));
    await ensureTable(dynamo, requestsTableDefinition(REQUESTS));
    // Empty: items from FILL_ITEMS up, so the fill below (0..FILL_ITEMS-1) is all new keys.
    const empty = await round(FILL_ITEMS, 0);
    // The fill: FILL_ITEMS items and three request rows each, in batches of 25.
    const t0 = Date.now();
    const total = FILL_ITEMS * 4;
    let done = 0;
    const batches: Array<() => Promise<void>> = [];
    for (let i = 0; i < FILL_ITEMS; i += 25) {
      const items = Array.from({ length: Math.min(25, FILL_ITEMS - i) }, (_, j) => itemRow(item(i + j, 1)));
      batches.push(async () => {
        await doc.send(new BatchWriteCommand({ RequestItems: { [ITEMS]: items.map((Item) => ({ PutRequest: { Item } })) } }));
        await requests.putFinalRequests(requestRows(items.length * 3));
        done += items.length * 4;
        progress.update(done, total, `${store}: filling`);
      });
    }
    await mapLimit(batches, 4, (b) => b());
    progress.finish(done, total, `${store}: filled in ${Math.round((Date.now() - t0) / 1000)} s`);
    const fillSeconds = Math.round((Date.now() - t0) / 1000);
    await settle(child.pid!);
    const grown = await round(empty.next, FILL_ITEMS);
    return { store, empty: empty.measures, grown: grown.measures, fillSeconds, size: dirSize(dir) };
  } finally {
    dynamo.destroy();
    await stopChild(child);
  }
}

async function main(): Promise<void> {
  if (process.platform !== 'linux') throw new Error('reads CPU times from /proc (Linux only)');
  const machine = describeMachine();
  const root = mkdtempSync(path.join(os.tmpdir(), 'dynalite-growth-'));
  const results = [];
  try {
    for (const store of STORES) results.push(await runStore(store, path.join(root, store)));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  const kinds = ['update', 'new item', 'request row'];
  const lines = [
    `dynalite CPU per write (µs), ${FILL_ITEMS.toLocaleString('en-US')} items + ${(FILL_ITEMS * 3).toLocaleString('en-US')} request rows; ${machine.cpu}, ${machine.cores} cores, ${machine.node}, ${machine.date}, commit ${machine.commit}${machine.dirty ? ' (dirty)' : ''}`,
    '',
    `| store | ${kinds.map((k) => `${k}: empty → grown`).join(' | ')} | grown store on disk | fill |`,
    `| --- | ${kinds.map(() => '---:').join(' | ')} | ---: | ---: |`,
    ...results.map((r) => {
      const cell = (k: string) => `${r.empty.find((m) => m.kind === k)!.cpuUsPerWrite} → ${r.grown.find((m) => m.kind === k)!.cpuUsPerWrite}`;
      return `| ${r.store} | ${kinds.map(cell).join(' | ')} | ${r.size.mb} MB, ${r.size.tableFiles} table files | ${r.fillSeconds} s |`;
    }),
    '',
    `| store: bytes LevelDB wrote to table files per write (flushes + compactions) | ${kinds.map((k) => `${k}: empty → grown`).join(' | ')} |`,
    `| --- | ${kinds.map(() => '---:').join(' | ')} |`,
    ...results.map((r) => {
      const cell = (k: string) => `${r.empty.find((m) => m.kind === k)!.compactedBytesPerWrite} → ${r.grown.find((m) => m.kind === k)!.compactedBytesPerWrite}`;
      return `| ${r.store} | ${kinds.map(cell).join(' | ')} |`;
    }),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  mkdirSync(OUT, { recursive: true });
  const stamp = `${machine.date.slice(0, 10)}-${machine.commit}`;
  writeFileSync(path.join(OUT, `dynalite-growth-${stamp}.json`), `${JSON.stringify({ machine, fillItems: FILL_ITEMS, measuredWrites: MEASURED, warmup: WARMUP, results }, null, 2)}\n`);
  const svg = barChart({
    title: `dynalite CPU per write, empty vs ${FILL_ITEMS.toLocaleString('en-US')} items (${machine.date.slice(0, 16)}Z, ${machine.commit})`,
    yLabel: 'µs of CPU per write',
    keys: kinds,
    groups: results.flatMap((r) => [
      { label: `${r.store}, empty`, values: Object.fromEntries(r.empty.map((m) => [m.kind, m.cpuUsPerWrite])) },
      { label: `${r.store}, grown`, values: Object.fromEntries(r.grown.map((m) => [m.kind, m.cpuUsPerWrite])) },
    ]),
  });
  writeFileSync(path.join(OUT, 'dynalite-growth-cpu.svg'), svg);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
