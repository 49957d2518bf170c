/**
 * The console's figures, each from one metric a service exports, matched by its exact name (one
 * naming scheme, `ackstream_<service>_…`): no name patterns that could pick up a neighbour.
 */
import type { Latency } from './ack-watch';
import { bucketDelta, buckets, type LabelFilter, quantile, type Scrape, sum } from './prometheus';

export const METRICS = {
  /** gateway: HTTP requests by method, route, status. */
  gatewayRequests: 'ackstream_gateway_requests_total',
  /** gateway: request → answer; for accepted writes that is the time to the `queued` ack. */
  gatewayLatency: 'ackstream_gateway_request_duration_seconds',
  /** processors: per consumer and shard, how far behind the tip, and the age of the newest record handled. */
  millisBehind: 'ackstream_processor_millis_behind_latest',
  iteratorAge: 'ackstream_processor_iterator_age_ms',
  /** processors: records handled by outcome. */
  processorRecords: 'ackstream_processor_records_total',
  /** processors: letters in the SQS dead-letter queue. */
  dlqMessages: 'ackstream_dlq_messages',
  /** processors: the live version of each projection, and rebuild progress while one runs. */
  projectionLive: 'ackstream_projection_live_version',
  rebuildProgress: 'ackstream_projection_rebuild_progress_ratio',
  /** read API: item reads answered from the hot copy (near cache, Redis) or not (DynamoDB). */
  readHits: 'ackstream_read_hot_hits_total',
  readMisses: 'ackstream_read_hot_misses_total',
  /** ack service. */
  ackConnections: 'ackstream_ack_connections_open',
  acksPushed: 'ackstream_acks_pushed_total',
} as const;

type Window = { prev: Scrape | undefined; cur: Scrape | undefined };

const isAcceptedWrite: LabelFilter = (l) => ['PUT', 'PATCH', 'DELETE'].includes(l.method ?? '') && l.status === '202';

/**
 * Per-second rate of a counter between two scrapes. A series that first appears in the later one
 * counts from 0 if its family was already exported (its first writes are not lost).
 */
export function counterRate(m: Window, name: string, filter?: LabelFilter): number | undefined {
  const { prev, cur } = m;
  if (!prev || !cur || cur.at <= prev.at) return undefined;
  const b = sum(cur, name, filter);
  if (b === undefined) return undefined;
  const a = sum(prev, name, filter) ?? (prev.types.has(name) ? 0 : undefined);
  if (a === undefined) return undefined;
  return Math.max(0, b - a) / ((cur.at - prev.at) / 1000);
}

export const writesPerS = (m: Window) => counterRate(m, METRICS.gatewayRequests, isAcceptedWrite) ?? null;

export const processorRecordsPerS = (m: Window) => counterRate(m, METRICS.processorRecords) ?? null;

/** Accepted writes' latency to the 202 (= the queued ack) over the window; since start when the window saw none. */
export function queuedLatencyMs(m: Window): Latency {
  const cur = buckets(m.cur, METRICS.gatewayLatency, isAcceptedWrite);
  const delta = bucketDelta(buckets(m.prev, METRICS.gatewayLatency, isAcceptedWrite), cur);
  const observed = (b: Map<number, number> | undefined) => (b ? Math.max(...b.values()) > 0 : false);
  const use = observed(delta) ? delta : cur;
  if (!use || !observed(use)) return null;
  const q = (x: number) => quantile(x, use)! * 1000;
  return { p50: q(0.5), p95: q(0.95), p99: q(0.99) };
}

export const dlqDepth = (m: Window) => sum(m.cur, METRICS.dlqMessages) ?? null;

/** Hits ÷ (hits + misses) of item reads over the window; since start when the window saw none. */
export function readHitRatio(m: Window): number | null {
  const hits = counterRate(m, METRICS.readHits);
  const misses = counterRate(m, METRICS.readMisses);
  if (hits !== undefined && misses !== undefined && hits + misses > 0) return hits / (hits + misses);
  const h = sum(m.cur, METRICS.readHits);
  const n = sum(m.cur, METRICS.readMisses);
  return h !== undefined && n !== undefined && h + n > 0 ? h / (h + n) : null;
}

export interface ReplayPanel {
  projection: string;
  live: number;
  /** Versions being rebuilt and how far (0..1). */
  rebuilding: Array<{ version: number; progress: number }>;
}

/** One row per projection: its live version and any rebuild in progress. Empty when the processors are not scraped. */
export function replay(m: Window): ReplayPanel[] {
  const out = new Map<string, ReplayPanel>();
  for (const s of m.cur?.samples ?? []) {
    if (s.name === METRICS.projectionLive && s.labels.projection) {
      out.set(s.labels.projection, { projection: s.labels.projection, live: s.value, rebuilding: out.get(s.labels.projection)?.rebuilding ?? [] });
    }
  }
  for (const s of m.cur?.samples ?? []) {
    if (s.name !== METRICS.rebuildProgress || !s.labels.projection) continue;
    const row = out.get(s.labels.projection);
    row?.rebuilding.push({ version: Number(s.labels.version), progress: s.value });
  }
  return [...out.values()].sort((a, b) => a.projection.localeCompare(b.projection));
}
