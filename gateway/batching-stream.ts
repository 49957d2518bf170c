/**
 * Micro-batched PutRecords, like the Kinesis Producer Library: many requests share one call (max
 * 500 records / 5 MiB), and a put resolves only once the stream accepted its record (shard id +
 * sequence number known).
 *
 * Adaptive: under light load a record is sent at once (a lone write does not wait): when no call is
 * in flight and none started within the last `lingerMs`. Under load, records gather for at most
 * `lingerMs` (in another concurrent call if one is still in flight), so a call's fixed cost is
 * shared by a linger's worth of records. So batches form only under load, where they pay for
 * themselves. `flushWhenIdle: false` gives the plain linger (always wait up to `lingerMs`).
 *
 * Order per partition key survives partial failures: only the oldest unacknowledged record of a
 * key is ever in a call or waiting for a retry; the key's later records wait behind it. (Kinesis
 * does not stop at a failed entry, so two records of one key in one call could land swapped.)
 *
 * Bounded: at most `maxBuffered` records are held; beyond that, and when a record's retry budget
 * runs out, put() rejects with 503 so the caller answers instead of hanging.
 */
import { PutRecordsCommand, type PutRecordsCommandOutput } from '@aws-sdk/client-kinesis';
import type { Command } from '../core/contracts';
import { ServiceUnavailableError } from '../core/errors';
import { partitionKey } from '../core/keys';
import type { Logger } from '../core/log';
import type { CommandStream, StreamPosition } from './command-stream';

/**
 * What the batcher needs of a Kinesis client: PutRecords. The SDK's KinesisClient fits (tests wrap
 * it to inject partial failures), and so does the gateway's cheaper HttpKinesisClient.
 */
export interface KinesisSender {
  send(command: PutRecordsCommand, options?: { abortSignal?: AbortSignal }): Promise<PutRecordsCommandOutput>;
}

export interface BatchingOptions {
  /** Longest a ready record waits for a batch to fill (under load only, unless flushWhenIdle is off). */
  lingerMs: number;
  /** Send at once under light load: no PutRecords call in flight and none started within `lingerMs`. */
  flushWhenIdle: boolean;
  maxRecords: number;
  maxBytes: number;
  /** Records held (waiting, in a call or waiting for a retry) before put() answers 503. */
  maxBuffered: number;
  /** PutRecords calls in flight at once. */
  maxConcurrentCalls: number;
  /** A record that is not accepted within this time after put() is answered 503. */
  retryBudgetMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** One PutRecords call is aborted after this long (its records then count as failed). */
  callTimeoutMs: number;
}

export const DEFAULT_BATCHING: BatchingOptions = {
  lingerMs: 5,
  flushWhenIdle: true,
  maxRecords: 500,
  maxBytes: 5 * 1024 * 1024,
  maxBuffered: 10_000,
  maxConcurrentCalls: 4,
  retryBudgetMs: 2_000,
  backoffBaseMs: 20,
  backoffMaxMs: 500,
  callTimeoutMs: 2_000,
};

/** Observations for metrics; every hook is optional. */
export interface BatchingObserver {
  /** One PutRecords call returned (or failed) after `seconds`. */
  batch?(records: number, bytes: number, failed: number, seconds: number): void;
  retry?(reason: string): void;
  depth?(buffered: number): void;
  rejected?(reason: 'full' | 'budget' | 'closing'): void;
}

interface Pending {
  key: string;
  data: Uint8Array;
  bytes: number;
  deadline: number;
  attempts: number;
  settled: boolean;
  resolve(p: StreamPosition): void;
  reject(e: Error): void;
}

