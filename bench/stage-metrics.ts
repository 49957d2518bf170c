/**
 * Where a write's time goes inside the stack, from the services' own /metrics and the emulators'
 * LevelDB LOG files, between two samples (system-growth measures fresh and grown with it, issue
 * #20: a grown stack that is slower must say at which stage it waits).
 *
 * prom-client resets its event-loop delay histogram at every collect, so the `nodejs_eventloop_lag_*`
 * gauges of the second scrape describe the window since the first one. Histograms are cumulative:
 * the window's share is the difference of their buckets.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { quantile as histogramQuantile } from '../ack-service/console/prometheus';
import { EVENT_LOOP_PRECISION_MS } from '../core/metrics';
import { round } from './stats';

/** `name{labels}` → value, every sample line of a Prometheus text exposition; empty if it does not answer. */
export async function scrapeAll(url: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  try {
    const text = await (await fetch(url, { signal: AbortSignal.timeout(5000) })).text();
    for (const line of text.split('\n')) {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
      if (m) out.set(m[1]! + (m[2] ?? ''), Number(m[3]));
    }
  } catch {
    // no figures rather than no run
  }
  return out;
}

/** What one LevelDB store logged: where its LOG was, to read only what it appends after. */
export interface LevelLogMark {
  file: string;
  offset: number;
}

export const markLevelLog = (dir: string): LevelLogMark => {
  const file = path.join(dir, 'LOG');
  return { file, offset: existsSync(file) ? statSync(file).size : 0 };
};

/**
 * LevelDB's own account of its background work since `mark` (its LOG: one line per memtable flush
 * and per compaction, and one each time a write had to wait for them).
 */
export function levelLogSince(mark: LevelLogMark): { flushes: number; compactions: number; compactedMB: number; stalls: number } {
  if (!existsSync(mark.file)) return { flushes: 0, compactions: 0, compactedMB: 0, stalls: 0 };
  const text = readFileSync(mark.file).subarray(mark.offset).toString('utf8');
  let flushes = 0;
  let compactions = 0;
  let bytes = 0;
  let stalls = 0;
  for (const line of text.split('\n')) {
    if (/Level-0 table #\d+: \d+ bytes OK/.test(line)) flushes++;
    const c = /Compacted \d+@\d+ \+ \d+@\d+ files => (\d+) bytes/.exec(line);
    if (c) {
      compactions++;
      bytes += Number(c[1]);
    }
    // MakeRoomForWrite: a writer waits for a flush or for level 0 to be compacted.
    if (/waiting\.\.\./.test(line)) stalls++;
  }
  return { flushes, compactions, compactedMB: round(bytes / 1e6, 1), stalls };
}

/** A histogram's window between two scrapes: count, mean and interpolated quantiles (ms). */
export function histogramBetween(a: Map<string, number>, b: Map<string, number>, name: string, labels: (l: string) => boolean = () => true): { count: number; meanMs: number; p50Ms: number; p99Ms: number } {
  const d = (k: string) => (b.get(k) ?? 0) - (a.get(k) ?? 0);
  const keysOf = (suffix: string) => [...b.keys()].filter((k) => k.startsWith(`${name}_${suffix}`) && labels(k));
  const count = keysOf('count').reduce((s, k) => s + d(k), 0);
  const sum = keysOf('sum').reduce((s, k) => s + d(k), 0);
  // Cumulative buckets by upper bound, summed over the label sets that match.
  const byLe = new Map<number, number>();
  for (const k of keysOf('bucket')) {
    const le = /le="([^"]+)"/.exec(k)?.[1];
    if (!le) continue;
    const bound = le === '+Inf' ? Infinity : Number(le);
    byLe.set(bound, (byLe.get(bound) ?? 0) + d(k));
  }
  // PromQL's histogram_quantile, as the console computes it (seconds → ms; 0 for an empty window).
  const quantile = (q: number): number => (count ? (histogramQuantile(q, byLe) ?? 0) * 1000 : 0);
  return { count, meanMs: count ? round((sum / count) * 1000, 2) : 0, p50Ms: round(quantile(0.5), 1), p99Ms: round(quantile(0.99), 1) };
}

