/**
 * What AWS does on its own to keep the deployed stores bounded, done for the local emulators
 * (`npm start`), so local data stops growing the way the deployed data stops growing:
 *
 * - **Stream retention.** Kinesis drops records older than the stream's retention period (24 h).
 *   kinesalite drops such a record only when a GetRecords reads it, and the consumers never read
 *   behind their checkpoints again, so its store keeps every record ever put. `StreamTrimmer` reads
 *   each shard from TRIM_HORIZON through the records past retention: kinesalite deletes each one
 *   it reads (its own retention rule, `RetentionPeriodHours` of the stream), and the read stops at
 *   the first record still retained. Records within retention are never touched.
 * - **TTL.** DynamoDB deletes a row some time after its TTL attribute (the requests table's
 *   `expiresAt`, core/request-retention.ts) has passed. dynalite has no TTL (no
 *   UpdateTimeToLive, no expiry). `TtlSweeper` scans the table a page at a time at a fixed pace
 *   (so its cost does not grow with the table: a bigger table only takes longer to sweep) and
 *   deletes the rows whose TTL has passed; rows without the attribute (the projection watermarks)
 *   are kept. After a pass it rests until the first moment a row can have expired: the earliest
 *   TTL the pass saw, or, for rows written since it began, its start plus the least TTL a new row
 *   gets (30 days). A grown table is not rescanned for nothing (issue #20).
 *
 * Redis needs no such help: every key the services write expires (TTL) or is capped (the ack log's
 * MAXLEN), and redis-server honours both. PostgreSQL keeps the event log by design (the source of
 * truth); its cost per write stays flat (docs/PERFORMANCE.md, #20).
 */
import { type AttributeValue, BatchWriteItemCommand, type DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { DescribeStreamSummaryCommand, type KinesisClient, GetRecordsCommand, GetShardIteratorCommand, ListShardsCommand } from '@aws-sdk/client-kinesis';
import { createDecipheriv } from 'node:crypto';
import type { Logger } from '../core/log';
import { REQUEST_STATUS_RETENTION_SECONDS, REQUEST_TTL_ATTRIBUTE } from '../core/request-retention';

// kinesalite's sequence and iterator helpers (its iterators are opaque to the SDK).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const kinesaliteDb = require('kinesalite/db') as { ITERATOR_PWD_KEY: Buffer; ITERATOR_PWD_IV: Buffer; parseSequence(seq: string): { seqTime: number } };

export interface StreamTrimmerOptions {
  stream: string;
  /** Pause between two trims of the whole stream. */
  intervalMs: number;
  /** Records read per GetRecords while trimming (kinesalite deletes the ones past retention among them). */
  pageSize?: number;
  /** Most GetRecords calls per shard and trim, so one trim stays short even after a long pause. */
  maxCallsPerShard?: number;
  log?: Logger;
}

/** Trims the stream's records past retention on kinesalite (see the file comment). */
export class StreamTrimmer {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;

  constructor(private readonly kinesis: KinesisClient, private readonly o: StreamTrimmerOptions) {}

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.running = this.trim()
        .catch((err: unknown) => this.o.log?.warn('stream trim failed; retried at the next interval', { error: (err as Error).message }))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.o.intervalMs);
        });
    };
    this.timer = setTimeout(tick, this.o.intervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One trim of every shard; returns how many GetRecords calls found only records past retention (or nothing). */
  async trim(): Promise<{ shards: number; trimmingCalls: number }> {
    const shards: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.kinesis.send(new ListShardsCommand(token ? { NextToken: token } : { StreamName: this.o.stream }));
      for (const s of page.Shards ?? []) shards.push(s.ShardId!);
      token = page.NextToken;
    } while (token);
    const summary = await this.kinesis.send(new DescribeStreamSummaryCommand({ StreamName: this.o.stream }));
    const retentionMs = (summary.StreamDescriptionSummary?.RetentionPeriodHours ?? 24) * 3600_000;
    let trimmingCalls = 0;
    for (const shardId of shards) {
      if (this.stopped) break;
      trimmingCalls += await this.trimShard(shardId, Date.now() - retentionMs);
    }
    if (trimmingCalls) this.o.log?.info('stream trimmed past retention', { stream: this.o.stream, trimmingCalls });
    return { shards: shards.length, trimmingCalls };
  }

  private async trimShard(shardId: string, cutoffMs: number): Promise<number> {
    let iterator = (await this.kinesis.send(new GetShardIteratorCommand({ StreamName: this.o.stream, ShardId: shardId, ShardIteratorType: 'TRIM_HORIZON' }))).ShardIterator;
    // The first read takes one record: when the oldest record is retained (the usual case) the trim
    // of this shard costs one record read. An empty answer means what was read was past retention
    // (kinesalite deleted it) or nothing was left to read; the iterator it hands back tells which.
    let limit = 1;
    const max = this.o.maxCallsPerShard ?? 1_000;
    for (let calls = 0; iterator && calls < max && !this.stopped; calls++) {
      const page = await this.kinesis.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: limit }));
      if ((page.Records?.length ?? 0) > 0) return calls;
      iterator = page.NextShardIterator;
      if (!iterator || iteratorTime(iterator) >= cutoffMs) return calls;
      limit = this.o.pageSize ?? 1_000;
    }
    return max;
  }
}

/**
 * The time (ms) of the position an iterator of kinesalite points at. After a page of records past
 * retention it points just after the last of them (older than the cutoff: more may follow); after
 * reading nothing it points at "now" (past the cutoff: the shard has nothing older left). kinesalite's
 * iterators are its own encrypted format, read here with its own key and sequence parser.
 */
