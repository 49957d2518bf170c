/**
 * Fault runs: one stack of child processes behind TCP proxies, then for each fault a bounded
 * workload of writes (many items, several principals with WebSocket clients awaiting acks) while
 * the fault is injected, then the invariants. Prints a faults × invariants table.
 */
import { writeFileSync } from 'node:fs';
import { RedisKeys } from '../../core/keys';
import { ResilientAckClient } from './ack-client';
import { checkAcks, checkLog, checkReadModel, type CheckResult, INVARIANTS, type InvariantName, type WriteRecord } from './invariants';
import { type ProcessStack, sleep, startProcessStack } from '../helpers/process-stack';

export const FAULTS = ['processor kill -9', 'PostgreSQL unreachable', 'Redis unreachable', 'Kinesis emulator restart', 'ack service restart', 'network delay + resets'] as const;
export type FaultName = (typeof FAULTS)[number];

export interface FaultRunOptions {
  seed: number;
  faults: FaultName[];
  writesPerFault: number;
  /** Items the writes spread over (per tenant). */
  items: number;
  processorKills: number;
  outageMs: number;
  concurrency: number;
  ackDeadlineMs: number;
  log?: (line: string) => void;
}

export interface PhaseResult {
  fault: FaultName;
  writes: number;
  accepted: number;
  refusedByStatus: Record<string, number>;
  faultNote: string;
  seconds: number;
  checks: Record<InvariantName, CheckResult>;
}

