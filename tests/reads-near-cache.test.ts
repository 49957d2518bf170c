/**
 * The read API's near cache (read-model/near-cache.ts) against the real Redis and DynamoDB
 * emulator: an item cached in process is dropped when another client changes it in Redis (as the
 * projector does, through the same version-guarded script), the cache is flushed when either of
 * its Redis connections is killed (CLIENT KILL) and set up again, minVersion looks past an entry
 * that is too old, and another tenant never sees a cached item. The LRU's fill tokens and bounds
 * are checked on the data structure itself.
 */
import { Redis } from 'ioredis';
import { loadConfig } from '../core/config';
import { RedisKeys } from '../core/keys';
import { ReadConfig, type ReadModelService, startReadModel } from '../read-model/main';
import { answerOf } from '../core/read-store';
import { NearCache } from '../read-model/near-cache';
import { DynamoDurableStore, RedisHotStore } from '../core/read-store';
import { request } from './helpers/http';
import { REDIS_URL, startStack, type Stack } from './helpers/stack';

let stack: Stack;
let svc: ReadModelService;
let writer: RedisHotStore; // another client writing the hot copy, like the projector
let durable: DynamoDurableStore;
let admin: Redis;
let tokenA: string;
let tokenB: string;
let keys: RedisKeys;

beforeAll(async () => {
  stack = await startStack('reads-near', { services: [] });
  svc = await startReadModel(loadConfig(ReadConfig, { ...stack.env, READ_MIN_VERSION_WAIT_MS: '300', READ_NEAR_CACHE_MAX_SILENCE_MS: '400' }));
  writer = new RedisHotStore(stack.redis, stack.redisPrefix);
  durable = new DynamoDurableStore(stack.doc, stack.env.ITEMS_TABLE!, stack.env.REQUESTS_TABLE!);
  admin = new Redis(REDIS_URL);
  keys = new RedisKeys(stack.redisPrefix);
  tokenA = await stack.token({ tenant: 'acme', sub: 'alice' });
  tokenB = await stack.token({ tenant: 'globex', sub: 'mallory' });
  await until(() => svc.near!.cache.active);
});

afterAll(async () => {
  admin?.disconnect();
  await svc?.close();
  await stack?.close();
});

const docOf = (id: string, version: number, data: object) =>
  JSON.stringify({ collection: 'notes', id, version, updatedAt: new Date().toISOString(), data });

/** A projected write, in the projector's order: DynamoDB, then Redis (another client than the read API's). */
async function put(id: string, version: number, data: object | null, tenant = 'acme'): Promise<void> {
  const write = { tenant, collection: 'notes', id, version, updatedAt: new Date().toISOString(), json: data && docOf(id, version, data) };
  expect(await durable.putItem(write)).toBe(true);
  expect(await writer.putItem(write)).toBe(true);
  // Redis answers a write before it sends the invalidations the write caused (on the other
  // connection), but sends them before it reads the writer's next command: what the writer does
  // next (the projector publishes the committed ack) comes after them, as this PING does.
  await stack.redis.ping();
}

const read = (id: string, token = tokenA, headers: Record<string, string> = {}) =>
  request(`${svc.url}/v1/collections/notes/items/${id}`, { token, headers });
const stats = () => ({ ...svc.near!.cache.stats });

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Reads the item until the near cache answers it, so the next step starts from a cached entry. */
async function cached(id: string, version: number, token = tokenA): Promise<void> {
  await until(async () => {
    const before = stats().hits;
    const res = await read(id, token);
    expect(res.status).toBe(200);
    expect(res.body.version).toBe(version);
    return stats().hits === before + 1;
  });
}

test('the near cache is on by default, set up against Redis, and answers a repeat read', async () => {
  expect(svc.near).toBeDefined();
  expect(svc.near!.tracking.clientIds().invalidations).toMatch(/^\d+$/);
  await put('n0', 1, { n: 0 });
  await read('n0'); // fill
  const before = stats().hits;
  const res = await read('n0');
  expect(res.status).toBe(200);
  expect(res.headers.get('etag')).toBe('"1"');
  expect(res.headers.get('content-type')).toBe('application/json');
  expect(res.body).toMatchObject({ id: 'n0', version: 1, data: { n: 0 } });
  expect(stats().hits).toBe(before + 1);
  const notModified = await read('n0', tokenA, { 'if-none-match': '"1"' });
  expect(notModified.status).toBe(304);
});

