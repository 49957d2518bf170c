/**
 * Idempotency-Key: one claim per (tenant, principal, key), holding the body fingerprint and the
 * request id the write got. The claimant puts the command; later or racing requests with the same
 * key get the claimant's answer, never a second record.
 *
 * A claim is `pending` under a short lease while its owner puts the record, then `done` with the
 * stream position for the whole window (24 h by default). If the owner fails (503) or dies, the
 * lease lapses and the next request takes the claim over WITH THE SAME request id: should the
 * first put have reached the stream after all, the processors dedupe on the request id, so the
 * write still becomes one event.
 */
import type { Redis } from 'ioredis';

export interface IdempotencyScope {
  tenant: string;
  principal: string;
  key: string;
}

export interface IdempotencyRecord {
  fingerprint: string;
  requestId: string;
  state: 'pending' | 'done';
  /** Epoch ms until which a pending claim belongs to its owner. */
  leaseUntil: number;
  shardId?: string;
  sequenceNumber?: string;
}

export type ClaimResult =
  /** The caller owns the claim (new, or taken over from a lapsed owner: then `requestId` is the old one). */
  | { kind: 'owner'; requestId: string }
  | { kind: 'existing'; record: IdempotencyRecord };

export interface IdempotencyStore {
  claim(scope: IdempotencyScope, fingerprint: string, requestId: string): Promise<ClaimResult>;
  /** Records the stream position; the claim is then answered as-is for the window. */
  complete(scope: IdempotencyScope, record: IdempotencyRecord): Promise<void>;
  /** The owner could not queue: the lease ends now so the next request may take over. */
  release(scope: IdempotencyScope, requestId: string): Promise<void>;
  close(): Promise<void>;
}

export interface IdempotencyTimes {
  /** How long a completed key answers with its first outcome. */
  windowSeconds: number;
  /** How long a pending claim belongs to its owner before another request may take over. */
  leaseMs: number;
}

// KEYS[1] claim. ARGV: fresh record JSON, now ms, lease ms, window s.
// Returns the existing record JSON, or '' when the caller owns the claim (then reply[2] = request id).
const CLAIM = `
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[4])
  return {'', cjson.decode(ARGV[1]).requestId}
end
local rec = cjson.decode(cur)
local fresh = cjson.decode(ARGV[1])
if rec.state == 'pending' and tonumber(rec.leaseUntil) <= tonumber(ARGV[2]) and rec.fingerprint == fresh.fingerprint then
  rec.leaseUntil = tonumber(ARGV[2]) + tonumber(ARGV[3])
  redis.call('SET', KEYS[1], cjson.encode(rec), 'KEEPTTL')
  return {'', rec.requestId}
end
return {cur, ''}
`;

// KEYS[1] claim. ARGV: request id, new record JSON ('' = release), window s.
const SETTLE = `
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local rec = cjson.decode(cur)
if rec.requestId ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  rec.leaseUntil = 0
  redis.call('SET', KEYS[1], cjson.encode(rec), 'KEEPTTL')
else
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
end
return 1
`;

type Scripted = Redis & {
  idemClaim(key: string, rec: string, now: string, lease: string, window: string): Promise<[string, string]>;
  idemSettle(key: string, requestId: string, rec: string, window: string): Promise<number>;
};

export class RedisIdempotencyStore implements IdempotencyStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly times: IdempotencyTimes,
  ) {
    if (!('idemClaim' in redis)) {
      redis.defineCommand('idemClaim', { numberOfKeys: 1, lua: CLAIM });
      redis.defineCommand('idemSettle', { numberOfKeys: 1, lua: SETTLE });
    }
  }

  /** `idem:{tenant}:{sub}:{key}`; the sub is URI-encoded so a ':' in it cannot make two scopes collide. */
  private k(s: IdempotencyScope) {
    return `${this.prefix}idem:${s.tenant}:${encodeURIComponent(s.principal)}:${s.key}`;
  }

  async claim(scope: IdempotencyScope, fingerprint: string, requestId: string): Promise<ClaimResult> {
    const now = Date.now();
    const fresh: IdempotencyRecord = { fingerprint, requestId, state: 'pending', leaseUntil: now + this.times.leaseMs };
    const [cur, owned] = await (this.redis as Scripted).idemClaim(
      this.k(scope), JSON.stringify(fresh), String(now), String(this.times.leaseMs), String(this.times.windowSeconds),
    );
    if (!cur) return { kind: 'owner', requestId: owned };
    return { kind: 'existing', record: JSON.parse(cur) as IdempotencyRecord };
  }

  async complete(scope: IdempotencyScope, record: IdempotencyRecord): Promise<void> {
    await (this.redis as Scripted).idemSettle(this.k(scope), record.requestId, JSON.stringify(record), String(this.times.windowSeconds));
  }

  async release(scope: IdempotencyScope, requestId: string): Promise<void> {
    await (this.redis as Scripted).idemSettle(this.k(scope), requestId, '', String(this.times.windowSeconds));
  }

  async close(): Promise<void> {}
}

/** In-process store for single-node runs without Redis; same rules, one process only. */
export class MemoryIdempotencyStore implements IdempotencyStore {
  private readonly entries = new Map<string, { rec: IdempotencyRecord; expires: number }>();
  constructor(private readonly times: IdempotencyTimes) {}

  private k(s: IdempotencyScope) {
    return `${s.tenant}\u0000${s.principal}\u0000${s.key}`;
  }

  private live(k: string) {
    const e = this.entries.get(k);
    if (e && e.expires <= Date.now()) {
      this.entries.delete(k);
      return undefined;
    }
    return e;
  }

  async claim(scope: IdempotencyScope, fingerprint: string, requestId: string): Promise<ClaimResult> {
    const k = this.k(scope);
    const now = Date.now();
    const e = this.live(k);
    if (!e) {
      this.entries.set(k, {
        rec: { fingerprint, requestId, state: 'pending', leaseUntil: now + this.times.leaseMs },
        expires: now + this.times.windowSeconds * 1000,
      });
      return { kind: 'owner', requestId };
    }
    if (e.rec.state === 'pending' && e.rec.leaseUntil <= now && e.rec.fingerprint === fingerprint) {
      e.rec = { ...e.rec, leaseUntil: now + this.times.leaseMs };
      return { kind: 'owner', requestId: e.rec.requestId };
    }
    return { kind: 'existing', record: { ...e.rec } };
  }

  async complete(scope: IdempotencyScope, record: IdempotencyRecord) {
    const e = this.live(this.k(scope));
    if (e && e.rec.requestId === record.requestId) {
      e.rec = { ...record };
      e.expires = Date.now() + this.times.windowSeconds * 1000;
    }
  }

  async release(scope: IdempotencyScope, requestId: string) {
    const e = this.live(this.k(scope));
    if (e && e.rec.requestId === requestId) e.rec = { ...e.rec, leaseUntil: 0 };
  }

  async close() {
    this.entries.clear();
  }
}