/** mulberry32: a small seeded PRNG, so a run can be repeated from its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Principal {
  tenant: string;
  sub: string;
  token: string;
  client: ResilientAckClient;
}

export async function runFaults(opts: FaultRunOptions): Promise<PhaseResult[]> {
  const log = opts.log ?? (() => undefined);
  const random = rng(opts.seed);
  const stack = await startProcessStack('faults', { shardCount: 2 });
  const principals: Principal[] = [];
  const results: PhaseResult[] = [];
  const all: WriteRecord[] = [];
  try {
    for (const [tenant, sub] of [['acme', 'alice'], ['acme', 'bob'], ['globex', 'carol'], ['globex', 'dave']] as const) {
      const token = await stack.token({ tenant, sub, ttlSeconds: 3 * 3600 });
      const client = new ResilientAckClient(stack.ackUrl, token);
      await client.start();
      principals.push({ tenant, sub, token, client });
    }
    const baselineRss = rssOf(stack);
    // FAULTS_ONLY=<substring> runs just the matching faults (to reproduce one quickly).
    const only = process.env.FAULTS_ONLY?.toLowerCase();
    const faults = only ? opts.faults.filter((f) => f.toLowerCase().includes(only)) : opts.faults;
    for (const [phase, fault] of faults.entries()) {
      const started = Date.now();
      log(`phase ${phase + 1}/${faults.length}: ${fault}`);
      const writes: WriteRecord[] = [];
      const load = runWorkload(stack, principals, writes, { ...opts, phase, random });
      const faultNote = await injectFault(stack, fault, opts, random, load.progress);
      await load.done;
      all.push(...writes);
      const accepted = writes.filter((w) => w.status === 202);
      // Every accepted write's client must get its final ack; the deadline bounds a lost one.
      const deadline = Date.now() + opts.ackDeadlineMs;
      const missing = new Set<string>();
      for (const p of principals) {
        const ids = accepted.filter((w) => w.client === p.client).map((w) => w.requestId!);
        const lost = await p.client.waitForFinals(ids, deadline);
        for (const m of lost) missing.add(m);
        if (lost.length) log(`  missing final acks of ${p.tenant}/${p.sub}: ${await diagnoseMissing(stack, p, lost)}`);
      }
      await settle(stack);
      const logCheck = await checkLog(stack.pg, all);
      const checks: Record<InvariantName, CheckResult> = {
        '202 in log exactly once': logCheck.accepted,
        'non-202 not in log': logCheck.refused,
        'one final ack, no queued after': checkAcks(all, logCheck.decided, missing),
        'read model = fold of log': await readModelConverges(stack, log),
        'no crash, no leaks': await checkLeaks(stack, baselineRss),
      };
      const refusedByStatus: Record<string, number> = {};
      for (const w of writes) if (w.status !== 202) refusedByStatus[w.status] = (refusedByStatus[w.status] ?? 0) + 1;
      const result: PhaseResult = {
        fault, writes: writes.length, accepted: accepted.length, refusedByStatus, faultNote,
        seconds: Math.round((Date.now() - started) / 100) / 10, checks,
      };
      results.push(result);
      log(`  ${JSON.stringify({ ...result, checks: Object.fromEntries(Object.entries(checks).map(([k, v]) => [k, `${v.ok ? 'ok' : 'FAIL'}: ${v.detail}`])) })}`);
    }
  } finally {
    for (const p of principals) await p.client.close();
    const pids = Object.values(stack.services).flatMap((s) => s.pids);
    await stack.close();
    const alive = pids.filter((pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    });
    if (alive.length) log(`processes still alive after close: ${alive.join(', ')}`);
  }
  return results;
}

function runWorkload(
  stack: ProcessStack,
  principals: Principal[],
  writes: WriteRecord[],
  o: FaultRunOptions & { phase: number; random: () => number },
): { done: Promise<void>; progress: () => number } {
  let next = 0;
  let finished = 0;
  const worker = async () => {
    while (next < o.writesPerFault) {
      const i = next++;
      const p = principals[Math.floor(o.random() * principals.length)]!;
      const id = `i${Math.floor(o.random() * o.items)}`;
      const collection = o.random() < 0.5 ? 'notes' : 'tasks';
      const r = o.random();
      const key = `w${o.phase}-${i}`;
      let method = 'PUT';
      const headers: Record<string, string> = { authorization: `Bearer ${p.token}`, 'idempotency-key': key };
      let body: string | undefined = JSON.stringify({ n: i, phase: o.phase, by: p.sub, tags: [key], nested: { r: Math.floor(r * 1000) } });
      if (r < 0.25) {
        method = 'PATCH';
        headers['content-type'] = 'application/merge-patch+json';
        body = JSON.stringify({ patched: i, nested: { p: key }, ...(r < 0.05 ? { n: null } : {}) });
      } else if (r < 0.35) {
        method = 'DELETE';
        body = undefined;
      } else {
        headers['content-type'] = 'application/json';
        // Some conditional writes, so rejections are part of the load too.
        if (r > 0.93) headers['if-match'] = `"${1 + Math.floor(o.random() * 5)}"`;
        else if (r > 0.9) headers['if-none-match'] = '*';
      }
      const w: WriteRecord = { key, client: p.client, tenant: p.tenant, collection, id, status: 0 };
      writes.push(w);
      try {
        const res = await fetch(`${stack.gatewayUrl}/v1/collections/${collection}/items/${id}`, {
          method, headers, ...(body !== undefined ? { body } : {}), signal: AbortSignal.timeout(30_000),
        });
        const text = await res.text();
        w.status = res.status;
        if (res.status === 202) w.requestId = (JSON.parse(text) as { requestId: string }).requestId;
      } catch {
        w.status = 0;
      }
      finished++;
    }
  };
  const done = Promise.all(Array.from({ length: o.concurrency }, worker)).then(() => undefined);
  return { done, progress: () => finished / o.writesPerFault };
}

/** Waits until `share` of the phase's writes are done (so a fault lands mid-load). */
async function atProgress(progress: () => number, share: number): Promise<void> {
  while (progress() < share) await sleep(20);
}

