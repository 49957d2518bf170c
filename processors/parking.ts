/**
 * Poison records. A record whose commit keeps failing for a reason in the record itself (a data
 * error PostgreSQL refuses, a bug tripped by its content) is counted per attempt in
 * `record_attempts`; at MAX_ATTEMPTS it is parked: sent to the SQS dead-letter queue with its
 * error and recorded in `parked`, and the shard moves on. Infrastructure failures (connection
 * lost, deadlock, serialization) are never counted: they are retried forever, so an outage never
 * parks healthy records.
 *
 * Later writes to a parked item are HELD (our choice over rejecting them with `item_parked`): the
 * store appends them to `parked` behind the poison record and sends no final ack yet, so nothing
 * is applied out of order and nothing the client sent is thrown away. `npm run dlq -- redrive`
 * re-applies an item's parked writes in their original order (stopping at the first one that still
 * fails); `discard` drops them, recording each as `rejected` with `item_parked` and acking that.
 * Malformed records (not a command at all) cannot be retried or redelivered: they go straight to
 * the dead-letter queue.
 */
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { KinesisStreamRecord } from 'aws-lambda';
import { DatabaseError } from 'pg';
import { type Command, CommandSchema } from '../core/contracts';
import type { Logger } from '../core/log';
import type { BatchEntry, BatchOutcome, ParkingStore } from './command-store';

export interface DeadLetter {
  kind: 'poison' | 'malformed';
  error: string;
  attempts: number;
  requestId?: string;
  tenant?: string;
  collection?: string;
  id?: string;
  shardId?: string | undefined;
  sequenceNumber?: string | undefined;
  /** The record's data as it came (base64 for malformed records, the command JSON otherwise). */
  data: string;
  parkedAt: string;
}

/** Port: where parked records are announced to operators (SQS in AWS and locally via fauxqs). */
export interface DeadLetterQueue {
  send(letter: DeadLetter): Promise<void>;
}

export class SqsDeadLetterQueue implements DeadLetterQueue {
  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: string,
  ) {}

  async send(letter: DeadLetter): Promise<void> {
    await this.sqs.send(new SendMessageCommand({ QueueUrl: this.queueUrl, MessageBody: JSON.stringify(letter) }));
  }

  /** Letters currently in the queue (peeked: made visible again at once). */
  async peek(max = 100): Promise<DeadLetter[]> {
    const out: DeadLetter[] = [];
    await this.sweep(max, (l) => {
      out.push(l);
      return false;
    });
    return out;
  }

  /** Deletes the letters of these requests (after a redrive or discard); others stay. Returns how many went. */
  async remove(requestIds: string[]): Promise<number> {
    const ids = new Set(requestIds);
    let n = 0;
    await this.sweep(1000, (l) => {
      const hit = l.requestId !== undefined && ids.has(l.requestId);
      if (hit) n++;
      return hit;
    });
    return n;
  }

  private async sweep(max: number, del: (l: DeadLetter) => boolean): Promise<void> {
    const release: string[] = [];
    try {
      for (let seen = 0; seen < max; ) {
        const res = await this.sqs.send(new ReceiveMessageCommand({
          QueueUrl: this.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, VisibilityTimeout: 30,
        }));
        const msgs = res.Messages ?? [];
        if (msgs.length === 0) break;
        for (const m of msgs) {
          seen++;
          let letter: DeadLetter | undefined;
          try {
            letter = JSON.parse(m.Body ?? '') as DeadLetter;
          } catch {
            letter = undefined;
          }
          if (letter && del(letter)) await this.sqs.send(new DeleteMessageCommand({ QueueUrl: this.queueUrl, ReceiptHandle: m.ReceiptHandle! }));
          else release.push(m.ReceiptHandle!);
        }
      }
    } finally {
      for (const h of release) {
        await this.sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: this.queueUrl, ReceiptHandle: h, VisibilityTimeout: 0 })).catch(() => undefined);
      }
    }
  }
}

/** Without a DLQ_URL parked records are still kept in PostgreSQL; the letter is only logged. */
export class LogDeadLetterQueue implements DeadLetterQueue {
  constructor(private readonly log: Logger) {}
  async send(letter: DeadLetter): Promise<void> {
    this.log.error('record parked (no DLQ_URL configured)', { letter });
  }
}

