/**
 * Target mode of `npm run bench`: the load scenarios driven against a deployed stack (or any
 * running one) over its public URLs and a token, instead of servers started here:
 *
 *   npm run bench -- --target gateway=<url>,read=<url>,acks=<ws-url> --token <jwt> [writes reads acks mixed] [--seconds N] [--quick]
 *
 * Only what a client of the deployment can do is measured, through the public API:
 * - writes: accepted writes/s and PUT → 202 (`queued`) latency, closed loop at a few concurrency levels;
 * - reads:  item GETs/s on the read API over items written (and committed) first;
 * - acks:   N clients of the project's SDK, each with its own ack WebSocket, each writing and
 *           awaiting `committed` before the next write: committed writes/s and PUT → committed latency
 *           (the whole pipeline: stream, commit consumer, database, ack fan-out);
 * - mixed:  the 100:1 reads to writes mix, each write awaited until `committed`.
 * The other scenarios need local internals (a PostgreSQL to seed, emulators to measure, the
 * services' processes to profile) and are reported as skipped.
 *
 * Everything is written into collection `bench` of the token's tenant: use a dedicated tenant.
 * There is no baseline here: the load generator and the system are on different machines.
 */
import autocannon from 'autocannon';
import { createClient } from '../client';
import { runLoad } from './load';
import { percentiles, perSecond, round } from './stats';
import type { BenchContext, Figure, ScenarioResult } from './types';

export interface BenchTarget {
  gatewayUrl: string;
  readUrl: string;
  ackUrl: string;
  token: string;
}

/** Why a scenario cannot run against a deployment. */
export const SKIPPED_IN_TARGET_MODE: Record<string, string> = {
  pipeline: 'needs local internals (its own emulators, PostgreSQL and the processors in-process); `acks` measures the deployed pipeline end to end instead',
  attachments: 'measures the object store and the worker it starts itself (the baseline is the store\'s own PUT throughput); not yet wired to a deployed bucket',
  system: 'starts the whole local stack with `npm start` and measures its processes\' CPU; against a deployed stack run writes/reads/mixed/acks instead',
  'system-growth': 'fills a fresh local `npm start` stack with 300,000 writes and measures its data directory; a deployed stack\'s data is bounded by AWS (stream retention, TTLs)',
  replay: 'needs direct access to the event log in PostgreSQL (run `npm run replay` on an operations task instead, see docs/DEPLOY.md)',
};

const COLLECTION = 'bench';

/** `gateway=<url>,read=<url>,acks=<ws-url>` → URLs (checked). */
export function parseTarget(spec: string, token: string | undefined): BenchTarget {
  const parts = new Map<string, string>();
  for (const p of spec.split(',')) {
    const i = p.indexOf('=');
    if (i <= 0) throw new Error(`--target: "${p}" is not key=url (expected gateway=<url>,read=<url>,acks=<ws-url>)`);
    parts.set(p.slice(0, i).trim(), p.slice(i + 1).trim());
  }
  const unknown = [...parts.keys()].filter((k) => !['gateway', 'read', 'acks'].includes(k));
  if (unknown.length) throw new Error(`--target: unknown key(s) ${unknown.join(', ')} (expected gateway, read, acks)`);
  const url = (key: string, schemes: string[]) => {
    const v = parts.get(key);
    if (!v) throw new Error(`--target: ${key}=<url> is missing`);
    let ok = false;
    try {
      ok = schemes.includes(new URL(v).protocol);
    } catch {
      ok = false;
    }
    if (!ok) throw new Error(`--target: ${key}=${v} is not a ${schemes.map((s) => s.slice(0, -1)).join('/')} URL`);
    return v.replace(/\/+$/, '');
  };
  if (!token) throw new Error('--target needs --token <jwt> (or $TOKEN) valid for that deployment');
  return { gatewayUrl: url('gateway', ['http:', 'https:']), readUrl: url('read', ['http:', 'https:']), ackUrl: url('acks', ['ws:', 'wss:']), token };
}

export interface TargetPlan {
  /** Seconds per load phase. */
  seconds: number;
  quick: boolean;
}

export type TargetScenario = (ctx: BenchContext, target: BenchTarget, plan: TargetPlan) => Promise<ScenarioResult>;

const body1k = (n: number) => ({ n, text: 'x'.repeat(1000) });

