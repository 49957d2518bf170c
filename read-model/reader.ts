/**
 * Reads from the read model: the near cache (in-process, read-model/near-cache.ts) first, then the
 * hot copy (Redis); on a miss the durable copy (DynamoDB), then the hot copy is refilled. Concurrent misses on one key share one durable read
 * (single-flight). A failing hot copy is skipped behind a circuit breaker (reads go on, slower);
 * a failing durable copy on a miss is a 503 with Retry-After, answered fast, never a hang.
 */
import { ServiceUnavailableError } from '../core/errors';
import type { Logger } from '../core/log';
import { answerOf, type ItemAnswer } from '../core/read-store';
import { type DurableStore, type HotReads, hotReads, type HotStore, InvalidCursorError, type Page, RANK_FINAL, RANK_QUEUED, type StoredItem } from '../core/read-store';

export interface ReaderOptions {
  /** Consecutive failures that open a breaker. */
  breakerThreshold?: number;
  /** How long an open breaker skips its store before one trial call. */
  breakerOpenMs?: number;
}

/** Counts consecutive failures; open = skip the store until `openMs` passed, then let one call try. */
export class CircuitBreaker {
  private failures = 0;
  private openUntil = 0;
  private trial = false;

  constructor(
    private readonly threshold: number,
    private readonly openMs: number,
  ) {}

  /** May a call go to the store now? */
  allow(now = Date.now()): boolean {
    if (this.failures < this.threshold) return true;
    if (now < this.openUntil || this.trial) return false;
    this.trial = true; // half-open: exactly one trial call
    return true;
  }

  succeeded(): void {
    this.failures = 0;
    this.trial = false;
  }

  failed(now = Date.now()): void {
    this.failures++;
    this.trial = false;
    if (this.failures >= this.threshold) this.openUntil = now + this.openMs;
  }

  get open(): boolean {
    return this.failures >= this.threshold;
  }

  /** Seconds until the next trial, for Retry-After. */
  retryAfterSeconds(now = Date.now()): number {
    return Math.max(1, Math.ceil((this.openUntil - now) / 1000));
  }
}

/** The outcome of a read that must reach a version (read-your-writes). */
export interface VersionedRead {
  item: ItemAnswer | undefined;
  /** Whether the item reached the version asked for within the wait. */
  reached: boolean;
}

const NO_HOT = Symbol('no-hot');

export class ReadModelReader {
  private readonly inflight = new Map<string, Promise<unknown>>();
  readonly hotBreaker: CircuitBreaker;
  readonly durableBreaker: CircuitBreaker;
  private readonly hotReads: HotReads;

  constructor(
    private readonly hot: HotStore,
    private readonly durable: DurableStore,
    private readonly log: Logger,
    opts: ReaderOptions = {},
  ) {
    this.hotBreaker = new CircuitBreaker(opts.breakerThreshold ?? 3, opts.breakerOpenMs ?? 1000);
    this.durableBreaker = new CircuitBreaker(opts.breakerThreshold ?? 3, opts.breakerOpenMs ?? 1000);
    this.hotReads = hotReads(hot);
  }

  /** The item from the near cache, synchronously, or undefined (then `getItem`). */
  peekItem(tenant: string, collection: string, id: string): ItemAnswer | undefined {
    return this.hotBreaker.open ? undefined : this.hotReads.peekItem(tenant, collection, id);
  }

  async getItem(tenant: string, collection: string, id: string): Promise<ItemAnswer | undefined> {
    return this.peekItem(tenant, collection, id) ?? this.readItem(tenant, collection, id);
  }

