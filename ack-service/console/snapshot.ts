/** The console's numbers, built from the latest scrapes and the ack log; every figure is null ("n/a") when nothing reports it. */
import type { AckWatch, Latency } from './ack-watch';
import { bucketDelta, buckets, type LabelFilter, quantile, rate, type Scrape, sum } from './prometheus';

const WRITE_METHODS = new Set(['PUT', 'PATCH', 'DELETE']);
const isWrite: LabelFilter = (l) => WRITE_METHODS.has((l.method ?? '').toUpperCase());
const isAcceptedWrite: LabelFilter = (l) => isWrite(l) && (l.status ?? l.code ?? '').startsWith('2');
const HOT = /^(redis|hot|hit|cache)$/i;
const COLD = /^(dynamodb|durable|miss|dynamo)$/i;

function histogramLatency(prev: Scrape | undefined, cur: Scrape | undefined, family: string, filter?: LabelFilter): Latency {
  const delta = bucketDelta(buckets(prev, family, filter), buckets(cur, family, filter));
  if (!delta) return null;
  const q = (x: number) => quantile(x, delta);
  const p50 = q(0.5);
  if (p50 === undefined) return null;
  return { p50: p50 * 1000, p95: q(0.95)! * 1000, p99: q(0.99)! * 1000 };
}

/** Builds the console's numbers; every figure is null ("n/a") when nothing reports it. */
export function buildSnapshot(m: { prev: Scrape | undefined; cur: Scrape | undefined }, watch: AckWatch, localConnections: number) {
  const { prev, cur } = m;
  const shardLag: Array<{ shard: string; millisBehind: number | null; iteratorAgeMs: number | null }> = [];
  // One row per shard and stream consumer (commit, projections): their lags differ by design.
  const shards = new Map<string, { shard: string; consumer: string | undefined }>();
  for (const s of cur?.samples ?? []) {
    if (!s.labels.shard || !/behind|lag|iterator_age/.test(s.name)) continue;
    const consumer = s.labels.consumer;
    shards.set(`${s.labels.shard}\u0000${consumer ?? ''}`, { shard: s.labels.shard, consumer });
  }
  for (const key of [...shards.keys()].sort()) {
    const { shard, consumer } = shards.get(key)!;
    const only: LabelFilter = (l) => l.shard === shard && l.consumer === consumer;
    shardLag.push({
      shard: consumer && consumer !== 'processors' ? `${shard} (${consumer})` : shard,
      millisBehind: sum(cur, /millis_behind|_lag_ms$|_lag$/, only) ?? null,
      iteratorAgeMs: sum(cur, /iterator_age/, only) ?? null,
    });
  }
  const readsBy = (re: RegExp) => (l: Record<string, string>) => Object.entries(l).some(([k, v]) => k !== 'service' && re.test(v));
  const readFamily = /^(ackstream_)?read(s|_model|_api)?_.*(lookups|hits|source|reads|requests)_total$/;
  const hot = rate(prev, cur, readFamily, readsBy(HOT)) ?? sum(cur, readFamily, readsBy(HOT));
  const cold = rate(prev, cur, readFamily, readsBy(COLD)) ?? sum(cur, readFamily, readsBy(COLD));
  const hits = sum(cur, /^(ackstream_)?read.*hot_hits_total$/);
  const misses = sum(cur, /^(ackstream_)?read.*hot_misses_total$/);
  const hitRatio = hot !== undefined && cold !== undefined && hot + cold > 0
    ? hot / (hot + cold)
    : hits !== undefined && misses !== undefined && hits + misses > 0 ? hits / (hits + misses) : null;
  const replay = (cur?.samples ?? [])
    .filter((s) => /replay|rebuild/.test(s.name) && !/_bucket$|_sum$|_count$/.test(s.name))
    .map((s) => ({ name: s.name, labels: s.labels, value: s.value }));
  const ackRates = watch.rates();
  const openMetric = sum(cur, /^(ackstream_)?acks?_connections_open$|^(ackstream_)?websockets?_open$/);
  return {
    at: new Date().toISOString(),
    writesPerS: rate(prev, cur, 'ackstream_gateway_requests_total', isAcceptedWrite) ?? null,
    acksPerS: {
      queued: ackRates.queued,
      committed: ackRates.committed,
      rejected: ackRates.rejected,
      pushed: rate(prev, cur, /^(ackstream_)?acks_pushed_total$/) ?? null,
    },
    ackTotals: { ...watch.totals },
    processorRecordsPerS: rate(prev, cur, /^(ackstream_)?processor_records_total$/) ?? null,
    queuedLatencyMs: histogramLatency(prev, cur, 'ackstream_gateway_request_duration_seconds', isWrite),
    committedLatencyMs: watch.committedLatency(),
    shardLag,
    dlqDepth: sum(cur, /(dlq|dead_letter).*(depth|messages|size)|parked_(records|messages|depth)$/) ?? null,
    openWebSockets: { value: openMetric ?? localConnections, source: openMetric !== undefined ? 'metrics' : 'this instance' },
    readHitRatio: hitRatio,
    replay,
  };
}

