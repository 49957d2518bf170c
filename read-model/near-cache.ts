/**
 * Near cache: the ready-to-send answers (version, ETag, body bytes) of hot items kept in the read
 * API's own memory, so a hot read costs no Redis round trip. It stays coherent with Redis through
 * server-assisted client-side caching (Redis ≥ 6, RESP2 form):
 *
 * - a second connection (the invalidation connection) SUBSCRIBEs to `__redis__:invalidate`, and
 *   the data connection that reads items sends `CLIENT TRACKING ON REDIRECT <its client id>`:
 *   Redis then tells it every key the data connection has read once that key changes, expires, is
 *   evicted or flushed;
 * - an invalidation drops the entry. Its reply and the invalidation travel on two connections, so
 *   an invalidation can overtake the reply of a read that Redis answered before the write: a fill
 *   takes a token before its read is sent, an invalidation of the key voids the token, and only a
 *   fill whose token survived is cached (the race described in Redis' client-side caching docs);
 * - invalidations may be lost whenever a connection closes (Redis drops them in RESP2 when the
 *   redirect target is gone, and a new data connection is not tracked), so any close of either
 *   connection flushes everything and nothing is filled until tracking is set up again on the live
 *   pair. While Redis is unreachable nothing is served from here: a value kept while its
 *   invalidations cannot arrive may be stale, and reads fall to the outage rules (DynamoDB);
 * - a live connection loses nothing (TCP keeps the order), but a silent one would delay
 *   invalidations without bound: a heartbeat PING on the invalidation connection must be answered
 *   within `maxSilenceMs`, else everything is flushed and the connection replaced.
 *
 * Memory is bounded by entries and by bytes (CLOCK eviction: least recently used, approximately). The cache key is the full Redis key,
 * which holds the projection version prefix and the tenant: isolation is exactly Redis'.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../core/log';
import type { ItemAnswer, NearCacheLink } from '../core/read-store';

interface Entry extends ItemAnswer {
  readonly size: number;
  /** Read since it last came to the front of the eviction order (CLOCK's reference bit). */
  used: boolean;
}

export interface NearCacheLimits {
  maxEntries: number;
  maxBytes: number;
}

export interface NearCacheStats {
  hits: number;
  fills: number;
  invalidations: number;
  flushes: number;
  evictions: number;
}

/** Map and string bookkeeping per entry, counted on top of the body and key. */
const ENTRY_OVERHEAD = 160;

/** The bounded LRU with fill tokens; `RedisTracking` keeps it coherent. */
export class NearCache implements NearCacheLink {
  private readonly entries = new Map<string, Entry>();
  /** Key → token of the latest fill started and not yet voided. */
  private readonly fills = new Map<string, number>();
  private bytes = 0;
  private lastToken = 0;
  private on = false;
  readonly stats: NearCacheStats = { hits: 0, fills: 0, invalidations: 0, flushes: 0, evictions: 0 };

  constructor(private readonly limits: NearCacheLimits) {}

  /** Serving and filling happen only while tracking is established. */
  get active(): boolean {
    return this.on;
  }

  get size(): number {
    return this.entries.size;
  }

  get byteSize(): number {
    return this.bytes;
  }

  get(key: string): ItemAnswer | undefined {
    if (!this.on) return undefined;
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    // A hit only marks the entry (no Map delete + insert per read, which the profile showed);
    // eviction gives marked entries a second chance (CLOCK, an approximation of LRU).
    e.used = true;
    this.stats.hits++;
    return e;
  }

  /** Call before sending the read that may fill `key`; 0 = the answer may not be cached. */
  beginFill(key: string): number {
    if (!this.on) return 0;
    const token = ++this.lastToken;
    this.fills.set(key, token);
    return token;
  }

  /**
   * Ends a fill (always, also when the read failed: `answer` undefined). The answer is cached only
   * if no invalidation of the key and no flush happened since `beginFill`. The body is copied
   * into its own exact-size buffer: a reply slice would keep the parser's whole chunk alive.
   */
  endFill(key: string, token: number, answer: ItemAnswer | undefined): void {
    if (token === 0 || this.fills.get(key) !== token) return;
    this.fills.delete(key);
    if (answer === undefined || !this.on) return;
    let body: Buffer | null = null;
    if (answer.body !== null) {
      body = Buffer.allocUnsafeSlow(answer.body.length);
      answer.body.copy(body);
    }
    const size = (body?.length ?? 0) + key.length * 2 + ENTRY_OVERHEAD;
    if (size > this.limits.maxBytes) return;
    this.remove(key);
    this.entries.set(key, { version: answer.version, etag: answer.etag, body, size, used: false });
    this.bytes += size;
    this.stats.fills++;
    while (this.entries.size > this.limits.maxEntries || this.bytes > this.limits.maxBytes) {
      const [oldest, e] = this.entries.entries().next().value!;
      if (e.used) {
        e.used = false; // read since it came to the front: goes to the back instead
        this.entries.delete(oldest);
        this.entries.set(oldest, e);
        continue;
      }
      this.remove(oldest);
      this.stats.evictions++;
    }
  }

  /** Redis says `key` changed: drop it, and void a fill in flight. */
  invalidate(key: string): void {
    this.fills.delete(key);
    if (this.remove(key)) this.stats.invalidations++;
  }

  /** Drops every entry and voids every fill in flight (the cache stays as active as it was). */
  flush(): void {
    this.entries.clear();
    this.fills.clear();
    this.bytes = 0;
    this.stats.flushes++;
  }

