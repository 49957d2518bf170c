/**
 * The projection consumer: a second consumer of the same stream (in AWS a second event source
 * mapping, with its own checkpoints) that makes the read model follow PostgreSQL.
 *
 * Why a consumer of its own: the commit consumer must never wait for the durable copy. DynamoDB
 * throttling, an outage, or simply an emulator that takes a few hundred conditional puts/s would
 * otherwise hold back every later commit and `committed` ack of the shard. Here the commit
 * consumer commits, projects into Redis on a best-effort fast path and acks; this consumer reads
 * the same records in the same per-shard order, looks up what PostgreSQL decided for each (read
 * only: it never decides) and writes it into DynamoDB and Redis — version-guarded, or in DynamoDB
 * read-then-batch as the items' single writer (PROJECTION_ITEM_WRITES, projection-writer.ts) —
 * retrying until it succeeds. A record not decided yet stops the batch there (retried after the
 * runner's delay), so per-item order holds and nothing is skipped; a parked or held record is left to
 * the operator's redrive, which projects what it applies.
 *
 * After each projected run it advances the projection watermark (core/read-store/watermark.ts) to the
 * run's last record per shard: listings asked for with a consistency token wait on it.
 */
import type { KinesisStreamEvent, KinesisStreamRecord } from 'aws-lambda';
import type { Logger } from '../core/log';
import type { BatchEntry, BatchOutcome, Outcome } from './command-store';
import { type KinesisHandler, MalformedRecordError, parseCommand } from './commit-consumer';
import type { ProcessorMetrics } from './metrics';
import { projectOutcome } from '../core/projections';
import { type BatchProjector, itemWriteKey } from './projection-writer';
import { lastPerShard, type ProjectionWatermark } from '../core/read-store';

export interface OutcomeLookup {
  lookupBatch(entries: BatchEntry[]): Promise<Array<BatchOutcome | undefined>>;
}

export interface ProjectionHandlerDeps {
  lookup: OutcomeLookup;
  projector: BatchProjector;
  log: Logger;
  metrics?: ProcessorMetrics;
  /** Where listings learn how far this consumer got (omitted: listings cannot be asked for consistency). */
  watermark?: ProjectionWatermark;
}

export function createProjectionHandler(deps: ProjectionHandlerDeps): KinesisHandler {
  const { lookup, projector, log, metrics, watermark } = deps;
  return async (event: KinesisStreamEvent) => {
    const records = event.Records;
    const failFrom = (i: number) => ({ batchItemFailures: records.slice(i).map((r: KinesisStreamRecord) => ({ itemIdentifier: r.kinesis.sequenceNumber })) });
    const entries: Array<{ index: number; entry: BatchEntry }> = [];
    for (let i = 0; i < records.length; i++) {
      try {
        entries.push({ index: i, entry: { cmd: parseCommand(records[i]!) } });
      } catch (err) {
        // The commit consumer sends it to the dead-letter queue; there is nothing to project.
        if (!(err instanceof MalformedRecordError)) throw err;
      }
    }
    let outcomes: Array<BatchOutcome | undefined>;
    try {
      outcomes = await lookup.lookupBatch(entries.map((e) => e.entry));
    } catch (err) {
      log.warn('projection: outcome lookup failed; retrying the batch', { err });
      return failFrom(0);
    }
    // Up to the first record the commit consumer has not decided yet.
    let undecided = outcomes.findIndex((o) => o === undefined);
    if (undecided < 0) undecided = entries.length;
    const changes = [];
    // Items with a held record here: a redrive may decide it after the lookup, and this consumer
    // passes it, so their older state goes with the version guard (projection-writer.ts says why).
    const guarded = new Set<string>();
    for (let k = 0; k < undecided; k++) {
      const o = outcomes[k]!;
      const cmd = entries[k]!.entry.cmd;
      if (o.status === 'held') {
        guarded.add(itemWriteKey(cmd.tenant, cmd.collection, cmd.id));
        continue;
      }
      changes.push(projectOutcome(cmd, o as Outcome));
    }
    try {
      if (changes.length) await projector.applyBatch(changes, guarded);
      metrics?.projected.inc(changes.length);
    } catch (err) {
      log.warn('projection failed; retrying the batch', { err });
      return failFrom(entries[0]?.index ?? 0);
    }
    // Records before `done` are projected (or had nothing to project): the watermark may pass them.
    const done = undecided < entries.length ? entries[undecided]!.index : records.length;
    if (watermark && done > 0) {
      try {
        await watermark.advance(lastPerShard(records.slice(0, done).map((r) => ({ shardId: r.eventID.split(':')[0]!, sequenceNumber: r.kinesis.sequenceNumber }))));
      } catch (err) {
        // Retrying the batch re-projects it (version-guarded, harmless) and tries the mark again.
        log.warn('projection watermark not advanced; retrying the batch', { err });
        return failFrom(0);
      }
    }
    if (undecided < entries.length) {
      log.debug('projection: waiting for the commit consumer', { requestId: entries[undecided]!.entry.cmd.requestId });
      return failFrom(done);
    }
    return { batchItemFailures: [] };
  };
}
