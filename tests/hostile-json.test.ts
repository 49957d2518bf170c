/**
 * Hostile JSON against the real stack (issue #21): each row of the issue's table, the same rules
 * on merge patches, WebSocket frames and query strings, and the processors' own defence for
 * records put straight on the stream (a write that can never succeed is rejected with
 * `invalid_document`, never parked, and its item stays writable).
 */
import { WebSocket } from 'ws';
import { command, eventsOf, finalAckOf, putOnStream, requestRow } from './helpers/processors';
import { startStack, type Stack } from './helpers/stack';

let stack: Stack;
let token: string;

beforeAll(async () => {
  stack = await startStack('hostile', { env: { MAX_BODY_BYTES: String(256 * 1024) } });
  token = await stack.token({ tenant: 'acme', sub: 'alice' }); // the route helpers/processors reads acks of
});

afterAll(async () => {
  await stack?.close();
});

async function send(method: 'PUT' | 'PATCH', id: string, body: string, contentType = 'application/json') {
  const res = await fetch(`${stack.gatewayUrl}/v1/collections/notes/items/${id}`, {
    method, body, headers: { authorization: `Bearer ${token}`, 'content-type': contentType },
  });
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: JSON.parse(text) as Record<string, any> };
}

async function readItem(id: string) {
  const res = await fetch(`${stack.readUrl}/v1/collections/notes/items/${id}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, text: await res.text() };
}

/** JSON with members sorted (own members only, so `__proto__` is one). */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

async function parkedCount() {
  return Number((await stack.pg.query('SELECT count(*) FROM parked')).rows[0].count);
}

/** A refused write is a 400 problem naming the rule and the JSON Pointer, and nothing reaches the log. */
async function expectRefused(id: string, body: string, rule: string, pointer: string, method: 'PUT' | 'PATCH' = 'PUT') {
  const res = await send(method, id, body);
  expect(res.status).toBe(400);
  expect(res.type).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({ type: 'urn:ackstream:problem:invalid-document', status: 400, rule, pointer });
  expect(res.body.detail).toContain(`rule ${rule}`);
  return res;
}

describe('the issue table: each body is refused at the gateway with 400, or stored exactly', () => {
  test('a lone surrogate: 400 lone-surrogate at /s, nothing queued', async () => {
    await expectRefused('row1', '{"s":"\\ud800"}', 'lone-surrogate', '/s');
    await expectRefused('row1', '{"ok":{"\\udc00":1}}', 'lone-surrogate', '/ok/\udc00');
  });

  test('\\u0000: 400 nul-character at /s', async () => {
    await expectRefused('row2', '{"s":"a\\u0000b"}', 'nul-character', '/s');
  });

  test('nesting 5,000 and 10,000 deep: 400 max-depth, never a 500; 100 levels are accepted', async () => {
    for (const depth of [5_000, 10_000]) {
      const res = await expectRefused('row3', `{"d":${'['.repeat(depth)}${']'.repeat(depth)}}`, 'max-depth', `/d${'/0'.repeat(99)}`);
      expect(res.body.detail).toContain('deeper than 100 levels');
    }
    // 250,000 levels and unterminated: a syntax error with its position.
    const open = await send('PUT', 'row3', `{"d":${'['.repeat(250_000)}`);
    expect(open).toMatchObject({ status: 400, body: { rule: 'syntax', position: 250_005 } });
    const ok = await send('PUT', 'row3', `{"d":${'['.repeat(99)}${']'.repeat(99)}}`);
    expect(ok.status).toBe(202);
    expect(await finalAckOf(stack, ok.body.requestId)).toMatchObject({ stage: 'committed', version: 1 });
  });

  test('__proto__, constructor and prototype are stored faithfully, through PUT and PATCH', async () => {
    const put = await send('PUT', 'row4', '{"__proto__":{"x":1},"ok":true,"constructor":{"prototype":{"y":2}}}');
    expect(put.status).toBe(202);
    expect(await finalAckOf(stack, put.body.requestId)).toMatchObject({ stage: 'committed', version: 1 });
    const patch = await send('PATCH', 'row4', '{"__proto__":{"z":3},"prototype":{"p":1},"constructor":{"prototype":null}}', 'application/merge-patch+json');
    expect(patch.status).toBe(202);
    expect(await finalAckOf(stack, patch.body.requestId)).toMatchObject({ stage: 'committed', version: 2 });
    const expected = '{"__proto__":{"x":1,"z":3},"ok":true,"constructor":{},"prototype":{"p":1}}';
    const read = await readItem('row4');
    expect(read.status).toBe(200);
    const data = (JSON.parse(read.text) as { data: Record<string, unknown> }).data;
    expect(Object.keys(data).sort()).toEqual(['__proto__', 'constructor', 'ok', 'prototype']);
    // Member order is not significant (jsonb keeps its own); members and values are.
    expect(canonical(data)).toBe(canonical(JSON.parse(expected)));
    const row = await stack.pg.query(`SELECT data::text AS d FROM items WHERE item_id = 'row4'`);
    expect(canonical(JSON.parse(row.rows[0].d))).toBe(canonical(JSON.parse(expected)));
    expect(Object.keys(JSON.parse(row.rows[0].d) as object)).toContain('__proto__');
  });

  test('1e400: 400 number-range at /big; digits a double cannot keep: 400 number-precision', async () => {
    await expectRefused('row5', '{"big":1e400}', 'number-range', '/big');
    await expectRefused('row5', '{"a":[1,12345678901234567890]}', 'number-precision', '/a/1');
  });

  test('a duplicate member name: 400 duplicate-key at /dup, also in a merge patch', async () => {
    await expectRefused('row6', '{"dup":1,"dup":2}', 'duplicate-key', '/dup');
    await expectRefused('row6', '{"a":{"b":1,"b":2}}', 'duplicate-key', '/a/b', 'PATCH');
  });

  test('bytes that are not UTF-8 are refused, not replaced with U+FFFD', async () => {
    const res = await fetch(`${stack.gatewayUrl}/v1/collections/notes/items/bytes`, {
      method: 'PUT', body: Buffer.from([0x7b, 0x22, 0x73, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]),
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ rule: 'utf-8' });
  });

  test('none of the refused writes reached the log', async () => {
    for (const id of ['row1', 'row2', 'row5', 'row6', 'bytes']) expect(await eventsOf(stack, id)).toEqual([]);
    expect((await eventsOf(stack, 'row3')).map((e) => e.version)).toEqual([1]);
  });
});

describe('records that bypassed the gateway: the processors reject what can never succeed', () => {
  test('a NUL or a lone surrogate in a record on the stream: rejected invalid_document, the item not blocked', async () => {
    const nul = command({ kind: 'put', id: 'direct', data: { text: 'a\u0000b' } });
    const lone = command({ kind: 'put', id: 'direct', data: { text: '\ud800' } });
    const after = command({ kind: 'put', id: 'direct', data: { text: 'fine' } });
    await putOnStream(stack, nul, lone, after);
    expect(await finalAckOf(stack, nul.requestId)).toMatchObject({ stage: 'rejected', reason: { code: 'invalid_document', message: expect.stringContaining('/text') } });
    expect(await finalAckOf(stack, lone.requestId)).toMatchObject({ stage: 'rejected', reason: { code: 'invalid_document' } });
    expect(await finalAckOf(stack, after.requestId)).toMatchObject({ stage: 'committed', version: 1 });
    expect(await parkedCount()).toBe(0);
  });

  test('content PostgreSQL refuses (a NUL in the trace id): rejected invalid_document at once, not retried into the parking lot', async () => {
    const bad = command({ kind: 'put', id: 'pgrefuses', data: { a: 1 }, traceId: 'tr\u0000ace' });
    const after = command({ kind: 'patch', id: 'pgrefuses', data: { b: 2 } });
    const create = command({ kind: 'put', id: 'pgrefuses', data: { a: 1 } });
    await putOnStream(stack, bad, create, after);
    const ack = await finalAckOf(stack, bad.requestId);
    expect(ack).toMatchObject({ stage: 'rejected', reason: { code: 'invalid_document', message: expect.stringMatching(/SQLSTATE 22/) } });
    expect(await requestRow(stack, bad.requestId)).toMatchObject({ status: 'rejected', reason: { code: 'invalid_document' } });
    expect(await finalAckOf(stack, after.requestId)).toMatchObject({ stage: 'committed', version: 2 });
    expect(await parkedCount()).toBe(0);
  });

  test('a merge patch that would grow the document past 10,000 members: rejected invalid_document, the document unchanged', async () => {
    const half = (p: string) => `{${Array.from({ length: 5_001 }, (_, i) => `"${p}${i}":${i}`).join(',')}}`;
    const put = await send('PUT', 'wide', half('a'));
    expect(await finalAckOf(stack, put.body.requestId)).toMatchObject({ stage: 'committed', version: 1 });
    const patch = await send('PATCH', 'wide', half('b'), 'application/merge-patch+json');
    expect(patch.status).toBe(202); // the gateway cannot know the merged size
    expect(await finalAckOf(stack, patch.body.requestId)).toMatchObject({ stage: 'rejected', reason: { code: 'invalid_document', message: expect.stringContaining('max-keys') } });
    const read = await readItem('wide');
    expect(JSON.parse(read.text)).toMatchObject({ version: 1 });
  });
});

describe('the same rules on the other paths that carry user JSON', () => {
  const openSocket = (query = '') =>
    new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(`${stack.ackUrl}/v1/acks${query}`, { headers: { authorization: `Bearer ${token}` } });
      ws.once('open', () => resolve(ws));
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error('refused'), { status: res.statusCode })));
      ws.once('error', reject);
    });
  const closeOf = (ws: WebSocket) => new Promise<{ code: number; reason: string }>((r) => ws.once('close', (code, reason) => r({ code, reason: reason.toString() })));

  test.each([
    ['{"type":"ping","type":"ping"}', 'duplicate-key at /type'],
    ['{"type":"\\ud800"}', 'lone-surrogate at /type'],
    [`{"type":${'['.repeat(500)}${']'.repeat(500)}}`, 'max-depth'],
  ])('a WebSocket frame %#: closed with 1007 naming the rule', async (frame, words) => {
    const ws = await openSocket();
    const closed = closeOf(ws);
    ws.send(frame);
    const c = await closed;
    expect(c.code).toBe(1007);
    expect(c.reason).toContain(words);
  });

  test('the read API: a parameter given twice, bad percent-encoding or a cursor with a lone surrogate is a 400', async () => {
    const get = async (q: string) => {
      const res = await fetch(`${stack.readUrl}/v1/collections/notes/items${q}`, { headers: { authorization: `Bearer ${token}` } });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    expect(await get('?limit=5&limit=50')).toMatchObject({ status: 400, body: { rule: 'duplicate-key', pointer: '/limit' } });
    expect(await get('?cursor=%ED%A0%80')).toMatchObject({ status: 400, body: { rule: 'utf-8' } });
    expect(await get('?cursor=a%00b')).toMatchObject({ status: 400, body: { rule: 'nul-character' } });
    const lone = Buffer.from('["\\ud800","x"]').toString('base64url');
    expect(await get(`?cursor=${lone}`)).toMatchObject({ status: 400, body: { detail: expect.stringContaining('cursor') } });
    expect((await get('?limit=5')).status).toBe(200);
    const item = await fetch(`${stack.readUrl}/v1/collections/notes/items/row4?minVersion=1&minVersion=2`, { headers: { authorization: `Bearer ${token}` } });
    expect(item.status).toBe(400);
  });

  test('the ack service: ?after given twice is refused with 400 before the upgrade', async () => {
    await expect(openSocket('?after=1&after=2')).rejects.toMatchObject({ status: 400 });
  });
});
