/**
 * The console's numbers, built from the latest scrapes (each panel from one exactly-named metric,
 * ./panels.ts) and the ack log; every figure is null ("n/a") when nothing reports it.
 */
import type { AckWatch } from './ack-watch';
import * as panels from './panels';
import { type LabelFilter, type Scrape, sum } from './prometheus';

/** Builds the console's numbers; every figure is null ("n/a") when nothing reports it. */
export function buildSnapshot(m: { prev: Scrape | undefined; cur: Scrape | undefined }, watch: AckWatch, localConnections: number) {
  const { cur } = m;
  const shardLag: Array<{ shard: string; millisBehind: number | null; iteratorAgeMs: number | null }> = [];
  // One row per shard and stream consumer (commit, projections): their lags differ by design.
  const shards = new Map<string, { shard: string; consumer: string | undefined }>();
  for (const s of cur?.samples ?? []) {
    if (!s.labels.shard || (s.name !== panels.METRICS.millisBehind && s.name !== panels.METRICS.iteratorAge)) continue;
    const consumer = s.labels.consumer;
    shards.set(`${s.labels.shard}\u0000${consumer ?? ''}`, { shard: s.labels.shard, consumer });
  }
  for (const key of [...shards.keys()].sort()) {
    const { shard, consumer } = shards.get(key)!;
    const only: LabelFilter = (l) => l.shard === shard && l.consumer === consumer;
    shardLag.push({
      shard: consumer && consumer !== 'processors' ? `${shard} (${consumer})` : shard,
      millisBehind: sum(cur, panels.METRICS.millisBehind, only) ?? null,
      iteratorAgeMs: sum(cur, panels.METRICS.iteratorAge, only) ?? null,
    });
  }
  const ackRates = watch.rates();
  const openMetric = sum(cur, panels.METRICS.ackConnections);
  return {
    at: new Date().toISOString(),
    writesPerS: panels.writesPerS(m),
    acksPerS: {
      queued: ackRates.queued,
      committed: ackRates.committed,
      rejected: ackRates.rejected,
      pushed: panels.counterRate(m, panels.METRICS.acksPushed) ?? null,
    },
    ackTotals: { ...watch.totals },
    processorRecordsPerS: panels.processorRecordsPerS(m),
    queuedLatencyMs: panels.queuedLatencyMs(m),
    committedLatencyMs: watch.committedLatency(),
    shardLag,
    dlqDepth: panels.dlqDepth(m),
    openWebSockets: { value: openMetric ?? localConnections, source: openMetric !== undefined ? 'metrics' : 'this instance' },
    readHitRatio: panels.readHitRatio(m),
    replay: panels.replay(m),
  };
}