/**
 * The event-loop delay a process reported for the window since its previous scrape (ms); undefined
 * if it reports none. Node's histogram records the whole interval between two of its timer's runs,
 * so the sampling period (EVENT_LOOP_PRECISION_MS) is taken off: what is left is the delay.
 */
export function eventLoopLag(b: Map<string, number>): { p50Ms: number; p99Ms: number; maxMs: number } | undefined {
  const g = (n: string) => {
    const k = [...b.keys()].find((x) => x === n || x.startsWith(`${n}{`));
    return k === undefined ? undefined : round(Math.max(0, b.get(k)! * 1000 - EVENT_LOOP_PRECISION_MS), 1);
  };
  const p50Ms = g('nodejs_eventloop_lag_p50_seconds');
  const p99Ms = g('nodejs_eventloop_lag_p99_seconds');
  const maxMs = g('nodejs_eventloop_lag_max_seconds');
  return p50Ms === undefined || p99Ms === undefined || maxMs === undefined ? undefined : { p50Ms, p99Ms, maxMs };
}

export interface StageEndpoints {
  gateway: string;
  processors: string;
  ackService: string;
  kinesisDir: string;
  dynamodbDir: string;
}

export interface StageSample {
  gateway: Map<string, number>;
  processors: Map<string, number>;
  ackService: Map<string, number>;
  kinesisLog: LevelLogMark;
  dynamodbLog: LevelLogMark;
}

export async function sampleStages(e: StageEndpoints): Promise<StageSample> {
  const [gateway, processors, ackService] = await Promise.all([scrapeAll(e.gateway), scrapeAll(e.processors), scrapeAll(e.ackService)]);
  return { gateway, processors, ackService, kinesisLog: markLevelLog(e.kinesisDir), dynamodbLog: markLevelLog(e.dynamodbDir) };
}

/** Rows (name, value, unit) describing the stages between two samples. */
export function stagesBetween(a: StageSample, b: StageSample): Array<{ name: string; value: number; unit: string }> {
  const rows: Array<{ name: string; value: number; unit: string }> = [];
  const hist = (label: string, h: ReturnType<typeof histogramBetween>) => {
    rows.push({ name: `${label} p50`, value: h.p50Ms, unit: `ms (mean ${h.meanMs} ms, p99 ${h.p99Ms} ms, ${h.count} observed)` });
    rows.push({ name: `${label} p99`, value: h.p99Ms, unit: 'ms' });
  };
  hist('gateway: PUT answered 202 (in the gateway)', histogramBetween(a.gateway, b.gateway, 'ackstream_gateway_request_duration_seconds', (k) => k.includes('method="PUT"') && k.includes('status="202"')));
  hist('gateway: one PutRecords call to Kinesis', histogramBetween(a.gateway, b.gateway, 'ackstream_gateway_putrecords_call_seconds'));
  const recs = histogramBetween(a.gateway, b.gateway, 'ackstream_gateway_putrecords_batch_records');
  rows.push({ name: 'gateway: records per PutRecords call (mean)', value: round(recs.meanMs / 1000, 1), unit: 'records' });
  hist('processors: handler time per batch (both consumers)', histogramBetween(a.processors, b.processors, 'ackstream_processor_batch_seconds'));
  hist('ack-service: decided → sent on the WebSocket', histogramBetween(a.ackService, b.ackService, 'ackstream_ack_push_latency_seconds'));
  for (const [name, m] of [['gateway', b.gateway], ['processors', b.processors], ['ack-service', b.ackService]] as const) {
    const lag = eventLoopLag(m);
    if (!lag) continue;
    rows.push({ name: `${name}: event-loop delay p99`, value: lag.p99Ms, unit: `ms (p50 ${lag.p50Ms}, max ${lag.maxMs})` });
  }
  for (const [name, mark] of [['Kinesis (kinesalite)', a.kinesisLog], ['DynamoDB (dynalite)', a.dynamodbLog]] as const) {
    const l = levelLogSince(mark);
    rows.push({ name: `${name} LevelDB: memtable flushes`, value: l.flushes, unit: 'flushes' });
    rows.push({ name: `${name} LevelDB: compactions`, value: l.compactions, unit: `compactions (${l.compactedMB} MB written)` });
    rows.push({ name: `${name} LevelDB: writes that waited for a flush or compaction`, value: l.stalls, unit: 'stalls (LOG lines)' });
  }
  return rows;
}