test('a cached item changed, deleted or removed in Redis by another client is served fresh on the next read', async () => {
  await put('n1', 1, { step: 1 });
  await cached('n1', 1);

  await put('n1', 2, { step: 2 });
  const changed = await read('n1');
  expect(changed.body).toMatchObject({ version: 2, data: { step: 2 } });
  expect(changed.headers.get('etag')).toBe('"2"');

  await cached('n1', 2);
  await put('n1', 3, null); // a deletion (tombstone)
  expect((await read('n1')).status).toBe(404);

  await put('n1', 4, { step: 4 });
  await cached('n1', 4);
  // The hot copy expires or is evicted while DynamoDB moved on: the entry must not outlive the key.
  await durable.putItem({ tenant: 'acme', collection: 'notes', id: 'n1', version: 5, updatedAt: new Date().toISOString(), json: docOf('n1', 5, { step: 5 }) });
  const invalidations = stats().invalidations;
  await stack.redis.del(keys.item('acme', 'notes', 'n1'));
  // The invalidation travels on the read API's own Redis connection, beside this test's HTTP
  // request: once it has landed, the entry is gone and the read goes to the stores.
  await until(() => stats().invalidations > invalidations);
  expect((await read('n1')).body).toMatchObject({ version: 5, data: { step: 5 } });
});

test('killing the invalidation connection flushes the near cache: reads stay correct, tracking comes back on a new connection', async () => {
  await put('k1', 1, { k: 1 });
  await cached('k1', 1);
  const { invalidations } = svc.near!.tracking.clientIds();
  const flushes = stats().flushes;
  await admin.client('KILL', 'ID', invalidations!);
  // Redis drops invalidations whose redirect target is gone: this change reaches nobody.
  await put('k1', 2, { k: 2 });
  expect((await read('k1')).body).toMatchObject({ version: 2, data: { k: 2 } });
  expect(stats().flushes).toBeGreaterThan(flushes);

  await until(() => svc.near!.cache.active);
  expect(svc.near!.tracking.clientIds().invalidations).not.toBe(invalidations);
  await cached('k1', 2);
  await put('k1', 3, { k: 3 }); // invalidations flow to the new connection
  expect((await read('k1')).body).toMatchObject({ version: 3, data: { k: 3 } });
});

test('killing the data connection flushes too: the new connection is tracked again before anything is cached', async () => {
  await put('k2', 1, { k: 1 });
  await cached('k2', 1);
  const { data } = svc.near!.tracking.clientIds();
  const flushes = stats().flushes;
  await admin.client('KILL', 'ID', data!);
  // The killed connection's tracking died with it: nothing tells the read API about this change.
  await put('k2', 2, { k: 2 });
  expect((await read('k2')).body).toMatchObject({ version: 2 });
  expect(stats().flushes).toBeGreaterThan(flushes);

  await until(() => svc.near!.cache.active && svc.near!.tracking.clientIds().data !== data);
  await cached('k2', 2);
  await put('k2', 3, { k: 3 });
  expect((await read('k2')).body).toMatchObject({ version: 3 });
});

test('minVersion: a cached entry new enough answers at once; an older one falls through to Redis and DynamoDB', async () => {
  await put('r1', 1, { r: 1 });
  await cached('r1', 1);
  let before = stats().hits;
  expect((await read('r1', tokenA, { 'x-min-version': '1' })).status).toBe(200);
  expect(stats().hits).toBe(before + 1);

  // DynamoDB already has version 2, the hot copy lags behind (the projector writes DynamoDB first).
  await durable.putItem({ tenant: 'acme', collection: 'notes', id: 'r1', version: 2, updatedAt: new Date().toISOString(), json: docOf('r1', 2, { r: 2 }) });
  before = stats().hits;
  const res = await read('r1?minVersion=2');
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({ version: 2, data: { r: 2 } });
  expect(res.headers.get('etag')).toBe('"2"');
  // the refill of Redis invalidated the old entry: a plain read gets version 2 too
  expect((await read('r1')).body.version).toBe(2);

  const late = await read('r1', tokenA, { 'x-min-version': '3' });
  expect(late.status).toBe(409);
  expect(late.body.currentVersion).toBe(2);
});

test('another tenant never gets a cached item: 404, and its own item of the same name is its own', async () => {
  await put('shared', 1, { owner: 'acme' });
  await cached('shared', 1);
  const other = await read('shared', tokenB);
  expect(other.status).toBe(404);
  expect((await read('shared?minVersion=1', tokenB)).status).toBe(409);

  await put('shared', 1, { owner: 'globex' }, 'globex');
  await cached('shared', 1, tokenB);
  expect((await read('shared', tokenB)).body.data).toEqual({ owner: 'globex' });
  expect((await read('shared', tokenA)).body.data).toEqual({ owner: 'acme' });
});