  /**
   * Read-your-writes: answers once the item reached `minVersion`, polling with a short backoff
   * (hot copy, then the durable copy in case the hot one lags) until `waitMs` has passed. A near
   * cache entry answers only if it is new enough: an older one may be waiting for its
   * invalidation, so the polls read Redis itself.
   */
  async getItemAtLeast(tenant: string, collection: string, id: string, minVersion: number, waitMs: number): Promise<VersionedRead> {
    const deadline = Date.now() + waitMs;
    const near = this.peekItem(tenant, collection, id);
    if (near && near.version >= minVersion) return { item: near, reached: true };
    let item = await this.readItem(tenant, collection, id);
    for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
      if (item && item.version >= minVersion) return { item, reached: true };
      const durable = await this.loadItem(tenant, collection, id);
      if (durable && durable.version >= minVersion) return { item: durable, reached: true };
      item = durable ?? item;
      const left = deadline - Date.now();
      if (left <= 0) return { item, reached: false };
      await new Promise((r) => setTimeout(r, Math.min(delay, left)));
      const hot = await this.tryHot(() => this.hotReads.readItem(tenant, collection, id));
      if (hot !== NO_HOT && hot) item = hot;
    }
  }

  /** Redis (which may fill the near cache), then the durable copy on a miss. */
  private async readItem(tenant: string, collection: string, id: string): Promise<ItemAnswer | undefined> {
    const cached = await this.tryHot(() => this.hotReads.readItem(tenant, collection, id));
    if (cached !== NO_HOT && cached) return cached;
    return this.loadItem(tenant, collection, id);
  }

  async getRequest(tenant: string, requestId: string): Promise<string | undefined> {
    const cached = await this.tryHot(() => this.hot.getRequest(tenant, requestId));
    if (cached !== NO_HOT && cached) return cached;
    return this.flight(`r\u0000${tenant}\u0000${requestId}`, async () => {
      const json = await this.fromDurable(() => this.durable.getRequest(tenant, requestId));
      if (json !== undefined) {
        // Only a miss pays this parse: the rank keeps a refill from demoting a final status.
        const rank = (JSON.parse(json) as { status?: string }).status === 'queued' ? RANK_QUEUED : RANK_FINAL;
        await this.tryHot(() => this.hot.putRequest({ tenant, requestId, rank, json }));
      }
      return json;
    });
  }

  listItems(tenant: string, collection: string, limit: number, cursor: string | undefined): Promise<Page> {
    return this.flight(`l\u0000${tenant}\u0000${collection}\u0000${limit}\u0000${cursor ?? ''}`, () =>
      this.fromDurable(() => this.durable.listItems(tenant, collection, limit, cursor)),
    );
  }

  /** One durable read per key at a time, then a version-guarded refill of the hot copy. */
  private loadItem(tenant: string, collection: string, id: string): Promise<ItemAnswer | undefined> {
    return this.flight(`i\u0000${tenant}\u0000${collection}\u0000${id}`, async () => {
      const stored: StoredItem | undefined = await this.fromDurable(() => this.durable.getItem(tenant, collection, id));
      // The refill is awaited inside the flight: a hot read queued behind it on the same Redis
      // connection either joins this flight or sees the refilled copy, so a burst costs one read.
      if (stored) await this.tryHot(() => this.hot.putItem({ tenant, collection, id, version: stored.version, updatedAt: '', json: stored.json }));
      return stored && answerOf(stored.version, stored.json === null ? null : Buffer.from(stored.json));
    });
  }

  private flight<T>(key: string, load: () => Promise<T>): Promise<T> {
    const pending = this.inflight.get(key);
    if (pending) return pending as Promise<T>;
    const p = load().finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  private async tryHot<T>(op: () => Promise<T>): Promise<T | typeof NO_HOT> {
    if (!this.hotBreaker.allow()) return NO_HOT;
    try {
      const out = await op();
      this.hotBreaker.succeeded();
      return out;
    } catch (err) {
      const wasOpen = this.hotBreaker.open;
      this.hotBreaker.failed();
      if (!wasOpen && this.hotBreaker.open) this.log.warn('hot read model unavailable; reading the durable copy', { err });
      return NO_HOT;
    }
  }

  private async fromDurable<T>(op: () => Promise<T>): Promise<T> {
    if (!this.durableBreaker.allow()) {
      throw new ServiceUnavailableError('The read model is unavailable; try again shortly.', this.durableBreaker.retryAfterSeconds());
    }
    try {
      const out = await op();
      this.durableBreaker.succeeded();
      return out;
    } catch (err) {
      if (err instanceof InvalidCursorError) {
        // the caller's mistake, not the store's health
        this.durableBreaker.succeeded();
        throw err;
      }
      this.durableBreaker.failed();
      this.log.warn('durable read model unavailable', { err });
      throw new ServiceUnavailableError('The read model is unavailable; try again shortly.', 1);
    }
  }
}
