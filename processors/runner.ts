/**
 * Local runner with the semantics of Lambda's Kinesis event source mapping: polls every shard,
 * hands the handler Lambda-shaped batches of up to `batchSize` records (with a `batchWindowMs`,
 * like MaximumBatchingWindowInSeconds, a shard with records is polled once per window, so a batch
 * holds what arrived over the window: fewer, bigger batches), retries from the first
 * reported failure, and checkpoints per shard only up to records whose effect is committed. Any
 * other failure in a shard's loop (checkpoint write, iterator) is treated like a crash: the shard
 * resumes from its checkpoint. Child shards (after a reshard) are read only once their parents
 * are finished, to keep per-key order. An empty shard is polled less and less often (from
 * `pollIntervalMs` doubling up to `idlePollMaxMs`, as Lambda polls an idle shard about once a
 * second), and `wake(partitionKey)` (called when the ack log shows a write was queued) ends the
 * wait of the shard that holds the write at once. After a batch read because of a wake, a shard at
 * its tip waits the same way instead of polling again. Records are never missed, only delayed by at
 * most `idlePollMaxMs` when no wake comes. Per-shard lag (MillisBehindLatest and iterator age) is
 * exported as metrics and logged every `lagLogMs`.
 */
import { createHash } from 'node:crypto';
import { listShards } from '../core/kinesis-shards';
import {
  ExpiredIteratorException,
  GetRecordsCommand,
  type GetRecordsCommandOutput,
  GetShardIteratorCommand,
  type KinesisClient,
    type _Record,
  type Shard,
} from '@aws-sdk/client-kinesis';
import type { KinesisStreamEvent, KinesisStreamRecord } from 'aws-lambda';
import type { Logger } from '../core/log';
import type { CheckpointStore } from './checkpoints';
import type { KinesisHandler } from './commit-consumer';
import type { ProcessorMetrics } from './metrics';

export interface RunnerOptions {
  /** The SDK client, or core/kinesis-http.ts' HttpKinesisClient (the same `send`). */
  kinesis: Pick<KinesisClient, 'send'>;
  stream: string;
  region: string;
  checkpoints: CheckpointStore;
  handler: KinesisHandler;
  log: Logger;
  batchSize: number;
  /** Idle wait after the first empty poll of a shard. */
  pollIntervalMs: number;
  /** The longest idle wait: each further empty poll doubles the wait up to this (default: pollIntervalMs, no backoff). */
  idlePollMaxMs?: number;
  /** Wait before retrying a failed batch. */
  retryDelayMs: number;
  /** How often the shard list is refreshed (new shards after a reshard). */
  shardRefreshMs: number;
  /**
   * The batching window (0, the default: none). While a shard has records it is polled at most
   * once per window, so each batch holds what arrived over the last window and no record waits
   * much longer than that; a full batch, or a shard behind its tip, is read on at once. An empty
   * shard backs off and is woken as without a window.
   */
  batchWindowMs?: number;
  /**
   * How long a shard's checkpoint may trail its finished batches (0, the default: saved after
   * every batch, as Lambda's event source mapping does). With an interval, the newest finished
   * position is saved at most once per interval (one PostgreSQL commit for many batches), and at
   * once when the reader stops, fails, or reaches a shard's end. A checkpoint still never passes
   * an unfinished record; a crash redelivers at most the interval's records (decided already:
   * they change nothing).
   */
  checkpointIntervalMs?: number;
  metrics?: ProcessorMetrics;
  /** The consumer's name in metrics and logs (its checkpoints carry it too). */
  consumer?: string;
  /** How often each shard's lag is logged. */
  lagLogMs?: number;
  /**
   * Where this consumer reports, per shard, how far its records are finished (its checkpoint when
   * it starts reading a shard, then each batch's last finished record), for a consumer that follows it.
   */
  progress?: ShardProgress;
  /**
   * Another consumer of the same stream that this one follows (the projection consumer follows the
   * commit consumer in the same process): a batch is handed over once `progress` has passed its last
   * record, or after `maxWaitMs`, whichever is first. It only delays a batch, never skips one: the
   * handler still decides what is done. Without it, a follower handed records its leader has not
   * finished fails from there and re-reads them after retryDelayMs (GetShardIterator, GetRecords and
   * the handler's lookups again).
   */
  follow?: { progress: ShardProgress; maxWaitMs: number };
}