// SQLSTATE classes caused by the data of one command: data exception, integrity (except races), syntax/access.
const POISON_CLASSES = new Set(['22', '23', '42', '2B', 'P0']);
const RACE_CODES = new Set(['23505']); // unique violation: a concurrent writer, fixed by a retry

/** Whether an error comes from the record itself (worth counting towards parking) rather than the infrastructure. */
export function isRecordError(err: unknown): boolean {
  if (err instanceof DatabaseError && typeof err.code === 'string') {
    return POISON_CLASSES.has(err.code.slice(0, 2)) && !RACE_CODES.has(err.code);
  }
  return err instanceof TypeError || err instanceof RangeError;
}

export interface ParkedRow {
  id: string;
  requestId: string;
  tenant: string;
  collection: string;
  itemId: string;
  kind: 'poison' | 'held';
  error: string | null;
  attempts: number;
  shardId: string | null;
  sequenceNumber: string | null;
  parkedAt: string;
  command: string;
}

export type FailureVerdict = 'retry' | 'parked';

/** Publishes the outcomes of commands the store decided (projection + final acks); -1 or the first index that failed. */
export type Publish = (entries: BatchEntry[], outcomes: BatchOutcome[]) => Promise<number>;

export class ParkingLot {
  constructor(
    private readonly store: ParkingStore,
    private readonly dlq: DeadLetterQueue,
    readonly maxAttempts: number,
    private readonly log: Logger,
  ) {}

  /** Counts a failed attempt of a record; parks it once it reached maxAttempts. */
  async recordFailure(entry: BatchEntry, error: unknown): Promise<FailureVerdict> {
    const message = error instanceof Error ? error.message : String(error);
    if (!isRecordError(error)) return 'retry';
    const cmd = entry.cmd;
    const res = await this.store.query<{ attempts: number }>(
      `INSERT INTO record_attempts (request_id, attempts, last_error) VALUES ($1, 1, $2)
       ON CONFLICT (request_id) DO UPDATE SET attempts = record_attempts.attempts + 1, last_error = $2, updated_at = now()
       RETURNING attempts`,
      [cmd.requestId, message],
    );
    const attempts = res.rows[0]!.attempts;
    if (attempts < this.maxAttempts) return 'retry';
    // The letter goes first: a crash before the row is written re-parks (a duplicate letter), never loses it.
    await this.dlq.send({
      kind: 'poison', error: message, attempts, requestId: cmd.requestId, tenant: cmd.tenant, collection: cmd.collection,
      id: cmd.id, shardId: entry.shardId, sequenceNumber: entry.sequenceNumber, data: JSON.stringify(cmd), parkedAt: new Date().toISOString(),
    });
    await this.store.transaction(async (c) => {
      await this.store.park(c, [{ entry, kind: 'poison', error: message, attempts }]);
      await c.query('DELETE FROM record_attempts WHERE request_id = $1', [cmd.requestId]);
    });
    this.log.error('poison record parked', { requestId: cmd.requestId, attempts, error: message, sequenceNumber: entry.sequenceNumber });
    return 'parked';
  }

  async malformed(record: KinesisStreamRecord, error: string): Promise<void> {
    const [shardId] = record.eventID.split(':');
    await this.dlq.send({
      kind: 'malformed', error, attempts: 1, shardId, sequenceNumber: record.kinesis.sequenceNumber,
      data: record.kinesis.data, parkedAt: new Date().toISOString(),
    });
  }

  async list(): Promise<ParkedRow[]> {
    const res = await this.store.query(
      `SELECT id::text, request_id, tenant, collection, item_id, kind, error, attempts, shard_id, sequence_number, parked_at, command
         FROM parked ORDER BY id`,
    );
    return res.rows.map((r) => ({
      id: r.id, requestId: r.request_id, tenant: r.tenant, collection: r.collection, itemId: r.item_id, kind: r.kind,
      error: r.error, attempts: r.attempts, shardId: r.shard_id, sequenceNumber: r.sequence_number,
      parkedAt: (r.parked_at as Date).toISOString(), command: r.command,
    }));
  }

