/**
 * The listing consistency contract (docs/openapi.yaml, listItems): a `committed` ack means the
 * write is readable by id; a listing includes it when asked with `consistentWith=<the acks'
 * consistencyTokens>` — after a bounded wait for the projection consumer, else 409.
 *
 * The stack runs as under load: the commit consumer's fast path skips the durable copy
 * (DURABLE_INLINE_BUDGET_MS=0, as it does above DURABLE_INLINE_MAX_RATE), and the projection
 * consumer, a process of its own, polls every 300 ms, so listings trail the acks.
 */
import { loadConfig } from '../core/config';
import type { WriteAccepted } from '../core/contracts';
import { request } from './helpers/http';
import { ProcessorsConfig, startProcessors } from '../processors/main';
import { startProcessorsWith } from './helpers/processors';
import { startStack, type Stack } from './helpers/stack';
import { TestSocket } from './helpers/ws-client';

jest.setTimeout(120_000);

const WAIT_MS = 3000;
let stack: Stack;
let token: string;
let socket: TestSocket;

/** The projection consumer as a service of its own ('processors' is the commit consumer). */
const startProjections = async () => {
  stack.services.set('projections', await startProcessors(loadConfig(ProcessorsConfig, { ...stack.env, CONSUMERS: 'projection', POLL_INTERVAL_MS: '300' })));
};

beforeAll(async () => {
  stack = await startStack('listing', { services: ['read-model', 'ack-service', 'gateway'], env: { READ_MIN_VERSION_WAIT_MS: String(WAIT_MS) } });
  await startProcessorsWith(stack, {}, { CONSUMERS: 'commit', DURABLE_INLINE_BUDGET_MS: '0' });
  await startProjections();
  token = await stack.token({ tenant: 'acme', sub: 'alice' });
  socket = await TestSocket.open(`${stack.ackUrl}/v1/acks`, { Authorization: `Bearer ${token}` });
});

afterAll(async () => {
  await socket?.close();
  await stack?.close();
});

async function put(collection: string, id: string): Promise<WriteAccepted> {
  const res = await request(`${stack.gatewayUrl}/v1/collections/${collection}/items/${id}`, {
    method: 'PUT', token, body: JSON.stringify({ n: id }), headers: { 'content-type': 'application/json' },
  });
  expect(res.status).toBe(202);
  return res.body as WriteAccepted;
}

/** Every page of a listing, `limit` items at a time, each page asked with the same tokens. */
async function listAll(collection: string, consistentWith: string, limit = 10): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const q = new URLSearchParams({ limit: String(limit), consistentWith, ...(cursor ? { cursor } : {}) });
    const res = await request(`${stack.readUrl}/v1/collections/${collection}/items?${q}`, { token });
    expect(res.status).toBe(200);
    ids.push(...(res.body.items as Array<{ id: string }>).map((i) => i.id));
    cursor = res.body.nextCursor as string | null;
  } while (cursor);
  return ids;
}

test('after bursts of 30 parallel PUTs, each committed, paging with limit=10 and their consistency tokens lists every item', async () => {
  const written: string[] = [];
  for (let burst = 0; burst < 4; burst++) {
    const ids = Array.from({ length: 30 }, (_, i) => `b${burst}-${String(i).padStart(2, '0')}`);
    const accepted = await Promise.all(ids.map((id) => put('burst', id)));
    const acks = await Promise.all(accepted.map((a) => socket.finalAck(a.requestId, 20_000)));
    for (const [i, ack] of acks.entries()) {
      expect(ack).toMatchObject({ stage: 'committed', consistencyToken: `${accepted[i]!.shardId}:${accepted[i]!.sequenceNumber}` });
    }
    written.push(...ids);
    const listed = await listAll('burst', acks.map((a) => a.consistencyToken as string).join(','));
    expect(listed.length).toBe(written.length);
    expect(new Set(listed)).toEqual(new Set(written));
  }
});

test('a token the projection consumer has not reached within the bound is a 409; once it has, the listing includes the write', async () => {
  await stack.stopService('projections');
  const accepted = await put('stalled', 's1');
  const ack = await socket.finalAck(accepted.requestId);
  expect(ack.stage).toBe('committed');
  // Readable by id at once (the commit consumer's fast path) …
  const item = await request(`${stack.readUrl}/v1/collections/stalled/items/s1?minVersion=1`, { token });
  expect(item.status).toBe(200);
  // … but the listing cannot include it while nothing projects.
  const started = Date.now();
  const stalled = await request(`${stack.readUrl}/v1/collections/stalled/items?consistentWith=${ack.consistencyToken as string}`, { token });
  expect(stalled.status).toBe(409);
  expect(stalled.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(stalled.body).toMatchObject({ status: 409, detail: expect.stringContaining(`within ${WAIT_MS} ms`) });
  expect(Date.now() - started).toBeGreaterThanOrEqual(WAIT_MS - 50);
  expect(Date.now() - started).toBeLessThan(WAIT_MS + 2000);

  await startProjections();
  const res = await request(`${stack.readUrl}/v1/collections/stalled/items?consistentWith=${accepted.shardId}:${accepted.sequenceNumber}`, { token });
  expect(res.status).toBe(200);
  expect(res.body.items.map((i: { id: string }) => i.id)).toEqual(['s1']);
});

test('a malformed consistentWith is a 400 that names the parameter', async () => {
  for (const bad of ['nope', 'shardId-000000000000:12x', `${'shardId-0:1,'.repeat(65)}shardId-0:1`]) {
    const res = await request(`${stack.readUrl}/v1/collections/burst/items?consistentWith=${encodeURIComponent(bad)}`, { token });
    expect(res.status).toBe(400);
    expect(res.body.detail).toMatch(/^Invalid query parameter "consistentWith"/);
  }
});
