/**
 * The read API against the real stack (gateway, Kinesis emulator, processors, PostgreSQL,
 * DynamoDB emulator, Redis): hot reads, miss → DynamoDB → refill, single-flight, HTTP caching,
 * read-your-writes with minVersion, listings, and tenant isolation. DynamoDB calls are counted by
 * a wrapper around the real DocumentClient's `send`.
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { loadConfig } from '../core/config';
import type { WriteAccepted } from '../core/contracts';
import { RedisKeys } from '../core/keys';
import { ReadConfig, startReadModel } from '../read-model/main';
import { request } from './helpers/http';
import { startStack, type Stack } from './helpers/stack';
import { TestSocket } from './helpers/ws-client';

// Long enough for a whole write (gateway → stream → commit → Redis) on a busy 2-core CI machine.
const WAIT_MS = 1500;
let stack: Stack;
let keys: RedisKeys;
let tokenA: string;
let tokenA2: string;
let tokenB: string;
let socket: TestSocket;
const dynamoCalls: string[] = [];

beforeAll(async () => {
  stack = await startStack('reads', { services: ['processors', 'ack-service', 'gateway'] });
  const reads = await startReadModel(loadConfig(ReadConfig, { ...stack.env, READ_MIN_VERSION_WAIT_MS: String(WAIT_MS) }), {
    wrapDocumentClient: (doc: DynamoDBDocumentClient) => {
      const send = doc.send.bind(doc) as (cmd: object) => Promise<unknown>;
      doc.send = ((cmd: object) => {
        dynamoCalls.push(cmd.constructor.name);
        return send(cmd);
      }) as typeof doc.send;
      return doc;
    },
  });
  stack.services.set('read-model', reads);
  stack.readUrl = reads.url!;
  keys = new RedisKeys(stack.redisPrefix);
  tokenA = await stack.token({ tenant: 'acme', sub: 'alice' });
  tokenA2 = await stack.token({ tenant: 'acme', sub: 'bob' });
  tokenB = await stack.token({ tenant: 'globex', sub: 'mallory' });
  socket = await TestSocket.open(`${stack.ackUrl}/v1/acks`, { Authorization: `Bearer ${tokenA}` });
});

afterAll(async () => {
  await socket?.close();
  await stack?.close();
});

/** A write through the gateway; resolves with its 202 answer once it is queued. */
async function send(method: 'PUT' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<WriteAccepted> {
  const res = await request(`${stack.gatewayUrl}/v1/collections/${path}`, {
    method,
    token: tokenA,
    ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': method === 'PATCH' ? 'application/merge-patch+json' : 'application/json' } } : {}),
  });
  expect(res.status).toBe(202);
  return res.body as unknown as WriteAccepted;
}

/**
 * A write that has been committed and projected into DynamoDB and Redis by both consumers (the
 * projection consumer's late, version-guarded Redis write would otherwise race a test's `del`).
 */
async function commit(method: 'PUT' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<{ requestId: string; version: number }> {
  const accepted = await send(method, path, body);
  const ack = await socket.finalAck(accepted.requestId);
  expect(ack.stage).toBe('committed');
  await stack.projected(accepted);
  return { requestId: accepted.requestId, version: ack.version as number };
}

const read = (path: string, token = tokenA, headers: Record<string, string> = {}) =>
  request(`${stack.readUrl}${path}`, { token, headers });
const gets = () => dynamoCalls.filter((c) => c === 'GetCommand').length;

describe('item reads', () => {
  test('a hot item is served from Redis without touching DynamoDB', async () => {
    await commit('PUT', 'notes/items/hot', { title: 'hot' });
    const before = dynamoCalls.length;
    const res = await read('/v1/collections/notes/items/hot');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ collection: 'notes', id: 'hot', version: 1, updatedAt: expect.any(String), data: { title: 'hot' } });
    expect(res.headers.get('etag')).toBe('"1"');
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(dynamoCalls.length).toBe(before);
  });

  test('a miss reads DynamoDB once, refills Redis, and the next read is a hit', async () => {
    await commit('PUT', 'notes/items/cold', { title: 'cold' });
    await stack.redis.del(keys.item('acme', 'notes', 'cold'));
    const before = gets();
    const first = await read('/v1/collections/notes/items/cold');
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ id: 'cold', version: 1, data: { title: 'cold' } });
    expect(gets()).toBe(before + 1);
    expect(await stack.redis.hmget(keys.item('acme', 'notes', 'cold'), 'v', 'd')).toEqual(['1', first.text]);

    const second = await read('/v1/collections/notes/items/cold');
    expect(second.text).toBe(first.text);
    expect(gets()).toBe(before + 1);
  });

  test('fifty concurrent misses on one key cause one DynamoDB read (single-flight)', async () => {
    await commit('PUT', 'notes/items/stampede', { title: 'stampede' });
    await stack.redis.del(keys.item('acme', 'notes', 'stampede'));
    const before = gets();
    const answers = await Promise.all(Array.from({ length: 50 }, () => read('/v1/collections/notes/items/stampede')));
    expect(answers.map((a) => a.status)).toEqual(Array(50).fill(200));
    expect(new Set(answers.map((a) => a.text)).size).toBe(1);
    expect(gets()).toBe(before + 1);
  });

  test('a deleted item is 404 problem+json, from the hot copy and after a miss', async () => {
    await commit('PUT', 'notes/items/gone', { title: 'gone' });
    await commit('DELETE', 'notes/items/gone');
    const hot = await read('/v1/collections/notes/items/gone');
    expect(hot.status).toBe(404);
    expect(hot.headers.get('content-type')).toBe('application/problem+json');
    expect(hot.body).toMatchObject({ type: 'urn:ackstream:problem:not-found', title: 'Not Found', status: 404, detail: expect.any(String) });
    await stack.redis.del(keys.item('acme', 'notes', 'gone'));
    expect((await read('/v1/collections/notes/items/gone')).status).toBe(404);
    expect(await stack.redis.hget(keys.item('acme', 'notes', 'gone'), 'v')).toBe('2'); // tombstone refilled
  });

  test('rejects bad names, missing tokens and other methods precisely', async () => {
    expect((await read('/v1/collections/no%20tes/items/x')).status).toBe(400);
    expect((await read('/v1/collections/notes/items/a%zz')).status).toBe(400);
    const anon = await request(`${stack.readUrl}/v1/collections/notes/items/hot`);
    expect(anon.status).toBe(401);
    expect(anon.headers.get('www-authenticate')).toBe('Bearer');
    const post = await request(`${stack.readUrl}/v1/collections/notes/items/hot`, { method: 'POST', token: tokenA });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    expect((await read('/v2/nothing')).status).toBe(404);
  });
});

