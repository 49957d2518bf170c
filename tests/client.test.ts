/**
 * The typed client SDK against the real stack: writes over REST, queued/committed over the ack
 * WebSocket, typed rejections, reconnect with resume, REST fallback after a reset, and acks that
 * beat the HTTP 202.
 */
import { WebSocket } from 'ws';
import { createClient, HttpProblemError, InvalidDocumentError, WriteRejectedError, type ClientEvent, type ClientOptions } from '../client';
import { RedisKeys } from '../core/keys';
import { startStack, type Stack } from './helpers/stack';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack('client');
});

afterAll(async () => {
  await stack?.close();
});

/** Records every socket the client opens, so a test can cut one like a network drop would. */
function tracked() {
  const sockets: WebSocket[] = [];
  let blocked = false;
  class TrackedWebSocket extends WebSocket {
    constructor(url: string) {
      // While blocked, connect to a port nobody listens on: the reconnect attempts fail for real.
      super(blocked ? 'ws://127.0.0.1:1/v1/acks' : url);
      sockets.push(this);
    }
  }
  return {
    WebSocket: TrackedWebSocket as unknown as ClientOptions['WebSocket'],
    sockets,
    block: (b: boolean) => (blocked = b),
    cut: () => sockets.at(-1)!.terminate(),
  };
}

async function client(sub: string, extra: Partial<ClientOptions> = {}) {
  const events: ClientEvent[] = [];
  const c = createClient({
    gatewayUrl: stack.gatewayUrl,
    readUrl: stack.readUrl,
    ackUrl: stack.ackUrl,
    token: await stack.token({ tenant: 'acme', sub }),
    reconnectMinMs: 20,
    reconnectMaxMs: 200,
    statusPollMs: 100,
    onEvent: (e) => events.push(e),
    ...extra,
  });
  return { c, events };
}

test('put, patch with If-Match and delete resolve queued then committed with the new versions', async () => {
  const { c } = await client('sdk-basic');
  const w1 = await c.put('notes', 'sdk1', { title: 'one' }, { idempotencyKey: 'k-sdk1' });
  expect(w1.accepted).toMatchObject({ requestId: w1.requestId, status: 'queued' });
  expect(await w1.queued).toMatchObject({ requestId: w1.requestId, cursor: expect.any(Number) });
  const c1 = await w1.committed;
  expect(c1).toMatchObject({ requestId: w1.requestId, version: 1 });
  expect(c1.ack).toMatchObject({ stage: 'committed', idempotencyKey: 'k-sdk1' });

  const w2 = await c.patch('notes', 'sdk1', { done: true }, { ifMatch: 1 });
  expect((await w2.committed).version).toBe(2);
  const w3 = await c.delete('notes', 'sdk1');
  expect((await w3.committed).version).toBe(3);
  c.close();
});

test('a stale If-Match rejects committed with a typed WriteRejectedError carrying the reason code', async () => {
  const { c } = await client('sdk-reject');
  await (await c.put('notes', 'sdk2', { a: 1 })).committed;
  const stale = await c.put('notes', 'sdk2', { a: 2 }, { ifMatch: 7 });
  await expect(stale.queued).resolves.toMatchObject({ requestId: stale.requestId });
  const err = await stale.committed.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(WriteRejectedError);
  expect(err).toMatchObject({ code: 'version_conflict', requestId: stale.requestId, ack: { stage: 'rejected' } });
  c.close();
});

test('a write the gateway refuses throws HttpProblemError with the problem; nothing is queued', async () => {
  const { c } = await client('sdk-problem');
  const err = await c.put('bad collection!', 'x', {}).then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(HttpProblemError);
  expect(err).toMatchObject({ status: 400, problem: { type: 'urn:ackstream:problem:bad-request' } });
  c.close();
});

test('a document that breaks the document rules throws InvalidDocumentError before anything is sent', async () => {
  const sent: string[] = [];
  const { c: spy } = await client('sdk-document', { fetch: ((url: string, init: RequestInit) => {
    sent.push(url);
    return fetch(url, init);
  }) as typeof fetch });
  for (const [data, rule, pointer] of [
    [{ n: NaN }, 'number-range', '/n'], // JSON.stringify would send null
    [{ a: [{ s: '\ud800' }] }, 'lone-surrogate', '/a/0/s'],
    [{ u: undefined }, 'not-json', '/u'], // JSON.stringify would drop the member
  ] as const) {
    const err = await spy.put('notes', 'sdk-doc', data as never).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidDocumentError);
    expect(err).toMatchObject({ rule, pointer });
  }
  expect(sent.filter((u) => u.includes('/items/'))).toEqual([]);
  // Prototype-named members are data: sent and committed.
  const ok = await spy.put('notes', 'sdk-doc', JSON.parse('{"__proto__":{"x":1},"constructor":1}') as never);
  await expect(ok.committed).resolves.toMatchObject({ version: 1 });
  spy.close();
});