/** Kinesis sequence numbers are decimal strings of up to 128 bits. */
const seqValue = (s: string): bigint => BigInt(s);

/**
 * How far a consumer has finished each shard (in memory, this process only): records up to the
 * position are done for good (a commit consumer's are decided in PostgreSQL), so it only moves forward.
 */
export class ShardProgress {
  private readonly done = new Map<string, bigint>();
  private readonly waiters = new Set<{ shardId: string; at: bigint; resolve: (reached: boolean) => void }>();

  advance(shardId: string, sequenceNumber: string): void {
    const at = seqValue(sequenceNumber);
    const cur = this.done.get(shardId);
    if (cur !== undefined && cur >= at) return;
    this.done.set(shardId, at);
    for (const w of [...this.waiters]) if (w.shardId === shardId && w.at <= at) w.resolve(true);
  }

  reached(shardId: string, sequenceNumber: string): boolean {
    const cur = this.done.get(shardId);
    return cur !== undefined && cur >= seqValue(sequenceNumber);
  }

  /** True once the shard is done up to `sequenceNumber`; false after `maxWaitMs` or when `cancel` is called (cancel: a set the caller may trigger). */
  waitFor(shardId: string, sequenceNumber: string, maxWaitMs: number, cancel?: Set<() => void>): Promise<boolean> {
    if (this.reached(shardId, sequenceNumber)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const w = {
        shardId,
        at: seqValue(sequenceNumber),
        resolve: (reached: boolean) => {
          clearTimeout(timer);
          this.waiters.delete(w);
          cancel?.delete(stop);
          resolve(reached);
        },
      };
      const stop = () => w.resolve(false);
      const timer = setTimeout(stop, maxWaitMs);
      this.waiters.add(w);
      cancel?.add(stop);
    });
  }
}

export class StreamRunner {
  private stopping = false;
  private readonly loops = new Map<string, Promise<void>>();
  private readonly finished = new Set<string>();
  private refreshTimer: NodeJS.Timeout | undefined;
  private readonly sleepers = new Set<() => void>();
  /** Idle waits that wake() ends, with the shard each one is for. */
  private readonly idlers = new Map<() => void, string>();
  /**
   * Counts wakes (per shard, plus those for every shard): a wake that lands while a shard's poll is
   * in flight is not lost, and a shard with no wake since its poll was sent has nothing new from the gateway.
   */
  private allWakes = 0;
  private readonly shardWakes = new Map<string, number>();
  /** Each shard's hash key range (from the last shard refresh), to wake only the shard a partition key maps to. */
  private ranges: Array<{ id: string; from: bigint; to: bigint }> = [];

  constructor(private readonly opts: RunnerOptions) {}

  async start(): Promise<void> {
    await this.refreshShards();
    this.refreshTimer = setInterval(() => {
      this.refreshShards().catch((err) => this.opts.log.warn('shard refresh failed', { err }));
    }, this.opts.shardRefreshMs);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    for (const wake of this.sleepers) wake();
    await Promise.allSettled([...this.loops.values()]);
  }

