/**
 * The two kinds of letters in the dead-letter queue, and what the operator can do with a batch one.
 *
 * - Our own letters (processors/parking.ts `DeadLetter`, `kind` poison | malformed): one record,
 *   its command and error; a poison one is also a row in `parked`.
 * - The on-failure records the AWS Lambda event source mapping writes to the same queue when it
 *   gives up on a batch (MaximumRetryAttempts or MaximumRecordAge reached, e.g. the function kept
 *   timing out). They hold no data, only where it is: a shard and a sequence-number range
 *   (https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html).
 *   The local runner retries forever and never writes one; they appear in AWS.
 *
 * A batch letter is redriven by re-reading its range from the stream (while the stream still
 * retains it) and feeding it through the processors' handler: request ids make commands already
 * decided change nothing but re-project and re-ack, lost ones are decided now, and a record that
 * keeps failing is parked as usual. The letter leaves the queue once its whole range went through.
 * Discarding one only deletes the letter: the range is not read.
 */
import { GetRecordsCommand, GetShardIteratorCommand, type KinesisClient, type _Record } from '@aws-sdk/client-kinesis';
import { z } from 'zod';
import type { KinesisHandler } from './commit-consumer';
import type { DeadLetter } from './parking';
import { toKinesisEvent } from './runner';

export const OnFailureRecordSchema = z.object({
  requestContext: z.object({
    requestId: z.string(),
    functionArn: z.string(),
    /** RetryAttemptsExhausted | RecordAgeExceeded | … */
    condition: z.string(),
    approximateInvokeCount: z.number(),
  }),
  /** Absent when the batch was never handed to the function (e.g. it expired first). */
  responseContext: z.object({
    statusCode: z.number().optional(),
    executedVersion: z.string().optional(),
    functionError: z.string().optional(),
  }).optional(),
  version: z.string(),
  timestamp: z.string(),
  KinesisBatchInfo: z.object({
    shardId: z.string(),
    startSequenceNumber: z.string().regex(/^\d+$/),
    endSequenceNumber: z.string().regex(/^\d+$/),
    approximateArrivalOfFirstRecord: z.string(),
    approximateArrivalOfLastRecord: z.string(),
    batchSize: z.number(),
    streamArn: z.string(),
  }),
});
export type OnFailureRecord = z.infer<typeof OnFailureRecordSchema>;

export type QueueLetter =
  | { type: 'record'; letter: DeadLetter }
  | { type: 'batch'; batch: OnFailureRecord }
  | { type: 'unknown'; body: string };

export function parseLetter(body: string): QueueLetter {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { type: 'unknown', body };
  }
  const batch = OnFailureRecordSchema.safeParse(json);
  if (batch.success) return { type: 'batch', batch: batch.data };
  const l = json as Partial<DeadLetter> | null;
  if (l && typeof l === 'object' && (l.kind === 'poison' || l.kind === 'malformed') && typeof l.error === 'string') return { type: 'record', letter: l as DeadLetter };
  return { type: 'unknown', body };
}

/** How the operator names a batch letter on the command line: `<shardId>/<startSequenceNumber>`. */
export const batchId = (b: OnFailureRecord) => `${b.KinesisBatchInfo.shardId}/${b.KinesisBatchInfo.startSequenceNumber}`;

/** The stream a batch letter points at (`arn:aws:kinesis:<region>:<account>:stream/<name>`). */
export function streamNameOf(streamArn: string): string {
  const m = /:stream\/([^/]+)$/.exec(streamArn);
  if (!m) throw new Error(`not a Kinesis stream ARN: ${streamArn}`);
  return m[1]!;
}

/** The function that gave up, short: the last part of its ARN (name[:qualifier]). */
export const functionNameOf = (arn: string) => arn.split(':function:')[1] ?? arn;

export function describeBatch(b: OnFailureRecord): string {
  const i = b.KinesisBatchInfo;
  const r = b.requestContext;
  const err = b.responseContext?.functionError ? `, ${b.responseContext.functionError} error` : '';
  return `batch     ${batchId(b)}..${i.endSequenceNumber} (${i.batchSize} record(s) of ${streamNameOf(i.streamArn)}, `
    + `${r.condition} after ${r.approximateInvokeCount} invocation(s) of ${functionNameOf(r.functionArn)}${err}, at ${b.timestamp})`;
}

export class RangeUnreadableError extends Error {
  override name = 'RangeUnreadableError';
}

/** Reads the records of a batch letter's range, first to last; fails if its first record is no longer in the stream. */
export async function readRange(kinesis: KinesisClient, b: OnFailureRecord, pageSize = 500): Promise<_Record[]> {
  const i = b.KinesisBatchInfo;
  const stream = streamNameOf(i.streamArn);
  const start = BigInt(i.startSequenceNumber);
  const end = BigInt(i.endSequenceNumber);
  let it: string | undefined;
  try {
    it = (await kinesis.send(new GetShardIteratorCommand({
      StreamName: stream, ShardId: i.shardId, ShardIteratorType: 'AT_SEQUENCE_NUMBER', StartingSequenceNumber: i.startSequenceNumber,
    }))).ShardIterator;
  } catch (err) {
    throw new RangeUnreadableError(`cannot read ${stream} ${i.shardId} at ${i.startSequenceNumber}: ${(err as Error).message}`);
  }
  const out: _Record[] = [];
  while (it) {
    const res = await kinesis.send(new GetRecordsCommand({ ShardIterator: it, Limit: pageSize }));
    const recs = res.Records ?? [];
    if (out.length === 0 && recs.length > 0 && BigInt(recs[0]!.SequenceNumber!) !== start) {
      throw new RangeUnreadableError(`the range's first record (${i.startSequenceNumber}) is no longer in ${stream} ${i.shardId} (past the stream's retention?)`);
    }
    for (const r of recs) {
      if (BigInt(r.SequenceNumber!) > end) return out;
      out.push(r);
    }
    if (recs.length === 0 && (res.MillisBehindLatest ?? 0) === 0) break;
    it = res.NextShardIterator;
  }
  if (out.length === 0) throw new RangeUnreadableError(`no record of the range ${i.startSequenceNumber}..${i.endSequenceNumber} is left in ${stream} ${i.shardId}`);
  return out;
}

/**
 * Feeds a batch letter's range through the handler, resuming from the first failed record like the
 * event source mapping; gives up after `maxRounds` rounds that made no progress. Returns the record count.
 */
export async function redriveBatch(
  o: { kinesis: KinesisClient; region: string; handler: KinesisHandler; maxRounds?: number; pause?: (round: number) => Promise<void> },
  b: OnFailureRecord,
): Promise<number> {
  const i = b.KinesisBatchInfo;
  const records = await readRange(o.kinesis, b);
  const source = { region: o.region, stream: streamNameOf(i.streamArn), role: 'dlq-redrive' };
  let from = 0;
  let stuck = 0;
  while (from < records.length) {
    const rest = records.slice(from);
    const res = await o.handler(toKinesisEvent(source, i.shardId, rest));
    const failed = new Set((res.batchItemFailures ?? []).map((f) => f.itemIdentifier));
    const first = rest.findIndex((r) => failed.has(r.SequenceNumber!));
    if (first === -1) return records.length;
    if (first === 0 && ++stuck >= (o.maxRounds ?? 10)) {
      throw new Error(`record ${rest[0]!.SequenceNumber} keeps failing; the letter stays (rerun redrive once the cause is fixed)`);
    }
    if (first > 0) stuck = 0;
    from += first;
    await (o.pause ?? ((n) => new Promise((r) => setTimeout(r, 100 * n))))(stuck);
  }
  return records.length;
}