describe('NearCache (the data structure)', () => {
  const body = (n: number) => Buffer.alloc(n, 'x');

  test('a fill overtaken by an invalidation of its key, or by a flush, is not cached', () => {
    const c = new NearCache({ maxEntries: 10, maxBytes: 1 << 20 });
    c.resume();
    const t1 = c.beginFill('k');
    c.invalidate('k'); // arrived before the reply of the read that started the fill
    c.endFill('k', t1, answerOf(1, body(10)));
    expect(c.get('k')).toBeUndefined();

    const t2 = c.beginFill('k');
    c.endFill('k', t2, answerOf(2, body(10)));
    expect(c.get('k')?.version).toBe(2);

    const t3 = c.beginFill('j');
    c.suspend();
    c.resume();
    c.endFill('j', t3, answerOf(1, body(10)));
    expect(c.get('j')).toBeUndefined();
    expect(c.get('k')).toBeUndefined(); // the flush dropped it
  });

  test('of two fills of one key in flight, only the later one may cache; suspended = no serving, no filling', () => {
    const c = new NearCache({ maxEntries: 10, maxBytes: 1 << 20 });
    c.resume();
    const a = c.beginFill('k');
    const b = c.beginFill('k');
    c.endFill('k', a, answerOf(1, body(1)));
    expect(c.size).toBe(0);
    c.endFill('k', b, answerOf(1, body(1)));
    expect(c.size).toBe(1);
    c.suspend();
    expect(c.get('k')).toBeUndefined();
    expect(c.beginFill('k')).toBe(0);
  });

  test('is bounded by entries and by bytes, evicting what was not read since (second chance), and copies bodies', () => {
    const c = new NearCache({ maxEntries: 3, maxBytes: 1 << 20 });
    c.resume();
    const fill = (k: string, b: Buffer) => c.endFill(k, c.beginFill(k), answerOf(1, b));
    fill('a', body(10));
    fill('b', body(10));
    fill('c', body(10));
    c.get('a'); // a was read: it gets a second chance, b (oldest unread) goes
    fill('d', body(10));
    expect(c.size).toBe(3);
    expect(c.get('b')).toBeUndefined();
    expect(c.get('a')).toBeDefined();
    fill('e', body(10)); // c is the oldest unread entry now
    expect(c.get('c')).toBeUndefined();
    expect(c.get('a')).toBeDefined();
    expect(c.get('d')).toBeDefined();

    const small = new NearCache({ maxEntries: 1000, maxBytes: 5000 });
    small.resume();
    const src = body(1000);
    for (let i = 0; i < 20; i++) small.endFill(`k${i}`, small.beginFill(`k${i}`), answerOf(1, src));
    expect(small.byteSize).toBeLessThanOrEqual(5000);
    expect(small.size).toBeGreaterThan(0);
    expect(small.size).toBeLessThan(5);
    const kept = small.get('k19')!;
    expect(kept.body).not.toBe(src); // its own copy, not a slice of a reply buffer
    expect(kept.body!.equals(src)).toBe(true);
    src.fill('y');
    expect(kept.body![0]).toBe('x'.charCodeAt(0));
    // an entry larger than the whole budget is not cached
    small.endFill('big', small.beginFill('big'), answerOf(1, body(6000)));
    expect(small.get('big')).toBeUndefined();
  });
});

test('configuration: bounds are validated, 0 entries turns the near cache off', async () => {
  const base = { AUTH_SECRET: 'x'.repeat(32) };
  expect(() => loadConfig(ReadConfig, { ...base, READ_NEAR_CACHE_MAX_ENTRIES: '-1' })).toThrow(/READ_NEAR_CACHE_MAX_ENTRIES/);
  expect(() => loadConfig(ReadConfig, { ...base, READ_NEAR_CACHE_MAX_BYTES: '100' })).toThrow(/READ_NEAR_CACHE_MAX_BYTES/);
  expect(() => loadConfig(ReadConfig, { ...base, READ_NEAR_CACHE_MAX_SILENCE_MS: 'soon' })).toThrow(/READ_NEAR_CACHE_MAX_SILENCE_MS/);
  expect(loadConfig(ReadConfig, base)).toMatchObject({ READ_NEAR_CACHE_MAX_ENTRIES: 50_000, READ_NEAR_CACHE_MAX_BYTES: 64 * 1024 * 1024 });
  const off = await startReadModel(loadConfig(ReadConfig, { ...stack.env, READ_PORT: '0', READ_NEAR_CACHE_MAX_ENTRIES: '0' }));
  try {
    expect(off.near).toBeUndefined();
    await put('off', 1, { off: true });
    expect((await request(`${off.url}/v1/collections/notes/items/off`, { token: tokenA })).body).toMatchObject({ version: 1, data: { off: true } });
  } finally {
    await off.close();
  }
});