export function iteratorTime(iterator: string): number {
  const buffer = Buffer.from(iterator, 'base64');
  const decipher = createDecipheriv('aes-256-cbc', kinesaliteDb.ITERATOR_PWD_KEY, kinesaliteDb.ITERATOR_PWD_IV);
  const pieces = Buffer.concat([decipher.update(buffer.subarray(8)), decipher.final()]).toString('utf8').split('/');
  return kinesaliteDb.parseSequence(pieces[3]!).seqTime;
}

export interface TtlSweeperOptions {
  table: string;
  /** The number-of-epoch-seconds attribute whose past value makes a row expired. */
  attribute?: string;
  /** Rows read per Scan page. */
  pageSize?: number;
  /** Pause between two pages: the pace, whatever the table's size. */
  pageIntervalMs: number;
  /**
   * Pause after a page that ended a pass over the table, before the next pass (default:
   * pageIntervalMs). Rows live 30 days: sweeping a small table again every few seconds only keeps
   * an idle stack awake.
   */
  passIntervalMs?: number;
  /**
   * The least TTL (s) a row written from now on gets (default: the requests' retention, 30 days):
   * a row written after a pass began cannot expire before that pass's start plus this.
   */
  minTtlSeconds?: number;
  /** Longest rest after a pass (default 24 h): a restart or a clock change is caught up within it. */
  maxRestMs?: number;
  log?: Logger;
  /** Seconds since the epoch (tests move it). */
  nowSeconds?: () => number;
}

/** Deletes the rows whose TTL passed, one Scan page at a fixed pace (see the file comment). */
export class TtlSweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;
  private cursor: Record<string, AttributeValue> | undefined;
  /** Where the current pass began (s) and the earliest TTL it has seen on a row it kept. */
  private pass: { startedAt: number; earliest: number } | undefined;

  constructor(private readonly dynamo: DynamoDBClient, private readonly o: TtlSweeperOptions) {}

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      let pause = this.o.pageIntervalMs;
      this.running = this.sweepPage()
        .then((page) => {
          if (!page.done) return;
          const untilDue = (page.nextPassAt - this.nowExact()) * 1000;
          pause = Math.min(this.o.maxRestMs ?? 24 * 3600_000, Math.max(this.o.passIntervalMs ?? this.o.pageIntervalMs, untilDue));
        })
        .catch((err: unknown) => this.o.log?.warn('TTL sweep failed; retried at the next page', { table: this.o.table, error: (err as Error).message }))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, pause);
        });
    };
    this.timer = setTimeout(tick, this.o.pageIntervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** Seconds since the epoch, with their fraction. */
  private nowExact(): number {
    return this.o.nowSeconds?.() ?? Date.now() / 1000;
  }

  /**
   * Sweeps one page; `done` when that page ended a pass over the whole table (the next starts
   * over), with `nextPassAt` (s since the epoch): no row can be past its TTL before it (see the file comment).
   */
  async sweepPage(): Promise<{ scanned: number; deleted: number; done: boolean; nextPassAt: number }> {
    const attr = this.o.attribute ?? REQUEST_TTL_ATTRIBUTE;
    const now = Math.floor(this.nowExact());
    this.pass ??= { startedAt: now, earliest: Number.POSITIVE_INFINITY };
    // Every row's key and TTL, not only the expired ones: the TTLs still ahead tell when to come back.
    const page = await this.dynamo.send(new ScanCommand({
      TableName: this.o.table,
      Limit: this.o.pageSize ?? 200,
      ConsistentRead: true,
      ...(this.cursor ? { ExclusiveStartKey: this.cursor } : {}),
      ProjectionExpression: '#pk, #ttl',
      ExpressionAttributeNames: { '#pk': 'pk', '#ttl': attr },
    }));
    this.cursor = page.LastEvaluatedKey;
    const keys: Array<{ pk: AttributeValue }> = [];
    for (const item of page.Items ?? []) {
      // Rows without the attribute never expire (as in DynamoDB).
      const ttl = Number(item[attr]?.N ?? Number.NaN);
      if (Number.isNaN(ttl)) continue;
      if (ttl < now) keys.push({ pk: item.pk! });
      else this.pass.earliest = Math.min(this.pass.earliest, ttl);
    }
    let deleted = 0;
    for (let i = 0; i < keys.length; i += 25) {
      let requests = keys.slice(i, i + 25).map((Key) => ({ DeleteRequest: { Key } }));
      // A request row never gets a later expiresAt once it is past (it is written when the request
      // is decided, within the stream's retention), so an unconditional delete cannot remove a live row.
      for (let attempt = 0; requests.length && attempt < 5; attempt++) {
        const out = await this.dynamo.send(new BatchWriteItemCommand({ RequestItems: { [this.o.table]: requests } }));
        const left = (out.UnprocessedItems?.[this.o.table] ?? []) as typeof requests;
        deleted += requests.length - left.length;
        requests = left;
      }
    }
    if (deleted) this.o.log?.info('expired rows deleted (TTL)', { table: this.o.table, deleted });
    const { startedAt, earliest } = this.pass;
    if (!this.cursor) this.pass = undefined;
    // A row is past its TTL from the second after it (`expiresAt < now`).
    const nextPassAt = Math.min(earliest + 1, startedAt + (this.o.minTtlSeconds ?? REQUEST_STATUS_RETENTION_SECONDS));
    return { scanned: page.ScannedCount ?? 0, deleted, done: !this.cursor, nextPassAt };
  }
}