test('after the connection drops, the client reconnects with ?after=<cursor> and the missed acks arrive', async () => {
  const t = tracked();
  const { c, events } = await client('sdk-resume', { WebSocket: t.WebSocket });
  await (await c.put('notes', 'sdk3', { v: 0 })).committed; // gives the client a cursor
  t.block(true);
  t.cut();
  // Written while the client is disconnected: the acks go to the history only.
  const ws = await Promise.all([0, 1, 2].map((i) => c.put('notes', `sdk3-${i}`, { i })));
  for (const w of ws) await waitFor(async () => (await c.requestStatus(w.requestId))?.status === 'committed');
  t.block(false);
  const versions = await Promise.all(ws.map(async (w) => (await w.committed).version));
  expect(versions).toEqual([1, 1, 1]);
  const opens = events.filter((e): e is Extract<ClientEvent, { type: 'open' }> => e.type === 'open');
  expect(opens.at(-1)!.after).toEqual(expect.any(Number));
  expect(events.some((e) => e.type === 'reset')).toBe(false);
  c.close();
});

test('when the server answers reset (history lost), pending writes are settled from GET /v1/requests/{id}', async () => {
  const t = tracked();
  const { c, events } = await client('sdk-reset', { WebSocket: t.WebSocket });
  await (await c.put('notes', 'sdk4', { v: 0 })).committed;
  t.block(true);
  t.cut();
  const ok = await c.put('notes', 'sdk4', { v: 1 }, { ifMatch: 1 });
  const bad = await c.put('notes', 'sdk4', { v: 2 }, { ifMatch: 1 });
  for (const w of [ok, bad]) await waitFor(async () => (await c.requestStatus(w.requestId))?.status !== 'queued');
  // The status is readable before the final ack is appended: wait for both finals in the ack log too.
  const ackKeys = new RedisKeys(stack.redisPrefix);
  for (const w of [ok, bad]) await waitFor(async () => (await stack.redis.exists(ackKeys.ackFinal('acme', 'sdk-reset', w.requestId))) === 1);
  const keys = await stack.redis.keys(`${stack.redisPrefix}ack*{acme:sdk-reset}*`);
  await stack.redis.del(...keys); // the ack history is lost
  t.block(false);
  expect(await ok.committed).toMatchObject({ version: 2 });
  expect(await bad.committed.catch((e: unknown) => e)).toMatchObject({ code: 'version_conflict' });
  expect(events).toContainEqual({ type: 'reset', reason: 'lost', detail: expect.any(String), after: expect.any(Number) });
  c.close();
});

test('acks that arrive before the HTTP 202 are kept for the write and settle it', async () => {
  const seen: string[] = [];
  // The 202 is held back (a slow network on the HTTP path) until its committed ack has arrived.
  const slowFetch: typeof fetch = async (input, init) => {
    const res = await fetch(input, init);
    if (res.status !== 202) return res;
    const body = (await res.json()) as { requestId: string };
    await waitFor(async () => (await stack.redis.exists(`${stack.redisPrefix}ackfinal:{acme:sdk-early}:${body.requestId}`)) === 1);
    await new Promise((r) => setTimeout(r, 100));
    seen.push('202');
    return new Response(JSON.stringify(body), { status: 202, headers: res.headers });
  };
  const { c } = await client('sdk-early', { fetch: slowFetch });
  const w = await c.put('notes', 'sdk5', { v: 1 });
  expect(seen).toEqual(['202']);
  await expect(w.queued).resolves.toMatchObject({ cursor: expect.any(Number) });
  await expect(w.committed).resolves.toMatchObject({ version: 1 });
  c.close();
});

test('close() rejects writes still waiting with ClientClosedError', async () => {
  const t = tracked();
  const { c } = await client('sdk-close', { WebSocket: t.WebSocket });
  await c.connect();
  t.block(true);
  t.cut();
  const w = await c.put('notes', 'sdk6', { v: 1 });
  c.close();
  await expect(w.committed).rejects.toMatchObject({ name: 'ClientClosedError', requestId: w.requestId });
  await expect(c.put('notes', 'sdk6', { v: 2 })).rejects.toMatchObject({ name: 'ClientClosedError' });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 25));
  }
}