  /**
   * Replays parked writes item by item, each item's in its original order, in one transaction per
   * item (the parked rows leave in the same commit as their effect). An item whose write still
   * fails stays parked from that write on. Returns per-item results.
   */
  async redrive(
    publish: Publish,
    filter: { requestIds?: string[] } = {},
    progress: (done: number, total: number, line: string) => void = () => undefined,
  ): Promise<{ applied: number; stillParked: number; errors: string[] }> {
    const rows = (await this.list()).filter((r) => !filter.requestIds || filter.requestIds.includes(r.requestId));
    const items = groupByItem(rows);
    let applied = 0;
    let stillParked = 0;
    const errors: string[] = [];
    let done = 0;
    for (const [key, parked] of items) {
      const entries = parked.map((r) => ({ cmd: parseParked(r), shardId: r.shardId ?? undefined, sequenceNumber: r.sequenceNumber ?? undefined }));
      const result = await this.store.transaction(async (c) => {
        // Lock the item's parked rows: a processor holding a new write behind them waits for us.
        await c.query('SELECT id FROM parked WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE', [parked.map((r) => r.id)]);
        const run = await this.store.executeInOrder(c, entries);
        const outcomes: BatchOutcome[] = run.outcomes;
        const failure = run.failure && (run.failure.error instanceof Error ? run.failure.error.message : String(run.failure.error));
        const doneIds = parked.slice(0, outcomes.length).map((r) => r.id);
        if (doneIds.length) await c.query('DELETE FROM parked WHERE id = ANY($1::bigint[])', [doneIds]);
        if (failure !== undefined) {
          await c.query(`UPDATE parked SET kind = 'poison', error = $2, attempts = attempts + 1 WHERE id = $1`, [parked[outcomes.length]!.id, failure]);
        }
        return { outcomes, failure };
      });
      const bad = await publish(entries.slice(0, result.outcomes.length), result.outcomes);
      if (bad >= 0) errors.push(`${key}: committed, but publishing its read model/acks failed (GET /v1/requests shows the outcome)`);
      applied += result.outcomes.length;
      stillParked += parked.length - result.outcomes.length;
      if (result.failure !== undefined) errors.push(`${key}: ${parked[result.outcomes.length]!.requestId} still fails: ${result.failure}`);
      done += parked.length;
      progress(done, rows.length, key);
    }
    return { applied, stillParked, errors };
  }

  /** Drops parked writes: each is recorded `rejected` with `item_parked` (so its client gets a final ack), then removed. */
  async discard(
    publish: Publish,
    filter: { requestIds?: string[] } = {},
    progress: (done: number, total: number, line: string) => void = () => undefined,
  ): Promise<number> {
    const rows = (await this.list()).filter((r) => !filter.requestIds || filter.requestIds.includes(r.requestId));
    let done = 0;
    for (const r of rows) {
      const cmd = parseParked(r);
      const decidedAt = new Date().toISOString();
      const reason = { code: 'item_parked' as const, message: `Write parked (${r.error ?? 'held behind a parked write'}) and discarded by an operator.` };
      const decidedBefore = await this.store.transaction(async (c) => {
        const prior = await c.query('SELECT 1 FROM requests WHERE request_id = $1', [cmd.requestId]);
        if (prior.rowCount === 0) await this.store.recordRequest(c, cmd, 'rejected', null, reason, decidedAt);
        await c.query('DELETE FROM parked WHERE id = $1', [r.id]);
        return prior.rowCount !== 0;
      });
      if (!decidedBefore) await publish([{ cmd }], [{ status: 'rejected', reason, decidedAt, redelivered: false }]);
      progress(++done, rows.length, r.requestId);
    }
    return done;
  }
}

function groupByItem(rows: ParkedRow[]): Map<string, ParkedRow[]> {
  const out = new Map<string, ParkedRow[]>();
  for (const r of rows) {
    const key = `${r.tenant}/${r.collection}/${r.itemId}`;
    out.set(key, [...(out.get(key) ?? []), r]);
  }
  return out;
}

function parseParked(r: ParkedRow): Command {
  return CommandSchema.parse(JSON.parse(r.command));
}