export class BatchingCommandStream implements CommandStream {
  private readonly opts: BatchingOptions;
  /** Per partition key, its records oldest first; only the head is ever ready or in a call. */
  private readonly queues = new Map<string, Pending[]>();
  /** Heads ready to be sent, in the order they became ready. */
  private ready: Pending[] = [];
  private readyBytes = 0;
  private buffered = 0;
  private calls = 0;
  /** When the last PutRecords call started (performance.now()). */
  private lastCallAt = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  /** While a call's results are handled, successors become ready but are sent together afterwards. */
  private settlingBatch = false;
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private closing = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly kinesis: KinesisSender,
    private readonly stream: string,
    opts: Partial<BatchingOptions> = {},
    private readonly observer: BatchingObserver = {},
    private readonly log?: Logger,
  ) {
    this.opts = { ...DEFAULT_BATCHING, ...opts };
  }

  /** Records currently held (for metrics and tests). */
  get depth(): number {
    return this.buffered;
  }

  put(command: Command): Promise<StreamPosition> {
    if (this.closing) {
      this.observer.rejected?.('closing');
      return Promise.reject(new ServiceUnavailableError('The gateway is shutting down; the write was not queued.', 1));
    }
    if (this.buffered >= this.opts.maxBuffered) {
      this.observer.rejected?.('full');
      return Promise.reject(
        new ServiceUnavailableError(`The write buffer is full (${this.opts.maxBuffered} records); the write was not queued.`, 1),
      );
    }
    const key = partitionKey(command.tenant, command.collection, command.id);
    const data = Buffer.from(JSON.stringify(command));
    return new Promise<StreamPosition>((resolve, reject) => {
      const p: Pending = {
        key, data, bytes: data.length + Buffer.byteLength(key), deadline: Date.now() + this.opts.retryBudgetMs,
        attempts: 0, settled: false, resolve, reject,
      };
      this.buffered++;
      this.observer.depth?.(this.buffered);
      const q = this.queues.get(key);
      if (q) q.push(p);
      else {
        this.queues.set(key, [p]);
        this.makeReady(p);
      }
    });
  }

  private makeReady(p: Pending) {
    this.ready.push(p);
    this.readyBytes += p.bytes;
    this.schedule();
  }

  private schedule() {
    if (!this.ready.length || this.settlingBatch) return;
    const full = this.ready.length >= this.opts.maxRecords || this.readyBytes >= this.opts.maxBytes;
    if (full || this.closing || this.opts.lingerMs === 0) {
      this.flush();
      return;
    }
    // Light load: nothing in flight and no call started within the linger — send now. Under load
    // (calls closer together than the linger) records wait up to the linger, so each call's fixed
    // cost is shared by the records of one linger window, not paid per event-loop turn.
    const sinceLastCall = performance.now() - this.lastCallAt;
    if (this.opts.flushWhenIdle && this.calls === 0 && sinceLastCall >= this.opts.lingerMs) {
      // End of this event-loop turn, not now: writes that arrived in the same turn share the call.
      this.immediate ??= setImmediate(() => {
        this.immediate = undefined;
        this.flush();
      });
    } else if (!this.timer && !this.immediate) {
      const wait = this.opts.flushWhenIdle && this.calls === 0 ? this.opts.lingerMs - sinceLastCall : this.opts.lingerMs;
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.flush();
      }, Math.max(1, Math.ceil(wait)));
    }
  }

  /** Sends as many calls as the concurrency allows; what is left is sent when a call returns. */
  private flush() {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.immediate) {
      clearImmediate(this.immediate);
      this.immediate = undefined;
    }
    while (this.ready.length && this.calls < this.opts.maxConcurrentCalls) {
      const batch: Pending[] = [];
      let bytes = 0;
      while (this.ready.length && batch.length < this.opts.maxRecords && bytes + this.ready[0]!.bytes <= this.opts.maxBytes) {
        const p = this.ready.shift()!;
        bytes += p.bytes;
        batch.push(p);
      }
      this.readyBytes -= bytes;
      this.lastCallAt = performance.now();
      void this.send(batch, bytes);
    }
  }

  private async send(batch: Pending[], bytes: number) {
    this.calls++;
    const started = performance.now();
    let out: PutRecordsCommandOutput | undefined;
    let callError: Error | undefined;
    try {
      out = await this.kinesis.send(
        new PutRecordsCommand({
          StreamName: this.stream,
          Records: batch.map((p) => ({ PartitionKey: p.key, Data: p.data })),
        }),
        { abortSignal: AbortSignal.timeout(this.opts.callTimeoutMs) },
      );
    } catch (err) {
      callError = err as Error;
    }
    this.calls--;
    const seconds = (performance.now() - started) / 1000;
    let failed = 0;
    this.settlingBatch = true;
    batch.forEach((p, i) => {
      const r = out?.Records?.[i];
      if (r?.ShardId && r.SequenceNumber && !r.ErrorCode) {
        this.succeed(p, { shardId: r.ShardId, sequenceNumber: r.SequenceNumber });
      } else {
        failed++;
        this.fail(p, callError ? callError.name : (r?.ErrorCode ?? 'MissingResult'));
      }
    });
    this.settlingBatch = false;
    this.observer.batch?.(batch.length, bytes, failed, seconds);
    if (callError) this.log?.warn('PutRecords call failed', { records: batch.length, err: callError });
    this.schedule();
    this.checkIdle();
  }

  private succeed(p: Pending, position: StreamPosition) {
    this.settle(p, () => p.resolve(position));
    this.advance(p);
  }

  /** A failed head is retried after backoff (still blocking its key) until its budget is spent. */
  private fail(p: Pending, reason: string) {
    p.attempts++;
    const delay = this.backoff(p.attempts);
    if (Date.now() + delay >= p.deadline) {
      this.observer.rejected?.('budget');
      this.settle(p, () =>
        p.reject(new ServiceUnavailableError(`The stream did not accept the write within the retry budget (${reason}); it was not queued.`, 1)),
      );
      this.advance(p);
      return;
    }
    this.observer.retry?.(reason);
    const t = setTimeout(() => {
      this.retryTimers.delete(t);
      this.makeReady(p);
    }, delay);
    this.retryTimers.add(t);
  }

  /** Full jitter: uniformly random up to the exponential cap. */
  private backoff(attempt: number) {
    const cap = Math.min(this.opts.backoffMaxMs, this.opts.backoffBaseMs * 2 ** (attempt - 1));
    return Math.max(1, Math.floor(Math.random() * cap));
  }

  private settle(p: Pending, fn: () => void) {
    if (p.settled) return;
    p.settled = true;
    this.buffered--;
    this.observer.depth?.(this.buffered);
    fn();
  }

  /** The head of a key is done: the key's next record becomes ready. */
  private advance(p: Pending) {
    const q = this.queues.get(p.key);
    if (!q) return;
    q.shift();
    const next = q[0];
    if (next) this.makeReady(next);
    else this.queues.delete(p.key);
  }

  private checkIdle() {
    if (this.buffered === 0 && this.calls === 0) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
    }
  }

  /** Stops accepting, sends everything held now, and settles every pending put (accepted or 503). */
  async close(): Promise<void> {
    this.closing = true;
    this.flush();
    if (this.buffered === 0 && this.calls === 0) return;
    // Retries still run inside each record's budget; the budget bounds how long this waits.
    await new Promise<void>((resolve) => {
      this.idleWaiters.push(resolve);
      this.checkIdle();
    });
    for (const t of this.retryTimers) clearTimeout(t);
  }
}