  /**
   * Records may have arrived: a shard waiting for records polls again now. With `partitionKey` (a
   * write queued through the gateway) only the shard(s) whose hash key range holds the key (Kinesis
   * maps a key to the MD5 of it, as a 128-bit number); without one, or before the shards are known, every shard.
   */
  wake(partitionKey?: string): void {
    const hash = partitionKey === undefined ? undefined : BigInt(`0x${createHash('md5').update(partitionKey).digest('hex')}`);
    const ids = hash === undefined ? [] : this.ranges.filter((r) => r.from <= hash && hash <= r.to).map((r) => r.id);
    if (ids.length === 0) {
      this.allWakes++;
      for (const w of [...this.idlers.keys()]) w();
      return;
    }
    for (const id of ids) this.shardWakes.set(id, (this.shardWakes.get(id) ?? 0) + 1);
    for (const [w, shardId] of [...this.idlers]) if (ids.includes(shardId)) w();
  }

  private wakeCount(shardId: string): number {
    return this.allWakes + (this.shardWakes.get(shardId) ?? 0);
  }

  private async refreshShards(): Promise<void> {
    const shards = await listShards(this.opts.kinesis, this.opts.stream);
    const known = new Set(shards.map((s) => s.ShardId!));
    this.ranges = shards.flatMap((s) => {
      const range = s.HashKeyRange;
      return range?.StartingHashKey && range.EndingHashKey
        ? [{ id: s.ShardId!, from: BigInt(range.StartingHashKey), to: BigInt(range.EndingHashKey) }]
        : [];
    });
    for (const shard of shards) {
      const id = shard.ShardId!;
      if (this.loops.has(id) || this.finished.has(id) || this.stopping) continue;
      const parents = [shard.ParentShardId, shard.AdjacentParentShardId].filter((p): p is string => !!p && known.has(p));
      if (!(await this.parentsDone(parents))) continue;
      const loop = this.runShard(id).catch((err) => this.opts.log.error('shard loop crashed', { shardId: id, err }))
        .finally(() => this.loops.delete(id));
      this.loops.set(id, loop);
    }
  }

  private async parentsDone(parents: string[]): Promise<boolean> {
    for (const p of parents) {
      if (this.finished.has(p)) continue;
      const cp = await this.opts.checkpoints.get(p);
      if (!cp?.finished) return false;
      this.finished.add(p);
    }
    return true;
  }

  private async iteratorFor(shardId: string, at?: string): Promise<string | undefined> {
    const cp = at ? undefined : await this.opts.checkpoints.get(shardId);
    // Records up to a checkpoint are finished: a follower need not wait for them.
    if (cp) this.opts.progress?.advance(shardId, cp.sequenceNumber);
    if (cp?.finished) return undefined;
    const out = await this.opts.kinesis.send(
      new GetShardIteratorCommand({
        StreamName: this.opts.stream,
        ShardId: shardId,
        ...(at
          ? { ShardIteratorType: 'AT_SEQUENCE_NUMBER', StartingSequenceNumber: at }
          : cp
            ? { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: cp.sequenceNumber }
            : { ShardIteratorType: 'TRIM_HORIZON' }),
      }),
    );
    return out.ShardIterator;
  }

  private async runShard(shardId: string): Promise<void> {
    const { log } = this.opts;
    log.info('reading shard', { shardId });
    while (!this.stopping) {
      try {
        const finished = await this.readShard(shardId);
        if (finished) return;
      } catch (err) {
        // Like a crash of this shard's reader: start again from the checkpoint.
        log.warn('shard reader failed; resuming from the checkpoint', { shardId, err });
        await this.sleep(this.opts.retryDelayMs);
      }
    }
  }

