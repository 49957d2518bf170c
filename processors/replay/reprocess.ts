/**
 * Reprocess: feeds a range of the command stream through the processors' handler again (e.g.
 * after restoring PostgreSQL from a backup). The request id is unique in the database, so records
 * already decided change nothing and get the same outcome; lost ones are decided now. Shards are
 * read from AT_TIMESTAMP (or TRIM_HORIZON) up to the moment the command started; a batch the
 * handler fails is retried from its first failed record, as the event source mapping would.
 */
import { listShards } from '../../core/kinesis-shards';
import { toKinesisEvent } from '../runner';
import { GetRecordsCommand, GetShardIteratorCommand, type KinesisClient, type _Record, type Shard } from '@aws-sdk/client-kinesis';
import type { KinesisHandler } from '../commit-consumer';
import type { ProgressSink } from '../../core/progress';

export interface ReprocessOptions {
  kinesis: KinesisClient;
  stream: string;
  region: string;
  handler: KinesisHandler;
  since?: Date;
  batchSize?: number;
  maxRetries?: number;
  log: (line: string) => void;
  progress?: ProgressSink;
}

export interface ReprocessResult {
  shards: number;
  records: number;
  seconds: number;
}

export async function reprocess(o: ReprocessOptions): Promise<ReprocessResult> {
  const started = Date.now();
  const until = new Date(started);
  const shards = await listShards(o.kinesis, o.stream);
  // Parents before children keeps each item's records in order across a reshard.
  const ordered = orderParentsFirst(shards);
  let records = 0;
  for (const shard of ordered) {
    records += await reprocessShard(o, shard.ShardId!, until, (n) => o.progress?.update(records + n, records + n));
  }
  o.progress?.finish(records, records);
  return { shards: ordered.length, records, seconds: (Date.now() - started) / 1000 };
}

function orderParentsFirst(shards: Shard[]): Shard[] {
  const byId = new Map(shards.map((s) => [s.ShardId!, s]));
  const out: Shard[] = [];
  const seen = new Set<string>();
  const visit = (s: Shard) => {
    if (seen.has(s.ShardId!)) return;
    seen.add(s.ShardId!);
    for (const p of [s.ParentShardId, s.AdjacentParentShardId]) if (p && byId.has(p)) visit(byId.get(p)!);
    out.push(s);
  };
  shards.forEach(visit);
  return out;
}

async function iterator(o: ReprocessOptions, shardId: string, at?: string): Promise<string | undefined> {
  const base = { StreamName: o.stream, ShardId: shardId };
  if (at) return (await o.kinesis.send(new GetShardIteratorCommand({ ...base, ShardIteratorType: 'AT_SEQUENCE_NUMBER', StartingSequenceNumber: at }))).ShardIterator;
  return shardIterator(o.kinesis, o.stream, shardId, o.since, o.log);
}

/**
 * An iterator at `since` (AT_TIMESTAMP), else at TRIM_HORIZON. Callers also skip records before
 * `since` themselves, so the fallback is safe: it is taken when AT_TIMESTAMP is refused or does not
 * answer — kinesalite never answers AT_TIMESTAMP on a shard with no record after the timestamp.
 */
export async function shardIterator(kinesis: KinesisClient, stream: string, shardId: string, since: Date | undefined, log: (l: string) => void): Promise<string | undefined> {
  const base = { StreamName: stream, ShardId: shardId };
  if (since) {
    try {
      const out = await kinesis.send(new GetShardIteratorCommand({ ...base, ShardIteratorType: 'AT_TIMESTAMP', Timestamp: since }), { abortSignal: AbortSignal.timeout(AT_TIMESTAMP_TIMEOUT_MS) });
      return out.ShardIterator;
    } catch (err) {
      log(`AT_TIMESTAMP failed on ${shardId} (${(err as Error).message}); reading from TRIM_HORIZON and skipping older records`);
    }
  }
  return (await kinesis.send(new GetShardIteratorCommand({ ...base, ShardIteratorType: 'TRIM_HORIZON' }))).ShardIterator;
}

export const AT_TIMESTAMP_TIMEOUT_MS = 3000;

async function reprocessShard(o: ReprocessOptions, shardId: string, until: Date, tick: (n: number) => void): Promise<number> {
  let it = await iterator(o, shardId);
  let count = 0;
  let retries = 0;
  while (it) {
    const out = await o.kinesis.send(new GetRecordsCommand({ ShardIterator: it, Limit: o.batchSize ?? 500 }));
    const all = out.Records ?? [];
    const recs = all.filter((r) => inRange(r, o.since, until));
    const pastEnd = all.some((r) => (r.ApproximateArrivalTimestamp?.getTime() ?? 0) >= until.getTime());
    if (recs.length) {
      const res = await o.handler(toKinesisEvent({ region: o.region, stream: o.stream, role: 'replay' }, shardId, recs));
      const failed = new Set((res.batchItemFailures ?? []).map((f) => f.itemIdentifier));
      const first = recs.findIndex((r) => failed.has(r.SequenceNumber!));
      count += first === -1 ? recs.length : first;
      tick(count);
      if (first !== -1) {
        if (++retries > (o.maxRetries ?? 5)) throw new Error(`record ${recs[first]!.SequenceNumber} on ${shardId} keeps failing; stopped (rerun the same command to continue)`);
        await new Promise((r) => setTimeout(r, 200 * retries));
        it = await iterator(o, shardId, recs[first]!.SequenceNumber);
        continue;
      }
      retries = 0;
    }
    if (pastEnd || !out.NextShardIterator || (all.length === 0 && (out.MillisBehindLatest ?? 0) === 0)) break;
    it = out.NextShardIterator;
  }
  o.log(`${shardId}: ${count} records reprocessed`);
  return count;
}

function inRange(r: _Record, since: Date | undefined, until: Date): boolean {
  const t = r.ApproximateArrivalTimestamp?.getTime() ?? 0;
  return (!since || t >= since.getTime()) && t < until.getTime();
}
