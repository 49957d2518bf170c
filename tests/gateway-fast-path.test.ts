/**
 * The item writes (PUT/PATCH/DELETE /v1/collections/:collection/items/:id) reach their handler
 * without the router's walk when the path is in its plain spelling (gateway/app.ts). Every other
 * spelling the router accepts still goes through the router; both must answer exactly alike:
 * the same statuses, headers, bodies and problems, the same request metrics.
 */
import { type JsonResponse, request } from './helpers/http';
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