async function injectFault(stack: ProcessStack, fault: FaultName, o: FaultRunOptions, random: () => number, progress: () => number): Promise<string> {
  const s = stack.services;
  switch (fault) {
    case 'processor kill -9': {
      // Spread the kills over the load: each one at a random moment, restarted at once.
      let kills = 0;
      for (let k = 0; k < o.processorKills; k++) {
        await atProgress(progress, Math.min(0.95, ((k + random()) / o.processorKills) * 0.9));
        await sleep(Math.floor(random() * 200));
        await s.processors.kill('SIGKILL');
        kills++;
        await s.processors.start();
      }
      return `${kills} kills`;
    }
    case 'PostgreSQL unreachable':
    case 'Redis unreachable': {
      const proxy = fault === 'PostgreSQL unreachable' ? stack.proxies.pg : stack.proxies.redis;
      await atProgress(progress, 0.1 + random() * 0.2);
      proxy.cut();
      await sleep(o.outageMs);
      proxy.restore();
      return `cut ${o.outageMs / 1000} s, ${proxy.stats.refused} connections refused`;
    }
    case 'Kinesis emulator restart': {
      await atProgress(progress, 0.2 + random() * 0.4);
      const t = Date.now();
      await s.kinesis.restart('SIGKILL');
      return `kill -9 + restart, down ${((Date.now() - t) / 1000).toFixed(1)} s`;
    }
    case 'ack service restart': {
      await atProgress(progress, 0.2 + random() * 0.4);
      const t = Date.now();
      await s['ack-service'].restart('SIGKILL');
      return `kill -9 + restart, down ${((Date.now() - t) / 1000).toFixed(1)} s`;
    }
    case 'network delay + resets': {
      await atProgress(progress, 0.05);
      const proxies = Object.values(stack.proxies);
      for (const p of proxies) p.setDelay(5, 40);
      const until = Date.now() + o.outageMs;
      let resets = 0;
      while (Date.now() < until && progress() < 1) {
        await sleep(300 + Math.floor(random() * 700));
        for (const p of proxies) resets += p.resetSome(0.2, random);
      }
      for (const p of proxies) p.setDelay(0, 0);
      return `5-45 ms delay, ${resets} connection resets`;
    }
  }
}

/**
 * Where a missing final ack got lost: not in the ack log at all (the processors never published
 * it) or in the log, with a cursor the client did or did not get past (the ack service never
 * delivered it).
 */
async function diagnoseMissing(stack: ProcessStack, p: Principal, requestIds: string[]): Promise<string> {
  const keys = new RedisKeys(stack.redisPrefix);
  const parts: string[] = [];
  for (const id of requestIds.slice(0, 5)) {
    const final = await stack.redis.get(keys.ackFinal(p.tenant, p.sub, id));
    const cursor = final?.split('\n')[1];
    const seen = (p.client.byRequest.get(id) ?? []).map((a) => `${a.stage}@${a.cursor}`).join(',') || 'nothing';
    parts.push(`${id}: ${final ? `final in log at cursor ${cursor}` : 'no final in log'}, client saw ${seen}`);
  }
  return `${parts.join('; ')} (client at cursor ${p.client.lastCursor}, ${p.client.connects} connects, closes ${p.client.closeCodes.join(',')})`;
}

/**
 * The read model follows the log (the projection consumer runs behind the commits, and retries
 * through the faults): it must equal the fold of the log within a minute of the load ending.
 */
async function readModelConverges(stack: ProcessStack, log: (line: string) => void): Promise<CheckResult> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const result = await checkReadModel(stack.pg, stack.doc, stack.redis, {
      prefix: stack.redisPrefix, itemsTable: stack.env.ITEMS_TABLE!, requestsTable: stack.env.REQUESTS_TABLE!,
    });
    if (result.ok) return result;
    if (Date.now() > deadline) {
      // What the consumers were doing: their checkpoints and the processors' warnings.
      const cps = await stack.pg.query<{ consumer: string; shard_id: string; sequence_number: string; updated_at: Date }>(
        'SELECT consumer, shard_id, sequence_number, updated_at FROM checkpoints ORDER BY consumer, shard_id',
      );
      log(`  checkpoints: ${cps.rows.map((r) => `${r.consumer}/${r.shard_id.slice(-3)}@${r.sequence_number.slice(-8)} ${r.updated_at.toISOString()}`).join(', ')}`);
      const warnings = stack.services.processors.text().split('\n').filter((l) => /"level":(40|50)|warn|error/i.test(l));
      log(`  processors' last warnings:\n${warnings.slice(-25).map((l) => `    ${l.slice(0, 600)}`).join('\n')}`);
      return result;
    }
    await sleep(1000);
  }
}