describe('HTTP caching', () => {
  test('If-None-Match with the current ETag is a 304 without a body; a stale one gets the new version', async () => {
    await commit('PUT', 'notes/items/etag', { n: 1 });
    const fresh = await read('/v1/collections/notes/items/etag', tokenA, { 'if-none-match': '"1"' });
    expect(fresh.status).toBe(304);
    expect(fresh.text).toBe('');
    expect(fresh.headers.get('etag')).toBe('"1"');
    expect(fresh.headers.get('cache-control')).toBe('private, no-cache');
    expect((await read('/v1/collections/notes/items/etag', tokenA, { 'if-none-match': 'W/"1", "7"' })).status).toBe(304);

    await commit('PATCH', 'notes/items/etag', { n: 2 });
    const changed = await read('/v1/collections/notes/items/etag', tokenA, { 'if-none-match': '"1"' });
    expect(changed.status).toBe(200);
    expect(changed.headers.get('etag')).toBe('"2"');
    expect(changed.body).toMatchObject({ version: 2, data: { n: 2 } });
  });

  test('listings may be kept privately but are revalidated; request status is never stored', async () => {
    const { requestId } = await commit('PUT', 'notes/items/cc', { n: 1 });
    expect((await read('/v1/collections/notes/items')).headers.get('cache-control')).toBe('private, no-cache');
    expect((await read(`/v1/requests/${requestId}`)).headers.get('cache-control')).toBe('no-store');
  });
});

describe('read-your-writes', () => {
  test('minVersion waits for a write that lands during the wait, then answers it', async () => {
    await commit('PUT', 'notes/items/ryw', { step: 1 });
    const waiting = read('/v1/collections/notes/items/ryw?minVersion=2');
    await new Promise((r) => setTimeout(r, 50));
    await send('PATCH', 'notes/items/ryw', { step: 2 });
    const res = await waiting;
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ version: 2, data: { step: 2 } });
    expect(res.headers.get('etag')).toBe('"2"');
  });

  test('X-Min-Version already reached answers at once', async () => {
    const { version } = await commit('PUT', 'notes/items/ryw-now', { ok: true });
    const res = await read('/v1/collections/notes/items/ryw-now', tokenA, { 'x-min-version': String(version) });
    expect(res.status).toBe(200);
    expect(res.body.version).toBe(version);
  });

  test('a version not reached within the bound is a 409 naming the version the read model has', async () => {
    await commit('PUT', 'notes/items/ryw-late', { v: 1 });
    const started = Date.now();
    const res = await read('/v1/collections/notes/items/ryw-late', tokenA, { 'x-min-version': '5' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(WAIT_MS - 20);
    expect(res.status).toBe(409);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(res.body).toMatchObject({ type: 'urn:ackstream:problem:conflict', status: 409, currentVersion: 1 });

    const absent = await read('/v1/collections/notes/items/never?minVersion=1');
    expect(absent.status).toBe(409);
    expect(absent.body.currentVersion).toBe(0);
  });

  test('an invalid minVersion is a 400', async () => {
    expect((await read('/v1/collections/notes/items/ryw?minVersion=abc')).status).toBe(400);
    expect((await read('/v1/collections/notes/items/ryw', tokenA, { 'x-min-version': '-1' })).status).toBe(400);
  });
});

