/**
 * The item writes (PUT/PATCH/DELETE /v1/collections/:collection/items/:id) reach their handler
 * without the router's walk when the path is in its plain spelling (gateway/app.ts). Every other
 * spelling the router accepts still goes through the router; both must answer exactly alike:
 * the same statuses, headers, bodies and problems, the same request metrics.
 */
import net from 'node:net';
import { gzipSync } from 'node:zlib';
import { createKinesis } from '../core/aws';
import { type JsonResponse, request } from './helpers/http';
import { readStream } from './helpers/kinesis-records';
import { startStack, type Stack } from './helpers/stack';

let stack: Stack;
let token: string;

beforeAll(async () => {
  stack = await startStack('gw_fast_path', { services: ['gateway'] });
  token = await stack.token({ tenant: 'acme', sub: 'alice' });
});
afterAll(async () => {
  await stack?.close();
});

const plain = (id: string, query = '') => `${stack.gatewayUrl}/v1/collections/notes/items/${id}${query}`;
// Spellings the router matches to the same route (case-insensitive, optional trailing slash) that the fast path leaves to it.
const routed = (id: string) => `${stack.gatewayUrl}/V1/Collections/notes/items/${id}/`;

/** What must not differ between the two ways in: every header but the per-request ones. */
function shape(res: JsonResponse) {
  const all: Array<[string, string]> = []; res.headers.forEach((v, k) => all.push([k, v]));
  const headers = Object.fromEntries(all.filter(([k]) => !['date', 'content-length', 'location', 'ratelimit-remaining', 'ratelimit-reset'].includes(k)));
  return { status: res.status, headers, location: res.headers.get('location')?.replace(/[0-9a-f-]{36}$/, '<id>') ?? null };
}

test('a 202 is the same whether the write went through the router or not', async () => {
  for (const [method, body] of [['PUT', { title: 'x' }], ['PATCH', { done: true }], ['DELETE', undefined]] as const) {
    const fast = await request(plain('n1'), { method, token, ...(body ? { json: body } : {}) });
    const slow = await request(routed('n1'), { method, token, ...(body ? { json: body } : {}) });
    expect(fast.status).toBe(202);
    expect(shape(fast)).toEqual(shape(slow));
    expect(fast.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(fast.headers.get('content-length')).toBe(String(Buffer.byteLength(fast.text)));
    expect(fast.headers.get('location')).toBe(`/v1/requests/${fast.body.requestId}`);
    expect(Object.keys(fast.body)).toEqual(Object.keys(slow.body));
    expect(fast.body).toMatchObject({ status: 'queued', shardId: expect.any(String), sequenceNumber: expect.any(String) });
  }
});

test('refusals are the same problems (instance is the request URL as sent)', async () => {
  const cases: Array<[string, RequestInit & { token?: string; json?: unknown }]> = [
    ['PUT', { json: { a: 1 } }], // no token: 401
    ['PUT', { token, body: '{"a": }', headers: { 'content-type': 'application/json' } }], // 400 with the position
    ['PUT', { token, body: 'a', headers: { 'content-type': 'text/plain' } }], // 415
    ['PATCH', { token, json: { a: 1 }, headers: { 'if-match': '3' } }], // 400 naming the header
  ];
  for (const [method, init] of cases) {
    const fast = await request(plain('n2', '?x=1'), { method, ...init });
    const slow = await request(routed('n2'), { method, ...init });
    expect(fast.status).toBeGreaterThanOrEqual(400);
    expect(shape(fast)).toEqual(shape(slow));
    expect(fast.body).toEqual({ ...slow.body, instance: '/v1/collections/notes/items/n2?x=1' });
  }
  // Not an item write: the router's 404, as before.
  const get = await request(plain('n2'), { token });
  expect(get.status).toBe(404);
  expect(get.body.detail).toBe('No route for GET /v1/collections/notes/items/n2.');
  // Percent-encoding is the router's to decode: an invalid parameter is named as before.
  const encoded = await request(plain('a%20b'), { method: 'PUT', token, json: { a: 1 } });
  expect(encoded.status).toBe(400);
  expect(encoded.body.detail).toMatch(/^Invalid path parameter id: /);
});

test('the request metrics label both ways in as the item route', async () => {
  const count = async () => {
    const text = await (await fetch(`${stack.gatewayUrl}/metrics`)).text();
    const m = /^ackstream_gateway_requests_total\{[^}]*method="PUT",route="item",status="202"[^}]*\} (\d+)$/m.exec(text);
    return Number(m?.[1] ?? 0);
  };
  const before = await count();
  expect((await request(plain('n3'), { method: 'PUT', token, json: { a: 1 } })).status).toBe(202);
  expect((await request(routed('n3'), { method: 'PUT', token, json: { a: 1 } })).status).toBe(202);
  expect(await count()).toBe(before + 2);
});

describe('the write body', () => {
  const rawPut = (id: string, head: string, body: Buffer | string, end = true) => new Promise<string>((resolve, reject) => {
    const u = new URL(stack.gatewayUrl);
    const socket = net.connect(Number(u.port), u.hostname, () => {
      socket.write(`PUT /v1/collections/notes/items/${id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nConnection: close\r\n${head}\r\n`);
      socket.write(body);
      if (!end) setTimeout(() => socket.destroy(), 50);
    });
    let answer = '';
    socket.on('data', (c) => { answer += c.toString(); });
    socket.on('close', () => resolve(answer));
    socket.on('error', reject);
  });
  const status = (answer: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);

  test('read directly or through express.raw (gzip, chunked, identity), the same document is queued', async () => {
    const doc = { title: 'é'.repeat(3000), n: 1 }; // ≈ 6 KB: several chunks
    const json = Buffer.from(JSON.stringify(doc));
    expect(status(await rawPut('b1', `Content-Length: ${json.length}\r\n`, json))).toBe(202);
    expect(status(await rawPut('b2', `Content-Length: ${json.length}\r\nContent-Encoding: identity\r\n`, json))).toBe(202);
    const gz = gzipSync(json);
    expect(status(await rawPut('b3', `Content-Length: ${gz.length}\r\nContent-Encoding: gzip\r\n`, gz))).toBe(202);
    const chunked = `${json.length.toString(16)}\r\n${json.toString('latin1')}\r\n0\r\n\r\n`;
    expect(status(await rawPut('b4', 'Transfer-Encoding: chunked\r\n', Buffer.from(chunked, 'latin1')))).toBe(202);
    // Each of them put the same data on the stream.
    const kinesis = createKinesis({ region: 'us-east-1', endpoint: stack.env.KINESIS_ENDPOINT });
    const records = await readStream(kinesis, stack.env.KINESIS_STREAM!).finally(() => kinesis.destroy());
    const data = records.filter((r) => /^b[1-4]$/.test(r.command.id)).map((r) => r.command.data);
    expect(data).toHaveLength(4);
    for (const d of data) expect(d).toEqual(doc);
  });

  test('a body cut short leaves the gateway answering; an empty or oversized one is refused as before', async () => {
    await rawPut('b5', 'Content-Length: 100\r\n', '{"a":', false);
    expect(status(await rawPut('b6', 'Content-Length: 0\r\n', ''))).toBe(400);
    const big = `{"a":"${'x'.repeat(70 * 1024)}"}`;
    const tooBig = await rawPut('b7', `Content-Length: ${big.length}\r\n`, big);
    expect(status(tooBig)).toBe(413);
    expect(tooBig).toMatch(/exceeds the limit of 65536 bytes/);
    expect(status(await rawPut('b8', 'Content-Length: 2\r\n', '{}'))).toBe(202);
  });
});
