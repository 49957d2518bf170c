/**
 * The projection consumer: a second consumer of the same stream (in AWS a second event source
 * mapping, with its own checkpoints) that makes the read model follow PostgreSQL.
 *
 * Why a consumer of its own: the commit consumer must never wait for the durable copy. DynamoDB
 * throttling, an outage, or simply an emulator that takes a few hundred conditional puts/s would
 * otherwise hold back every later commit and `committed` ack of the shard. Here the commit
 * consumer commits, projects into Redis on a best-effort fast path and acks; this consumer reads
 * the same records in the same per-shard order, looks up what PostgreSQL decided for each (read
 * only: it never decides) and writes it with version guards into DynamoDB and Redis, retrying
 * until it succeeds. A record not decided yet stops the batch there (retried after the runner's
 * delay), so per-item order holds and nothing is skipped; a parked or held record is left to
 * the operator's redrive, which projects what it applies.
 */
import type { KinesisStreamEvent, KinesisStreamRecord } from 'aws-lambda';
import type { Logger } from '../core/log';
import type { BatchEntry, BatchOutcome, Outcome } from './command-store';
import { type KinesisHandler, MalformedRecordError, parseCommand } from './commit-consumer';
import type { ProcessorMetrics } from './metrics';
import { projectOutcome } from '../core/projections';
import type { BatchProjector } from './projection-writer';

export interface OutcomeLookup {
  lookupBatch(entries: BatchEntry[]): Promise<Array<BatchOutcome | undefined>>;
}

export interface ProjectionHandlerDeps {
  lookup: OutcomeLookup;
  projector: BatchProjector;
  log: Logger;
  metrics?: ProcessorMetrics;
}

export function createProjectionHandler(deps: ProjectionHandlerDeps): KinesisHandler {
  const { lookup, projector, log, metrics } = deps;
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
    for (let k = 0; k < undecided; k++) {
      const o = outcomes[k]!;
      if (o.status === 'held') continue;
      changes.push(projectOutcome(entries[k]!.entry.cmd, o as Outcome));
    }
    try {
      if (changes.length) await projector.applyBatch(changes);
      metrics?.projected.inc(changes.length);
    } catch (err) {
      log.warn('projection failed; retrying the batch', { err });
      return failFrom(entries[0]?.index ?? 0);
    }
    if (undecided < entries.length) {
      log.debug('projection: waiting for the commit consumer', { requestId: entries[undecided]!.entry.cmd.requestId });
      return failFrom(entries[undecided]!.index);
    }
    return { batchItemFailures: [] };
  };
}