describe('listings', () => {
  test('pages newest first with a cursor, in a stable order, without overlaps, ending with a null cursor', async () => {
    for (const id of ['a', 'b', 'c', 'd', 'e']) await commit('PUT', `list/items/${id}`, { id });
    await commit('PATCH', 'list/items/b', { touched: true }); // b becomes the newest
    await commit('DELETE', 'list/items/d'); // deleted items are not listed
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await read(`/v1/collections/list/items?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      seen.push(...res.body.items.map((i: { id: string }) => i.id));
      cursor = res.body.nextCursor;
      pages++;
    } while (cursor);
    expect(seen).toEqual(['b', 'e', 'c', 'a']);
    expect(pages).toBe(2);
    const all = await read('/v1/collections/list/items?limit=100');
    expect(all.body).toEqual({ items: expect.any(Array), nextCursor: null });
    expect(all.body.items[0]).toMatchObject({ collection: 'list', id: 'b', version: 2, data: { id: 'b', touched: true } });
  });

  test.each(['0', '101', 'abc', '1.5', ''])('limit=%p is a 400 problem', async (limit) => {
    const res = await read(`/v1/collections/list/items?limit=${limit}`);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ status: 400, detail: expect.stringContaining('limit') });
  });

  test('a cursor this API did not return is a 400 problem', async () => {
    const res = await read('/v1/collections/list/items?cursor=bm90LWEtY3Vyc29y');
    expect(res.status).toBe(400);
    expect(res.body.detail).toContain('cursor');
  });
});

describe('request status', () => {
  test('is read from Redis, and after a miss from DynamoDB with Redis refilled', async () => {
    const { requestId, version } = await commit('PUT', 'notes/items/status', { s: 1 });
    const hot = await read(`/v1/requests/${requestId}`);
    expect(hot.body).toMatchObject({ requestId, status: 'committed', collection: 'notes', id: 'status', version });
    await stack.redis.del(keys.request('acme', requestId));
    const before = gets();
    // The read API's near cache drops the entry when Redis' invalidation reaches it (asynchronous):
    // read until a read misses, then that miss is one DynamoDB read.
    let cold = await read(`/v1/requests/${requestId}`);
    const deadline = Date.now() + 3000;
    while (gets() === before && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      cold = await read(`/v1/requests/${requestId}`);
    }
    expect(cold.text).toBe(hot.text);
    expect(gets()).toBe(before + 1);
    expect(await stack.redis.hget(keys.request('acme', requestId), 'r')).toBe('2');
  });
});

describe('tenant isolation', () => {
  test("another tenant's item, request status and listing entries are not found (404, not 403)", async () => {
    const { requestId } = await commit('PUT', 'secrets/items/plan', { secret: true });
    const ownItem = await read('/v1/collections/secrets/items/plan', tokenA);
    expect(ownItem.status).toBe(200);

    const item = await read('/v1/collections/secrets/items/plan', tokenB);
    expect(item.status).toBe(404);
    expect(item.body.detail).not.toContain('globex');
    expect((await read('/v1/collections/secrets/items/plan?minVersion=1', tokenB)).status).toBe(409); // never sees version 1
    expect((await read(`/v1/requests/${requestId}`, tokenB)).status).toBe(404);

    const listing = await read('/v1/collections/secrets/items', tokenB);
    expect(listing.status).toBe(200);
    expect(listing.body).toEqual({ items: [], nextCursor: null }); // the same answer as for a collection nobody has

    // a cursor from tenant A's listing does not open tenant A's partition to tenant B
    await commit('PUT', 'secrets/items/plan2', { secret: true });
    const pageA = await read('/v1/collections/secrets/items?limit=1', tokenA);
    expect(pageA.body.nextCursor).toEqual(expect.any(String));
    const pageB = await read(`/v1/collections/secrets/items?limit=1&cursor=${pageA.body.nextCursor}`, tokenB);
    expect(pageB.body).toEqual({ items: [], nextCursor: null });
  });

  test('another principal of the same tenant reads the same items', async () => {
    expect((await read('/v1/collections/secrets/items/plan', tokenA2)).status).toBe(200);
  });
});