/** Writes the items and waits for every `committed` ack (the reads must find them). */
async function seed(target: BenchTarget, ids: string[], ctx: BenchContext): Promise<void> {
  const client = sdk(target);
  try {
    for (let i = 0; i < ids.length; i += 25) {
      const handles = await Promise.all(ids.slice(i, i + 25).map((id) => client.put(COLLECTION, id, { name: id, tags: ['bench'], price: 12.5 })));
      await Promise.all(handles.map((h) => withTimeout(h.committed, 60_000, `seed write ${h.requestId} committed`)));
      ctx.progress(Math.min(ids.length, i + 25), ids.length, 'seeding');
    }
  } finally {
    client.close();
  }
}

function sdk(target: BenchTarget) {
  return createClient({ gatewayUrl: target.gatewayUrl, readUrl: target.readUrl, ackUrl: target.ackUrl, token: target.token });
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms / 1000} s`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Refuses to report figures of a run where nothing succeeded (a wrong URL or token, not a measurement). */
function mustHave(ok: number, errors: number, what: string, hint: string): void {
  if (ok === 0) throw new Error(`no successful ${what} (${errors} failed): ${hint}`);
}

const writes: TargetScenario = async (ctx, target, plan) => {
  const levels = plan.quick ? [4] : [1, 16, 64];
  const figures: Figure[] = [];
  let n = 0;
  for (const [i, connections] of levels.entries()) {
    ctx.log(`writes: ${connections} connection(s), ${plan.seconds}s of PUTs (1 KB) to ${target.gatewayUrl}`);
    const statuses = new Map<number, number>();
    const r = await autocannon({
      url: target.gatewayUrl,
      connections,
      duration: plan.seconds,
      requests: [
        {
          method: 'PUT',
          headers: { authorization: `Bearer ${target.token}`, 'content-type': 'application/json' },
          // Spread over 1,000 items (and so over shards), as real traffic would be.
          setupRequest: (req) => ({ ...req, path: `/v1/collections/${COLLECTION}/items/w${n % 1000}`, body: JSON.stringify(body1k(n++)) }),
          onResponse: (status) => statuses.set(status, (statuses.get(status) ?? 0) + 1),
        },
      ],
    });
    ctx.progress(i + 1, levels.length, `c=${connections}`);
    const accepted = statuses.get(202) ?? 0;
    const other = r.non2xx + r.errors + r.timeouts + (r['2xx'] - accepted);
    mustHave(accepted, other, 'writes (202)', `answers ${JSON.stringify(Object.fromEntries(statuses))}; check the gateway URL and the token`);
    figures.push({
      name: `accepted writes, c=${connections}`,
      value: Math.round(accepted / plan.seconds),
      unit: 'writes/s',
      // autocannon's histogram has no p95: its p97.5 stands in (conservative).
      latency: { p50: r.latency.p50, p95: r.latency.p97_5, p99: r.latency.p99, max: r.latency.max, mean: round(r.latency.average) },
    });
    figures.push({ name: `non-202 answers + errors, c=${connections}`, value: other, unit: 'count' });
  }
  return {
    scenario: 'writes',
    figures,
    notes: [`Against ${target.gatewayUrl}: closed-loop PUTs (1 KB bodies over 1,000 items), ${plan.seconds}s per level; latency = PUT → 202 (the write is durable on the stream, the queued ack appended).`],
  };
};

const reads: TargetScenario = async (ctx, target, plan) => {
  const ids = Array.from({ length: plan.quick ? 20 : 200 }, (_, i) => `r${i}`);
  ctx.log(`reads: seeding ${ids.length} items through ${target.gatewayUrl}, awaiting committed`);
  await seed(target, ids, ctx);
  const connections = plan.quick ? 4 : 32;
  ctx.log(`reads: ${connections} connections, ${plan.seconds}s of item GETs on ${target.readUrl}`);
  const r = await runLoad(
    { mode: 'reads', readUrl: target.readUrl, paths: ids.map((id) => `/v1/collections/${COLLECTION}/items/${id}`), token: target.token, connections, durationS: plan.seconds },
    (s) => ctx.progress(s, plan.seconds, 'reads'),
  );
  mustHave(r.readLatencies.length, r.readErrors, 'reads (2xx)', 'check the read URL and the token');
  return {
    scenario: 'reads',
    figures: [
      { name: `item reads, c=${connections}`, value: round(r.readLatencies.length / r.durationS, 0), unit: 'req/s', latency: percentiles(r.readLatencies) },
      { name: 'read errors (non-2xx)', value: r.readErrors, unit: 'count' },
    ],
    series: [perSecond('reads', 'requests/s', r.readTimes, 0, r.durationS)],
    notes: [`Against ${target.readUrl}: ${connections} autocannon connections over ${ids.length} committed items (uniform), ${plan.seconds}s.`],
  };
};

const acks: TargetScenario = async (ctx, target, plan) => {
  const clients = plan.quick ? 4 : 32;
  ctx.log(`acks: ${clients} SDK clients (one ack WebSocket each), write → committed in a closed loop, ${plan.seconds}s`);
  const latencies: number[] = [];
  const committedAt: number[] = [];
  let rejected = 0;
  let failed = 0;
  let firstError = '';
  const t0 = performance.now();
  const end = t0 + plan.seconds * 1000;
  const progress = setInterval(() => ctx.progress((performance.now() - t0) / 1000, plan.seconds, `${latencies.length} committed`), 500);
  try {
    await Promise.all(
      Array.from({ length: clients }, async (_, c) => {
        const client = sdk(target);
        try {
          for (let i = 0; performance.now() < end; i++) {
            const begin = performance.now();
            try {
              const h = await client.put(COLLECTION, `a${c}-${i % 50}`, body1k(i));
              await withTimeout(h.committed, 60_000, `committed ack of ${h.requestId}`);
              const at = performance.now();
              latencies.push(at - begin);
              committedAt.push(at - t0);
            } catch (err) {
              if ((err as Error).name === 'WriteRejectedError') rejected++;
              else failed++;
              firstError ||= (err as Error).message;
              if (failed > 20 && latencies.length === 0) break; // nothing works: stop hammering
            }
          }
        } finally {
          client.close();
        }
      }),
    );
  } finally {
    clearInterval(progress);
  }
  const seconds = (performance.now() - t0) / 1000;
  mustHave(latencies.length, rejected + failed, 'committed writes', `${firstError || 'no answer'}; check the URLs and the token`);
  return {
    scenario: 'acks',
    figures: [
      { name: `committed writes, ${clients} clients`, value: round(latencies.length / seconds, 1), unit: 'writes/s', latency: percentiles(latencies) },
      { name: 'rejected + failed writes', value: rejected + failed, unit: 'count' },
    ],
    series: [perSecond('committed acks', 'acks/s', committedAt, 0, seconds)],
    notes: [
      `Against ${target.gatewayUrl} and ${target.ackUrl}: ${clients} clients of the project's SDK, each writing and awaiting its committed ack on its own WebSocket before the next write; latency = PUT sent → committed ack received.`,
      ...(firstError ? [`first error: ${firstError}`] : []),
    ],
  };
};

