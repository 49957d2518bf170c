/**
 * The processors' handler, in the shape of a Lambda function behind a Kinesis event source
 * mapping with ReportBatchItemFailures: `(KinesisStreamEvent) → { batchItemFailures }`.
 *
 * Why not @aws-lambda-powertools/batch: it ships CommonJS and runs on Node 20, but its Kinesis
 * processor hands records to a per-record callback and reports EVERY failed record while still
 * processing the ones after it (only its SQS FIFO processor short-circuits). Lambda then resumes
 * from the lowest failed sequence number, so a later write of the same item could be applied
 * before an earlier failed one. We need stop-at-first-failure per shard, and we commit a whole
 * batch in one PostgreSQL transaction, which a per-record callback cannot express. So: our own.
 *
 * Per batch: commit every command in one transaction (processors/event-store.ts; a failing
 * command is isolated, the ones before it commit), project the outcomes (retried in line), then
 * publish the final acks. A crash after the commit makes the records come back; the request ids
 * find their outcomes, and projection and acks are done again — at-least-once, never
 * double-applied; the ack log stores one final ack per request. From the first record that could
 * not be finished on, the rest of the batch is reported failed, so a retry resumes there and
 * per-item order holds. A record failing MAX_ATTEMPTS times for a reason of its own is parked
 * (processors/parking.ts) and the batch goes on without it.
 */
import type { KinesisStreamBatchResponse, KinesisStreamEvent, KinesisStreamRecord } from 'aws-lambda';
import type { AckLog } from '../core/ack-log';
import { type AckDraft, type Command, CommandSchema } from '../core/contracts';
import type { Logger } from '../core/log';
import type { BatchEntry, BatchOutcome, CommandStore, Outcome } from './command-store';
import type { ProcessorMetrics } from './metrics';
import type { ParkingLot, Publish } from './parking';
import { projectOutcome } from '../core/projections';
import type { BatchProjector } from './projection-writer';
import { formatToken } from '../core/read-store';

export interface HandlerDeps {
  store: CommandStore;
  projector: BatchProjector;
  acks: AckLog;
  log: Logger;
  /** Counts failed attempts and parks poison records; without it a failing record is retried forever. */
  parking?: ParkingLot;
  /** Called for a record whose payload is not a command at all: it can never succeed (default: parking's DLQ). */
  onMalformed?: (record: KinesisStreamRecord, error: string) => Promise<void>;
  metrics?: ProcessorMetrics;
  /** In-line attempts of a batch's projection before the records are reported failed (default 3). */
  projectionAttempts?: number;
  /**
   * The projection here is a fast path that another consumer guarantees (processors/projection-handler.ts):
   * one attempt, and a failure is logged, never retried, so it cannot hold back the commits.
   */
  projectionBestEffort?: boolean;
}

export type KinesisHandler = (event: KinesisStreamEvent) => Promise<KinesisStreamBatchResponse>;

export class MalformedRecordError extends Error {
  override name = 'MalformedRecordError';
}

