/**
 * The processors' handler, in the shape of a Lambda function behind a Kinesis event source
 * mapping with ReportBatchItemFailures: records are handled in order; at the first failure the
 * rest of the batch is reported failed too, so a retry resumes from there and per-item order holds.
 *
 * For each record: commit in PostgreSQL, then project into the read model, then publish the final
 * ack. A crash after the commit makes the record come back; the commit is then found (request id
 * is unique) and projection and ack are done again — at-least-once, never double-applied.
 */
import type { KinesisStreamBatchResponse, KinesisStreamEvent, KinesisStreamRecord } from 'aws-lambda';
import type { AckLog } from '../core/ack-log';
import { type AckDraft, type Command, CommandSchema } from '../core/contracts';
import type { Logger } from '../core/log';
import type { EventStore, Outcome } from './event-store';
import { projectOutcome } from './projections';
import type { Projector } from './projector';

export interface HandlerDeps {
  store: EventStore;
  projector: Projector;
  acks: AckLog;
  log: Logger;
  /** Called for a record whose payload is not a command at all: it can never succeed. */
  onMalformed?: (record: KinesisStreamRecord, error: string) => Promise<void>;
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

export function finalAck(cmd: Command, outcome: Outcome): AckDraft {
  return {
    type: 'ack',
    stage: outcome.status,
    requestId: cmd.requestId,
    ...(cmd.idempotencyKey ? { idempotencyKey: cmd.idempotencyKey } : {}),
    collection: cmd.collection,
    id: cmd.id,
    ...(outcome.status === 'committed' ? { version: outcome.version } : { reason: outcome.reason }),
    at: outcome.decidedAt,
  };
}

export function createKinesisHandler(deps: HandlerDeps): KinesisHandler {
  const { store, projector, acks, log } = deps;

  async function processRecord(record: KinesisStreamRecord): Promise<void> {
    let cmd: Command;
    try {
      cmd = parseCommand(record);
    } catch (err) {
      if (!(err instanceof MalformedRecordError)) throw err;
      log.error('malformed record skipped', { sequenceNumber: record.kinesis.sequenceNumber, err });
      await deps.onMalformed?.(record, err.message);
      return;
    }
    const outcome = await store.execute(cmd);
    await projector.apply(projectOutcome(cmd, outcome));
    await acks.append({ tenant: cmd.tenant, principal: cmd.principal }, finalAck(cmd, outcome));
    log.debug('record processed', { requestId: cmd.requestId, status: outcome.status, replayed: outcome.replayed });
  }

  return async (event) => {
    const records = event.Records;
    for (let i = 0; i < records.length; i++) {
      const record = records[i]!;
      try {
        await processRecord(record);
      } catch (err) {
        log.warn('record failed; batch will be retried from it', { sequenceNumber: record.kinesis.sequenceNumber, err });
        return { batchItemFailures: records.slice(i).map((r) => ({ itemIdentifier: r.kinesis.sequenceNumber })) };
      }
    }
    return { batchItemFailures: [] };
  };
}