const mixed: TargetScenario = async (ctx, target, plan) => {
  const ids = Array.from({ length: plan.quick ? 20 : 200 }, (_, i) => `m${i}`);
  ctx.log(`mixed: seeding ${ids.length} items, awaiting committed`);
  await seed(target, ids, ctx);
  const connections = plan.quick ? 4 : 16;
  const ratio = 100;
  ctx.log(`mixed: ${connections} read connections, 1 write per ${ratio} reads awaiting committed, ${plan.seconds}s`);
  const r = await runLoad(
    {
      mode: 'mixed', readUrl: target.readUrl, paths: ids.map((id) => `/v1/collections/${COLLECTION}/items/${id}`), token: target.token,
      connections, durationS: plan.seconds, gatewayUrl: target.gatewayUrl, ackUrl: target.ackUrl, writeIds: ids, ratio, maxOutstanding: 64,
    },
    (s) => ctx.progress(s, plan.seconds, 'mixed'),
  );
  mustHave(r.readLatencies.length, r.readErrors, 'reads (2xx)', 'check the read URL and the token');
  const committed = r.committedLatencies ?? [];
  return {
    scenario: 'mixed',
    figures: [
      { name: 'reads (read API)', value: round(r.readLatencies.length / r.durationS, 0), unit: 'req/s', latency: percentiles(r.readLatencies) },
      { name: 'writes queued (PUT -> 202)', value: round((r.queuedLatencies?.length ?? 0) / r.durationS, 1), unit: 'req/s', latency: percentiles(r.queuedLatencies ?? []) },
      { name: 'writes committed (PUT -> committed ack)', value: round(committed.length / r.durationS, 1), unit: 'writes/s', latency: percentiles(committed) },
      { name: 'read errors (non-2xx)', value: r.readErrors, unit: 'count' },
      { name: 'write errors + rejected + unfinished', value: (r.writeErrors ?? 0) + (r.rejected ?? 0) + (r.writesUnfinished ?? 0), unit: 'count' },
    ],
    series: [perSecond('reads', 'requests/s', r.readTimes, 0, r.durationS)],
    notes: [`Against the deployment: ${connections} read connections over ${ids.length} items, writes paced at 1 per ${ratio} reads (at most 64 in flight), each awaited until committed; ${plan.seconds}s.`],
  };
};

export const TARGET_SCENARIOS: Record<string, TargetScenario> = { writes, reads, acks, mixed };