export function parseCommand(record: KinesisStreamRecord): Command {
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(record.kinesis.data, 'base64').toString('utf8'));
  } catch {
    throw new MalformedRecordError('record data is not JSON');
  }
  const parsed = CommandSchema.safeParse(payload);
  if (!parsed.success) throw new MalformedRecordError(`record is not a v1 command: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}

export function finalAck(cmd: Command, outcome: Outcome, at: { shardId?: string | undefined; sequenceNumber?: string | undefined } = {}): AckDraft {
  // Where the write is on the stream: a listing asked for `consistentWith` it includes the write.
  const token = outcome.status === 'committed' && at.shardId && at.sequenceNumber ? formatToken({ shardId: at.shardId, sequenceNumber: at.sequenceNumber }) : undefined;
  return {
    type: 'ack',
    stage: outcome.status,
    requestId: cmd.requestId,
    ...(cmd.idempotencyKey ? { idempotencyKey: cmd.idempotencyKey } : {}),
    collection: cmd.collection,
    id: cmd.id,
    ...(outcome.status === 'committed' ? { version: outcome.version } : { reason: outcome.reason }),
    ...(token ? { consistencyToken: token } : {}),
    at: outcome.decidedAt,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Projects decided outcomes and publishes their final acks (held ones wait for redrive).
 * Returns -1, or the index of the first entry whose projection or ack could not be done.
 * Acks go out even when the projection keeps failing: `committed` means committed in PostgreSQL,
 * and the redelivered record re-projects (the ack log dedupes the repeated ack).
 */
export function createPublisher(deps: Pick<HandlerDeps, 'projector' | 'acks' | 'log' | 'projectionAttempts' | 'projectionBestEffort'>): Publish {
  const attempts = deps.projectionBestEffort ? 1 : deps.projectionAttempts ?? 3;
  return async (entries, outcomes) => {
    const decided: number[] = [];
    outcomes.forEach((o, i) => o.status !== 'held' && decided.push(i));
    if (decided.length === 0) return -1;
    let projected = false;
    for (let a = 1; a <= attempts && !projected; a++) {
      try {
        await deps.projector.applyBatch(decided.map((i) => projectOutcome(entries[i]!.cmd, outcomes[i] as Outcome)));
        projected = true;
      } catch (err) {
        deps.log.warn('projection failed', { attempt: a, err });
        if (a < attempts) await sleep(50 * a);
      }
    }
    // In record order per principal (their cursors must follow it); principals in parallel. A
    // failed append stops that principal's later acks, so a retry never leaves them out of order
    // (sending them all at once would let a later ack land before a failed earlier one).
    const byPrincipal = new Map<string, number[]>();
    for (const i of decided) {
      const cmd = entries[i]!.cmd;
      const k = `${cmd.tenant}\u0000${cmd.principal}`;
      const list = byPrincipal.get(k);
      if (list) list.push(i);
      else byPrincipal.set(k, [i]);
    }
    let ackFailed = Infinity;
    let ackError: unknown;
    const { acks } = deps;
    await Promise.all([...byPrincipal.values()].map(async (idx) => {
      if (acks.appendMany && idx.length > 1) {
        // One atomic call per principal: all of its acks, in order, or none (then retried from its first).
        const first = entries[idx[0]!]!.cmd;
        try {
          await acks.appendMany({ tenant: first.tenant, principal: first.principal }, idx.map((i) => finalAck(entries[i]!.cmd, outcomes[i] as Outcome, entries[i])));
        } catch (err) {
          if (idx[0]! < ackFailed) [ackFailed, ackError] = [idx[0]!, err];
        }
        return;
      }
      for (const i of idx) {
        if (i > ackFailed) return;
        const cmd = entries[i]!.cmd;
        try {
          await deps.acks.append({ tenant: cmd.tenant, principal: cmd.principal }, finalAck(cmd, outcomes[i] as Outcome, entries[i]));
        } catch (err) {
          if (i < ackFailed) [ackFailed, ackError] = [i, err];
          return;
        }
      }
    }));
    if (ackFailed !== Infinity) {
      deps.log.warn('final ack not published; record will be retried', { err: ackError });
      return ackFailed;
    }
    return projected || deps.projectionBestEffort ? -1 : decided[0]!;
  };
}

export function createKinesisHandler(deps: HandlerDeps): KinesisHandler {
  const { store, log, parking, metrics } = deps;
  const publish = createPublisher(deps);
  const onMalformed = deps.onMalformed ?? (parking ? (r: KinesisStreamRecord, e: string) => parking.malformed(r, e) : undefined);

  const count = (outcomes: BatchOutcome[]) => {
    if (!metrics) return;
    for (const o of outcomes) metrics.records.inc({ outcome: o.redelivered ? 'redelivered' : o.status });
  };

  /** Commits, projects and acks a run of commands; -1 or the index (into `seg`) of the first unfinished one. */
  async function runSegment(seg: BatchEntry[]): Promise<number> {
    let start = 0;
    while (start < seg.length) {
      const part = seg.slice(start);
      let res;
      try {
        res = await store.executeBatch(part);
      } catch (err) {
        log.warn('batch commit failed; retrying from its first record', { err });
        return start;
      }
      count(res.outcomes);
      const bad = await publish(part.slice(0, res.outcomes.length), res.outcomes);
      if (bad >= 0) return start + bad;
      if (!res.failure) return -1;
      const failed = part[res.failure.index]!;
      log.warn('record failed', { requestId: failed.cmd.requestId, sequenceNumber: failed.sequenceNumber, err: res.failure.error });
      let verdict: 'retry' | 'parked' = 'retry';
      if (parking) {
        verdict = await parking.recordFailure(failed, res.failure.error).catch((err: unknown) => {
          log.warn('could not count the failed attempt', { err });
          return 'retry' as const;
        });
      }
      if (verdict === 'retry') return start + res.failure.index;
      metrics?.records.inc({ outcome: 'parked' });
      start += res.failure.index + 1;
    }
    return -1;
  }

  return async (event) => {
    const records = event.Records;
    const failFrom = (i: number): KinesisStreamBatchResponse => ({
      batchItemFailures: records.slice(i).map((r) => ({ itemIdentifier: r.kinesis.sequenceNumber })),
    });
    const end = metrics?.batchSeconds.startTimer();
    try {
      let seg: Array<{ index: number; entry: BatchEntry }> = [];
      const flush = async (): Promise<number> => {
        const bad = await runSegment(seg.map((s) => s.entry));
        const at = bad >= 0 ? seg[bad]!.index : -1;
        seg = [];
        return at;
      };
      for (let i = 0; i < records.length; i++) {
        const record = records[i]!;
        let cmd: Command;
        try {
          cmd = parseCommand(record);
        } catch (err) {
          if (!(err instanceof MalformedRecordError)) throw err;
          const bad = await flush();
          if (bad >= 0) return failFrom(bad);
          log.error('malformed record sent to the dead-letter queue', { sequenceNumber: record.kinesis.sequenceNumber, err });
          try {
            await onMalformed?.(record, err.message);
            metrics?.records.inc({ outcome: 'malformed' });
          } catch (dlqErr) {
            log.warn('dead-letter queue unavailable; retrying the malformed record', { err: dlqErr });
            return failFrom(i);
          }
          continue;
        }
        seg.push({ index: i, entry: { cmd, shardId: record.eventID.split(':')[0], sequenceNumber: record.kinesis.sequenceNumber } });
      }
      const bad = await flush();
      return bad >= 0 ? failFrom(bad) : { batchItemFailures: [] };
    } finally {
      end?.();
    }
  };
}
