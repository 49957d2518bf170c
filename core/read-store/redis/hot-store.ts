/** The hot copy in Redis: one hash per item / request, written by guarded Lua scripts. */
import type { Redis } from 'ioredis';
import { RedisKeys } from '../../keys';
import type { HotReads, HotStore } from '../hot-store';
import { answerOf, type ItemAnswer, type NearCacheLink } from '../item-answer';
import type { ItemWrite, RequestWrite, StoredItem } from '../writes';

// KEYS[1] = hash; ARGV: field name of the guard (v|r), guard value, json, ttl seconds.
const GUARDED_SET = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and tonumber(cur) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], 'd', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
`;

// The same guarded write for many hashes. KEYS: the hashes; ARGV: ttl seconds, then per key its
// guard field (v|r), guard value and json.
const GUARDED_SET_MANY = `
for i = 1, #KEYS do
  local a = 2 + (i - 1) * 3
  local cur = redis.call('HGET', KEYS[i], ARGV[a])
  if not (cur and tonumber(cur) >= tonumber(ARGV[a + 1])) then
    redis.call('HSET', KEYS[i], ARGV[a], ARGV[a + 1], 'd', ARGV[a + 2])
    redis.call('EXPIRE', KEYS[i], ARGV[1])
  end
end
return #KEYS
`;

/**
 * Keys per batched call: one script call blocks Redis while it runs, so a batch goes in chunks
 * (sent together on the connection, so still one round trip) to keep other clients' reads prompt.
 */
const MANY_CHUNK = 100;

type Scripted = Redis & {
  guardedSet(key: string, field: string, value: string, json: string, ttl: string): Promise<number>;
  guardedSetMany(numKeys: number, ...keysAndArgs: string[]): Promise<number>;
};

export class RedisHotStore implements HotStore, HotReads {
  private readonly keys: RedisKeys;
  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly ttlSeconds = 24 * 3600,
    /** The read API's near cache, kept coherent by tracking on `redis` (read-model/near-cache.ts). */
    private readonly near?: NearCacheLink,
  ) {
    this.keys = new RedisKeys(prefix);
    if (!('guardedSet' in redis)) redis.defineCommand('guardedSet', { numberOfKeys: 1, lua: GUARDED_SET });
    // Variable key count: the caller passes it first.
    if (!('guardedSetMany' in redis)) redis.defineCommand('guardedSetMany', { lua: GUARDED_SET_MANY });
  }

  async getItem(tenant: string, collection: string, id: string): Promise<StoredItem | undefined> {
    const [v, d] = await this.redis.hmget(this.keys.item(tenant, collection, id), 'v', 'd');
    if (v == null || d == null) return undefined;
    return { version: Number(v), json: d === '' ? null : d };
  }

  peekItem(tenant: string, collection: string, id: string): ItemAnswer | undefined {
    return this.near?.get(this.keys.item(tenant, collection, id));
  }

  /** HMGET as Buffers: the body goes to the socket as the bytes Redis sent, never decoded to a string. */
  async readItem(tenant: string, collection: string, id: string): Promise<ItemAnswer | undefined> {
    const key = this.keys.item(tenant, collection, id);
    const token = this.near ? this.near.beginFill(key) : 0;
    let answer: ItemAnswer | undefined;
    try {
      const [v, d] = await this.redis.hmgetBuffer(key, 'v', 'd');
      if (v != null && d != null) answer = answerOf(Number(v.toString('latin1')), d.length === 0 ? null : d);
      return answer;
    } finally {
      if (token !== 0) this.near!.endFill(key, token, answer);
    }
  }

  async putItem(w: ItemWrite): Promise<boolean> {
    const key = this.keys.item(w.tenant, w.collection, w.id);
    return (await (this.redis as Scripted).guardedSet(key, 'v', String(w.version), w.json ?? '', String(this.ttlSeconds))) === 1;
  }

  async getRequest(tenant: string, requestId: string): Promise<string | undefined> {
    return (await this.redis.hget(this.keys.request(tenant, requestId), 'd')) ?? undefined;
  }

  async putRequest(w: RequestWrite): Promise<boolean> {
    const key = this.keys.request(w.tenant, w.requestId);
    return (await (this.redis as Scripted).guardedSet(key, 'r', String(w.rank), w.json, String(this.ttlSeconds))) === 1;
  }

  /**
   * Keys hash to many cluster slots: fine with cluster mode off (infra/lib/constructs/cache.ts);
   * a cluster would need the chunks grouped by slot.
   */
  async putMany(items: ItemWrite[], requests: RequestWrite[]): Promise<void> {
    const writes: Array<[key: string, field: string, value: string, json: string]> = [
      ...items.map((w) => [this.keys.item(w.tenant, w.collection, w.id), 'v', String(w.version), w.json ?? ''] as [string, string, string, string]),
      ...requests.map((w) => [this.keys.request(w.tenant, w.requestId), 'r', String(w.rank), w.json] as [string, string, string, string]),
    ];
    const calls: Promise<number>[] = [];
    for (let i = 0; i < writes.length; i += MANY_CHUNK) {
      const chunk = writes.slice(i, i + MANY_CHUNK);
      const args: string[] = chunk.map((w) => w[0]);
      args.push(String(this.ttlSeconds));
      for (const [, field, value, json] of chunk) args.push(field, value, json);
      calls.push((this.redis as Scripted).guardedSetMany(chunk.length, ...args));
    }
    await Promise.all(calls);
  }
}