  /** Reads a shard from its checkpoint; true once a closed shard has been read to its end. */
  private async readShard(shardId: string): Promise<boolean> {
    const iterator = await this.iteratorFor(shardId);
    if (!iterator) {
      this.finished.add(shardId);
      return true;
    }
    // A batch's checkpoint is written while the next batch is read and handled (one PostgreSQL
    // round trip and commit less per batch on the shard's critical path). The saves are chained, so
    // they land in order; a failed one is a crash of this reader: it stops at its next step and
    // resumes from the checkpoint that was saved (the records after it are delivered again, harmlessly).
    let saving: Promise<void> = Promise.resolve();
    let saveError: { err: unknown } | undefined;
    const enqueue = (sequenceNumber: string) => {
      saving = saving.then(async () => {
        if (saveError) return;
        try {
          await this.opts.checkpoints.save(shardId, sequenceNumber);
          this.opts.metrics?.checkpointSaves.inc({ consumer: this.opts.consumer ?? 'processors' });
        } catch (err) {
          saveError = { err };
        }
      });
    };
    // With a checkpoint interval: the newest finished position waits here until the interval's
    // timer (or a flush) hands it to the chain; a later batch only moves it on.
    const interval = this.opts.checkpointIntervalMs ?? 0;
    let pending: string | undefined;
    let timer: NodeJS.Timeout | undefined;
    const flush = () => {
      clearTimeout(timer);
      timer = undefined;
      if (pending !== undefined) enqueue(pending);
      pending = undefined;
    };
    const saveCheckpoint = (sequenceNumber: string) => {
      if (interval <= 0) return enqueue(sequenceNumber);
      pending = sequenceNumber;
      timer ??= setTimeout(flush, interval);
    };
    /** `wait`: until every save so far is written (a trailing one first); else only fail fast if one failed. */
    const checkSaved = async (wait = false) => {
      if (!saveError && !wait) return;
      if (wait) flush();
      await saving;
      if (saveError) throw saveError.err;
    };
    try {
      return await this.readBatches(shardId, iterator, saveCheckpoint, checkSaved);
    } finally {
      // Whatever ends this reader (stop, crash, the shard's end), its checkpoints are written first.
      flush();
      await saving;
    }
  }

