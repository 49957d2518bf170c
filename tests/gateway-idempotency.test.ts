/**
 * Idempotency-Key: the same key with the same body from the same principal gets the same
 * requestId and becomes one record and one event — sequentially, racing from several
 * connections, and after the first one committed. A different body with the key is 422.
 */
import http from 'node:http';
import { createKinesis } from '../core/aws';
import { request } from './helpers/http';
import { readStream } from './helpers/kinesis-records';
import { startStack, type Stack } from './helpers/stack';
import { TestSocket } from './helpers/ws-client';

let stack: Stack;
let token: string;
let socket: TestSocket;

beforeAll(async () => {
  stack = await startStack('gw_idempotency');
  token = await stack.token({ tenant: 'acme', sub: 'alice' });
  socket = await TestSocket.open(`${stack.ackUrl}/v1/acks`, { Authorization: `Bearer ${token}` });
});
afterAll(async () => {
  await socket?.close();
  await stack?.close();
});

const url = (id: string) => `${stack.gatewayUrl}/v1/collections/notes/items/${id}`;
const put = (id: string, key: string, body: unknown, t = token) =>
  request(url(id), { method: 'PUT', token: t, json: body, headers: { 'idempotency-key': key } });

async function recordsWithKey(key: string) {
  const kinesis = createKinesis({ region: 'us-east-1', endpoint: stack.env.KINESIS_ENDPOINT });
  try {
    return (await readStream(kinesis, stack.env.KINESIS_STREAM!)).filter((r) => r.command.idempotencyKey === key);
  } finally {
    kinesis.destroy();
  }
}

test('a repeated write with the same Idempotency-Key and body gets the same answer, one record and one event, also after it committed', async () => {
  const first = await put('i1', 'key-seq', { title: 'once' });
  expect(first.status).toBe(202);
  const again = await put('i1', 'key-seq', { title: 'once' });
  expect(again.status).toBe(202);
  expect(again.body).toEqual(first.body);
  expect(again.headers.get('location')).toBe(`/v1/requests/${first.body.requestId}`);

  expect(await socket.finalAck(first.body.requestId)).toMatchObject({ stage: 'committed', version: 1, idempotencyKey: 'key-seq' });
  const afterCommit = await put('i1', 'key-seq', { title: 'once' });
  expect(afterCommit.body).toEqual(first.body);

  expect((await recordsWithKey('key-seq')).map((r) => r.command.requestId)).toEqual([first.body.requestId]);
  const events = await stack.pg.query("SELECT request_id, version FROM events WHERE item_id = 'i1'");
  expect(events.rows).toEqual([{ request_id: first.body.requestId, version: 1 }]);
});

test('the same Idempotency-Key with a different body is 422 and puts nothing', async () => {
  const first = await put('i2', 'key-diff', { title: 'a' });
  expect(first.status).toBe(202);
  const other = await put('i2', 'key-diff', { title: 'b' });
  expect(other.status).toBe(422);
  expect(other.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(other.body.detail).toMatch(/Idempotency-Key "key-diff" was already used with a different request/);
  const otherItem = await put('i3', 'key-diff', { title: 'a' });
  expect(otherItem.status).toBe(422);
  expect(await recordsWithKey('key-diff')).toHaveLength(1);
});

/** One request on its own new TCP connection (agent: false), so concurrent calls really race on the server. */
function putOnNewConnection(id: string, key: string, body: unknown): Promise<{ status: number; body: any }> {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(url(id), {
      method: 'PUT', agent: false,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'idempotency-key': key, 'content-length': Buffer.byteLength(data) },
    }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

test('racing requests with the same Idempotency-Key from several connections all get the one requestId, and one record is put', async () => {
  const answers = await Promise.all(Array.from({ length: 8 }, () => putOnNewConnection('race', 'key-race', { title: 'race' })));
  expect(answers.map((a) => a.status)).toEqual(Array(8).fill(202));
  expect(new Set(answers.map((a) => JSON.stringify(a.body))).size).toBe(1);
  const records = await recordsWithKey('key-race');
  expect(records.map((r) => r.command.requestId)).toEqual([answers[0]!.body.requestId]);
  await socket.finalAck(answers[0]!.body.requestId);
  const events = await stack.pg.query("SELECT count(*)::int AS n FROM events WHERE item_id = 'race'");
  expect(events.rows[0].n).toBe(1);
});

test('Idempotency-Keys are scoped per principal: another principal with the same key makes its own write', async () => {
  const bob = await stack.token({ tenant: 'acme', sub: 'bob' });
  const a = await put('i4', 'key-shared', { title: 'x' });
  const b = await put('i4', 'key-shared', { title: 'x' }, bob);
  expect([a.status, b.status]).toEqual([202, 202]);
  expect(b.body.requestId).not.toBe(a.body.requestId);
  expect(await recordsWithKey('key-shared')).toHaveLength(2);
});
