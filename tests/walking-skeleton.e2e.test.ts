/**
 * One item's life through the whole system: PUT, PATCH, DELETE over REST; `queued` then
 * `committed` acks over the WebSocket; each version readable; PostgreSQL, DynamoDB and Redis
 * holding what they should.
 */
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { request } from './helpers/http';
import { startStack, type Stack } from './helpers/stack';
import { TestSocket } from './helpers/ws-client';

let stack: Stack;
let token: string;
let socket: TestSocket;

beforeAll(async () => {
  stack = await startStack('skeleton');
  token = await stack.token({ tenant: 'acme', sub: 'alice' });
  socket = await TestSocket.open(`${stack.ackUrl}/v1/acks`, { Authorization: `Bearer ${token}` });
});

afterAll(async () => {
  await socket?.close();
  await stack?.close();
});

const itemUrl = () => `${stack.gatewayUrl}/v1/collections/notes/items/n1`;

async function write(method: 'PUT' | 'PATCH' | 'DELETE', body?: unknown, contentType = 'application/json') {
  const res = await request(itemUrl(), {
    method,
    token,
    ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': contentType } } : {}),
  });
  expect(res.status).toBe(202);
  expect(res.body).toEqual({
    requestId: expect.any(String),
    status: 'queued',
    shardId: expect.stringMatching(/^shardId-/),
    sequenceNumber: expect.stringMatching(/^\d+$/),
  });
  expect(res.headers.get('location')).toBe(`/v1/requests/${res.body.requestId}`);
  return res.body.requestId as string;
}

test('PUT, PATCH and DELETE of one item each get queued then committed acks, in order, and every store agrees', async () => {
  const put = await write('PUT', { title: 'hello', done: false });
  const putAck = await socket.finalAck(put);
  expect(putAck).toMatchObject({ type: 'ack', stage: 'committed', requestId: put, collection: 'notes', id: 'n1', version: 1 });

  const v1 = await request(`${stack.readUrl}/v1/collections/notes/items/n1`, { token });
  expect(v1.status).toBe(200);
  expect(v1.headers.get('etag')).toBe('"1"');
  expect(v1.body).toEqual({ collection: 'notes', id: 'n1', version: 1, updatedAt: expect.any(String), data: { title: 'hello', done: false } });

  const patch = await write('PATCH', { done: true }, 'application/merge-patch+json');
  expect(await socket.finalAck(patch)).toMatchObject({ stage: 'committed', version: 2 });
  const v2 = await request(`${stack.readUrl}/v1/collections/notes/items/n1`, { token });
  expect(v2.body).toMatchObject({ version: 2, data: { title: 'hello', done: true } });

  const del = await write('DELETE');
  expect(await socket.finalAck(del)).toMatchObject({ stage: 'committed', version: 3 });
  const gone = await request(`${stack.readUrl}/v1/collections/notes/items/n1`, { token });
  expect(gone.status).toBe(404);
  expect(gone.headers.get('content-type')).toMatch(/^application\/problem\+json/);

  // Acks: per request queued then committed; cursors only grow.
  const acks = socket.acks();
  expect(acks.map((a) => [a.requestId, a.stage])).toEqual([
    [put, 'queued'], [put, 'committed'],
    [patch, 'queued'], [patch, 'committed'],
    [del, 'queued'], [del, 'committed'],
  ]);
  const cursors = acks.map((a) => a.cursor as number);
  expect([...cursors].sort((a, b) => a - b)).toEqual(cursors);
  expect(new Set(cursors).size).toBe(cursors.length);

  // Request status from the read API.
  const status = await request(`${stack.readUrl}/v1/requests/${patch}`, { token });
  expect(status.status).toBe(200);
  expect(status.body).toMatchObject({ requestId: patch, status: 'committed', version: 2 });

  // PostgreSQL: the event log and the current state.
  const events = await stack.pg.query('SELECT type, version, request_id, principal, tenant FROM events ORDER BY position');
  expect(events.rows).toEqual([
    { type: 'ItemPut', version: 1, request_id: put, principal: 'alice', tenant: 'acme' },
    { type: 'ItemPatched', version: 2, request_id: patch, principal: 'alice', tenant: 'acme' },
    { type: 'ItemDeleted', version: 3, request_id: del, principal: 'alice', tenant: 'acme' },
  ]);
  const state = await stack.pg.query("SELECT version, deleted FROM items WHERE tenant = 'acme' AND collection = 'notes' AND item_id = 'n1'");
  expect(state.rows).toEqual([{ version: 3, deleted: true }]);

  // DynamoDB (durable read model, written by the projection consumer just after) and Redis (hot copy) hold version 3 as a tombstone.
  const durable = await durableItemAt(3);
  expect(durable).toMatchObject({ version: 3, deleted: true });
  const hot = await stack.redis.hgetall(`${stack.redisPrefix}item:acme:notes:n1`);
  expect(hot).toEqual({ v: '3', d: '' });
});

test('the read model holds each projected version in DynamoDB and Redis', async () => {
  const put = await write('PUT', { title: 'again' });
  const ack = await socket.finalAck(put);
  expect(ack.version).toBe(4); // versions keep counting across a delete
  // Redis (the hot copy) is written before the committed ack; DynamoDB by the projection consumer, just after.
  const hot = await stack.redis.hget(`${stack.redisPrefix}item:acme:notes:n1`, 'd');
  expect(JSON.parse(hot!)).toMatchObject({ version: 4, data: { title: 'again' } });
  // Listings follow the projection consumer: the ack's consistency token makes the listing wait for this write.
  expect(typeof ack.consistencyToken).toBe('string');
  const list = await request(`${stack.readUrl}/v1/collections/notes/items?limit=10&consistentWith=${encodeURIComponent(String(ack.consistencyToken))}`, { token });
  expect(list.status).toBe(200);
  expect(list.body).toEqual({ items: [expect.objectContaining({ id: 'n1', version: 4 })], nextCursor: null });
  const durable = await durableItemAt(4);
  expect(JSON.parse(durable!.doc as string)).toMatchObject({ version: 4, data: { title: 'again' } });
});

/** The durable copy of acme/notes/n1 once it holds `version` (the projection consumer writes it just after the ack), else as it is after 10 s. */
async function durableItemAt(version: number): Promise<Record<string, unknown> | undefined> {
  const get = async () => (await stack.doc.send(new GetCommand({ TableName: stack.env.ITEMS_TABLE, Key: { pk: 'acme#notes', id: 'n1' } }))).Item;
  const deadline = Date.now() + 10_000;
  let item = await get();
  while (Number(item?.version ?? 0) < version && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    item = await get();
  }
  return item;
}