  private async readBatches(
    shardId: string,
    first: string,
    saveCheckpoint: (sequenceNumber: string) => void,
    checkSaved: (wait?: boolean) => Promise<void>,
  ): Promise<boolean> {
    const { log, metrics } = this.opts;
    const consumer = this.opts.consumer ?? 'processors';
    const window = this.opts.batchWindowMs ?? 0;
    let iterator: string | undefined = first;
    let lastLag = 0;
    let idleWait = this.opts.pollIntervalMs;
    const idleMax = Math.max(this.opts.pollIntervalMs, this.opts.idlePollMaxMs ?? this.opts.pollIntervalMs);
    // Like Lambda's event source mapping, the next GetRecords is in flight while the handler works
    // on the current batch; it is dropped if the batch is retried (the retry re-reads from there).
    let prefetched: Promise<GetRecordsCommandOutput> | undefined;
    let prefetchedWakes = 0;
    // The shard's wake count when the previous poll was sent (none yet: -1). A poll sent after a
    // wake reads records the gateway announced; it wakes the shard again for every further write.
    let lastPollWakes = -1;
    let prefetchedAt = 0;
    const dropPrefetch = () => {
      prefetched?.catch(() => undefined);
      prefetched = undefined;
    };
    const getRecords = (shardIterator: string | undefined) => {
      metrics?.getRecords.inc({ consumer });
      return this.opts.kinesis.send(new GetRecordsCommand({ ShardIterator: shardIterator, Limit: this.opts.batchSize }));
    };
    while (!this.stopping) {
      await checkSaved();
      // Wakes counted when this round's GetRecords was sent (a prefetch was sent earlier).
      const wakesBefore = prefetched ? prefetchedWakes : this.wakeCount(shardId);
      const polledAt = prefetched ? prefetchedAt : Date.now();
      const woken = lastPollWakes >= 0 && wakesBefore > lastPollWakes;
      lastPollWakes = wakesBefore;
      let out: GetRecordsCommandOutput;
      try {
        const ahead = prefetched;
        prefetched = undefined;
        out = await (ahead ?? getRecords(iterator));
      } catch (err) {
        if (err instanceof ExpiredIteratorException || (err as Error).name === 'ExpiredIteratorException') {
          // Read on from the checkpoint (once the saves so far are written: nothing is delivered twice needlessly).
          await checkSaved(true);
          iterator = await this.iteratorFor(shardId);
          if (!iterator) return true;
          continue;
        }
        throw err;
      }
      const records = out.Records ?? [];
      const behind = out.MillisBehindLatest ?? 0;
      const next = out.NextShardIterator;
      metrics?.millisBehind.set({ shard: shardId, consumer }, behind);
      const newest = records.at(-1)?.ApproximateArrivalTimestamp?.getTime();
      if (newest !== undefined) metrics?.iteratorAge.set({ shard: shardId, consumer }, Math.max(0, Date.now() - newest));
      if (Date.now() - lastLag >= (this.opts.lagLogMs ?? 10_000)) {
        lastLag = Date.now();
        log.info('shard lag', { consumer, shardId, millisBehindLatest: behind, iteratorAgeMs: newest === undefined ? 0 : Math.max(0, Date.now() - newest) });
      }
      // More is waiting in the shard (a full batch, or behind its tip): read on at once, window or not.
      const more = records.length >= this.opts.batchSize || behind > 0;
      // A woken poll's records at the shard's tip, and no wake since it was sent: the shard is most
      // likely empty now, so the next poll waits for the next write's wake (or the idle backoff)
      // instead of reading nothing (at 100 writes/s a poll in two was empty). Records found without
      // a wake (a producer that does not wake this runner) are read on at once, as before.
      const atTip = () => !more && woken && this.wakeCount(shardId) === wakesBefore;
      if (records.length > 0) {
        if (next && (window === 0 ? !atTip() : more)) {
          prefetchedWakes = this.wakeCount(shardId);
          prefetchedAt = Date.now();
          prefetched = getRecords(next);
          // Handled here too: if delivery throws, nobody awaits it, and a rejection must not go unhandled.
          prefetched.catch(() => undefined);
        }
        if (this.opts.follow) {
          // Hand the batch over once the leader has finished it (or gave it long enough).
          const last = records.at(-1)!.SequenceNumber!;
          if (!this.stopping && !this.opts.follow.progress.reached(shardId, last)) {
            metrics?.followWaits.inc({ consumer });
            await this.opts.follow.progress.waitFor(shardId, last, this.opts.follow.maxWaitMs, this.sleepers);
          }
        }
        metrics?.batches.inc({ consumer });
        metrics?.batchRecords.inc({ consumer }, records.length);
        const { retryFrom, doneUpTo } = await this.deliver(shardId, records);
        if (doneUpTo) {
          saveCheckpoint(doneUpTo);
          this.opts.progress?.advance(shardId, doneUpTo);
        }
        if (retryFrom) {
          dropPrefetch();
          metrics?.batchFailures.inc({ shard: shardId, consumer });
          // With a window, the records handed back are read again with the next window's.
          await this.sleep(Math.max(this.opts.retryDelayMs, polledAt + window - Date.now()));
          iterator = await this.iteratorFor(shardId, retryFrom);
          if (!iterator) return true;
          continue;
        }
      }
      if (!next) {
        // A closed shard read to its end: its children may start (once its last checkpoint is written).
        await checkSaved(true);
        const last = records.at(-1)?.SequenceNumber ?? (await this.opts.checkpoints.get(shardId))?.sequenceNumber ?? '0';
        await this.opts.checkpoints.save(shardId, last, true);
        this.finished.add(shardId);
        log.info('shard finished', { shardId });
        void this.refreshShards().catch(() => undefined);
        return true;
      }
      iterator = next;
      if (records.length === 0) {
        // Empty: wait, longer each time; a wake (also one that came while this poll was out) ends
        // the wait, but never sooner than pollIntervalMs after this poll: a shard is polled at
        // most as often as without the backoff, however many writes wake it.
        const earliest = polledAt + this.opts.pollIntervalMs;
        await this.idle(shardId, this.wakeCount(shardId) === wakesBefore ? idleWait : 0, earliest);
        idleWait = Math.min(idleMax, idleWait * 2);
      } else {
        // The batching window: while records arrive, the shard is polled once per window, so the
        // next batch holds what arrived meanwhile (one GetRecords and one handler call for all of
        // it). A wake does not cut this wait short; stop() does.
        if (window > 0 && !prefetched) await this.sleep(polledAt + window - Date.now());
        if (!prefetched && atTip()) {
          // Waits like an empty poll (the same backoff, ended by a wake), without the empty poll.
          await this.idle(shardId, idleWait, polledAt + this.opts.pollIntervalMs);
          idleWait = Math.min(idleMax, idleWait * 2);
        } else {
          idleWait = this.opts.pollIntervalMs;
        }
      }
    }
    dropPrefetch();
    return false;
  }