  /** Tracking lost: flush and neither serve nor fill until `resume`. */
  suspend(): void {
    this.on = false;
    this.flush();
  }

  /** Tracking (re-)established on the live connections. */
  resume(): void {
    this.on = true;
  }

  private remove(key: string): boolean {
    const e = this.entries.get(key);
    if (e === undefined) return false;
    this.entries.delete(key);
    this.bytes -= e.size;
    return true;
  }
}

export const INVALIDATE_CHANNEL = '__redis__:invalidate';

export interface TrackingOptions {
  /** A heartbeat unanswered for longer than this flushes the cache and replaces the connection. */
  maxSilenceMs: number;
}

/**
 * Keeps a NearCache coherent with the Redis that `data` reads from: sets up and re-sets up
 * tracking, applies invalidations, flushes on any connection loss, runs the heartbeat.
 */
export class RedisTracking {
  /** CLIENT ID of the invalidation connection once it is subscribed; cleared when it closes. */
  private subId: string | undefined;
  private dataId: string | undefined;
  private subEpoch = 0;
  /** Bumped by every loss: a setup that saw one on its way does not resume the cache. */
  private epoch = 0;
  private subscribing: Promise<string> | undefined;
  private establishing = false;
  private pinging = false;
  /** When the newest answered heartbeat (or the setup) was sent: invalidations up to then have arrived. */
  private heardAt = 0;
  private failedOnce = false;
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly data: Redis,
    private readonly sub: Redis,
    private readonly cache: NearCache,
    private readonly log: Logger,
    private readonly opts: TrackingOptions,
  ) {
    data.on('close', () => this.lost('data connection closed'));
    sub.on('close', () => {
      this.subEpoch++;
      this.subId = undefined;
      this.lost('invalidation connection closed');
    });
    data.on('ready', () => void this.establish());
    sub.on('ready', () => void this.establish());
    sub.on('messageBuffer', (_channel: Buffer, message: unknown) => this.onInvalidation(message));
    this.timer = setInterval(() => this.tick(), Math.max(10, Math.floor(opts.maxSilenceMs / 2)));
    this.timer.unref();
    void this.establish();
  }

  /** Client ids of the two connections (for operators and tests: `CLIENT KILL ID`). */
  clientIds(): { data: string | undefined; invalidations: string | undefined } {
    return { data: this.dataId, invalidations: this.subId };
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.cache.suspend();
    this.sub.disconnect();
  }

  private lost(reason: string): void {
    this.epoch++;
    if (this.cache.active) this.log.warn('near cache flushed: invalidations may have been lost', { reason });
    this.cache.suspend();
  }

  private onInvalidation(message: unknown): void {
    // RESP2: an array of keys, or nil after FLUSHDB/FLUSHALL (every key is invalid).
    if (Array.isArray(message)) {
      for (const key of message as Buffer[]) this.cache.invalidate(key.toString());
    } else {
      this.cache.flush();
    }
  }

  private async establish(): Promise<void> {
    if (this.closed || this.establishing || this.cache.active) return;
    if (this.data.status !== 'ready' || this.sub.status !== 'ready') return;
    this.establishing = true;
    const epoch = this.epoch;
    const startedAt = Date.now();
    try {
      const redirect = await this.subscriberId();
      const dataId = String(await this.data.client('ID'));
      // Reads sent after this command on the same connection are tracked.
      await this.data.call('CLIENT', 'TRACKING', 'ON', 'REDIRECT', redirect);
      if (epoch !== this.epoch || this.closed) return; // a connection closed meanwhile: the next ready sets up again
      this.dataId = dataId;
      this.heardAt = startedAt;
      this.failedOnce = false;
      this.cache.resume();
    } catch (err) {
      // e.g. a Redis without CLIENT TRACKING: reads go to Redis as before; the heartbeat tries again.
      if (!this.failedOnce) this.log.warn('near cache off: cannot set up Redis client-side caching', { err });
      this.failedOnce = true;
    } finally {
      this.establishing = false;
    }
  }

  /** CLIENT ID of the invalidation connection, subscribing it first (CLIENT ID is not allowed once subscribed). */
  private subscriberId(): Promise<string> {
    if (this.subId !== undefined) return Promise.resolve(this.subId);
    if (!this.subscribing) {
      const epoch = this.subEpoch;
      this.subscribing = (async () => {
        const id = String(await this.sub.client('ID'));
        await this.sub.subscribe(INVALIDATE_CHANNEL);
        if (epoch !== this.subEpoch) throw new Error('invalidation connection closed while subscribing');
        this.subId = id;
        return id;
      })().finally(() => {
        this.subscribing = undefined;
      });
    }
    return this.subscribing;
  }

  private tick(): void {
    if (!this.cache.active) {
      void this.establish();
      return;
    }
    if (Date.now() - this.heardAt > this.opts.maxSilenceMs) {
      this.lost('invalidation connection silent');
      this.sub.disconnect(true); // a fresh connection (and id) proves itself before the cache resumes
      return;
    }
    if (this.pinging) return;
    this.pinging = true;
    const sentAt = Date.now();
    const epoch = this.epoch;
    this.sub
      .ping()
      .then(() => {
        if (epoch === this.epoch) this.heardAt = sentAt;
      })
      .catch(() => undefined) // an unanswered heartbeat is handled by the silence check
      .finally(() => {
        this.pinging = false;
      });
  }
}