/** Waits until the event log stops growing (records that were put but not acknowledged may still be in flight). */
async function settle(stack: ProcessStack): Promise<void> {
  let last = -1;
  for (let i = 0; i < 60; i++) {
    const n = Number((await stack.pg.query<{ n: string }>('SELECT count(*) AS n FROM requests')).rows[0]!.n);
    if (n === last) break;
    last = n;
    await sleep(1000);
  }
  // The read model is complete once the projection consumer has caught up with the commit
  // consumer on every shard (it follows it by design; after a kill it may be seconds behind).
  for (let i = 0; i < 120; i++) {
    const behind = await stack.pg.query(
      `SELECT 1 FROM checkpoints c
         LEFT JOIN checkpoints p ON p.consumer = 'projections' AND p.stream = c.stream AND p.shard_id = c.shard_id
        WHERE c.consumer = 'processors' AND (p.sequence_number IS NULL OR p.sequence_number::numeric < c.sequence_number::numeric)`,
    );
    if (behind.rowCount === 0) return;
    await sleep(500);
  }
}

function rssOf(stack: ProcessStack): Record<string, number> {
  const out: Record<string, number> = {};
  for (const svc of ['gateway', 'ack-service', 'read-model', 'processors'] as const) {
    const rss = stack.services[svc].rssMiB();
    if (rss !== undefined) out[svc] = rss;
  }
  return out;
}

/** Connections held and memory grown stay bounded; no process the test started outlives its kill. */
async function checkLeaks(stack: ProcessStack, baseline: Record<string, number>): Promise<CheckResult> {
  const bad: string[] = [];
  const conns = Number((await stack.pg.query<{ n: string }>('SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()')).rows[0]!.n);
  // processors pool (10) + migration + this test's pool (3) + slack.
  if (conns > 20) bad.push(`${conns} PostgreSQL connections`);
  for (const p of Object.values(stack.proxies)) if (p.stats.active > 40) bad.push(`${p.stats.active} open connections via the ${p.name} proxy`);
  const now = rssOf(stack);
  for (const [svc, rss] of Object.entries(now)) {
    const base = baseline[svc] ?? rss;
    if (rss > 600 || rss - base > 300) bad.push(`${svc} RSS ${rss.toFixed(0)} MiB (started at ${base.toFixed(0)})`);
  }
  for (const svc of Object.values(stack.services)) {
    if (svc.starts > 0 && !svc.running) {
      bad.push(`${svc.name} crashed: ${svc.text().slice(-600).replace(/\s+/g, ' ')}`);
      if (process.env.FAULTS_DEBUG) process.stdout.write(`--- ${svc.name} output ---\n${svc.text().slice(-5000)}\n`);
    }
  }
  const stale = Object.values(stack.services).flatMap((s) => s.pids.slice(0, -1)).filter((pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  });
  if (stale.length) bad.push(`killed processes still alive: ${stale.join(',')}`);
  const summary = `pg conns ${conns}, proxy conns ${Object.values(stack.proxies).map((p) => p.stats.active).join('/')}, RSS MiB ${Object.entries(now).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')}`;
  return { ok: bad.length === 0, detail: bad.length ? bad.join('; ') : summary };
}

/** The faults × invariants table, as markdown. */
export function formatTable(results: PhaseResult[]): string {
  const head = `| fault | writes (202) | non-202 | injected | ${INVARIANTS.join(' | ')} |`;
  const sep = `| --- | --- | --- | --- | ${INVARIANTS.map(() => '---').join(' | ')} |`;
  const rows = results.map((r) => {
    const refused = Object.entries(r.refusedByStatus).map(([s, n]) => `${n}×${s === '0' ? 'net' : s}`).join(' ') || '0';
    return `| ${r.fault} | ${r.writes} (${r.accepted}) | ${refused} | ${r.faultNote} | ${INVARIANTS.map((i) => (r.checks[i].ok ? 'pass' : `**FAIL** ${r.checks[i].detail.replace(/\|/g, '/')}`)).join(' | ')} |`;
  });
  return [head, sep, ...rows].join('\n');
}

export function report(results: PhaseResult[], opts: FaultRunOptions, title: string): string {
  const text = `${title} (seed ${opts.seed}, ${opts.writesPerFault} writes per fault)\n\n${formatTable(results)}\n`;
  process.stdout.write(`\n${text}\n`);
  if (process.env.FAULTS_REPORT) writeFileSync(process.env.FAULTS_REPORT, `${text}\n${JSON.stringify(results, null, 1)}\n`);
  return text;
}