  /** Hands one batch to the handler; returns the sequence number to retry from, if any, and the last one done (to checkpoint). */
  private async deliver(shardId: string, records: _Record[]): Promise<{ retryFrom?: string | undefined; doneUpTo?: string | undefined }> {
    const event = toKinesisEvent({ region: this.opts.region, stream: this.opts.stream, role: 'local-runner' }, shardId, records);
    let failed: Set<string>;
    try {
      const res = await this.opts.handler(event);
      failed = new Set((res?.batchItemFailures ?? []).map((f) => f.itemIdentifier));
    } catch (err) {
      // A thrown handler fails the whole batch, as in Lambda.
      this.opts.log.warn('handler threw; retrying batch', { shardId, err });
      failed = new Set(records.map((r) => r.SequenceNumber!));
    }
    const firstFailed = records.findIndex((r) => failed.has(r.SequenceNumber!));
    const doneUpTo = firstFailed === -1 ? records.length : firstFailed;
    return {
      doneUpTo: doneUpTo > 0 ? records[doneUpTo - 1]!.SequenceNumber! : undefined,
      retryFrom: firstFailed === -1 ? undefined : records[firstFailed]!.SequenceNumber,
    };
  }



  /**
   * An idle wait of `ms` (at least until `earliest`, a time stamp): a wake of `shardId` cuts it
   * short to `earliest`; stop() ends it at once.
   */
  private idle(shardId: string, ms: number, earliest: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout;
      const done = () => {
        clearTimeout(timer);
        this.idlers.delete(wake);
        this.sleepers.delete(done);
        resolve();
      };
      const wake = () => {
        this.idlers.delete(wake);
        if (this.stopping) return done();
        clearTimeout(timer);
        timer = setTimeout(done, Math.max(0, earliest - Date.now()));
      };
      timer = setTimeout(done, Math.max(ms, earliest - Date.now()));
      this.idlers.set(wake, shardId);
      this.sleepers.add(done);
    });
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }
}

/** Kinesis records as Lambda's event source mapping hands them to a function (one shard's batch). */
export function toKinesisEvent(
  source: { region: string; stream: string; role: string },
  shardId: string,
  records: _Record[],
): KinesisStreamEvent {
  const arn = `arn:aws:kinesis:${source.region}:000000000000:stream/${source.stream}`;
  return {
    Records: records.map(
      (r): KinesisStreamRecord => ({
        kinesis: {
          kinesisSchemaVersion: '1.0',
          partitionKey: r.PartitionKey!,
          sequenceNumber: r.SequenceNumber!,
          data: Buffer.from(r.Data ?? new Uint8Array()).toString('base64'),
          approximateArrivalTimestamp: (r.ApproximateArrivalTimestamp?.getTime() ?? Date.now()) / 1000,
        },
        eventSource: 'aws:kinesis',
        eventVersion: '1.0',
        eventID: `${shardId}:${r.SequenceNumber}`,
        eventName: 'aws:kinesis:record',
        invokeIdentityArn: `arn:aws:iam::000000000000:role/${source.role}`,
        awsRegion: source.region,
        eventSourceARN: arn,
      }),
    ),
  };
}
