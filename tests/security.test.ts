/**
 * Security of the public contract, black-box against the services as child processes:
 * tenant isolation on every REST route and the ack stream, principal isolation on the ack stream,
 * bad tokens refused with 401 by every service, and no token or secret in any log line (services
 * run with LOG_LEVEL=debug and their whole output is searched).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { signToken } from '../core/auth';
import { request } from './helpers/http';
import { type ProcessStack, sleep, startProcessStack } from './helpers/process-stack';
import { TestSocket } from './helpers/ws-client';

jest.setTimeout(120_000);

let stack: ProcessStack;
const tokens: Record<string, string> = {};
const sockets: Record<string, TestSocket> = {};
let aliceRequest: string;

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

beforeAll(async () => {
  stack = await startProcessStack('security', { env: { LOG_LEVEL: 'debug' } });
  tokens.alice = await stack.token({ tenant: 'acme', sub: 'alice' });
  tokens.bob = await stack.token({ tenant: 'acme', sub: 'bob' });
  tokens.eve = await stack.token({ tenant: 'globex', sub: 'eve' });
  for (const who of ['alice', 'bob', 'eve']) {
    sockets[who] = await TestSocket.open(`${stack.ackUrl}/v1/acks`, { Authorization: `Bearer ${tokens[who]}` });
  }
  const put = await request(`${stack.gatewayUrl}/v1/collections/notes/items/shared`, { method: 'PUT', token: tokens.alice, json: { owner: 'alice', secret: 'acme-only' } });
  expect(put.status).toBe(202);
  aliceRequest = put.body.requestId;
  expect(await sockets.alice!.finalAck(aliceRequest)).toMatchObject({ stage: 'committed', version: 1 });
});

afterAll(async () => {
  for (const s of Object.values(sockets)) await s.close();
  await stack?.close();
});

const item = (base: string) => `${base}/v1/collections/notes/items/shared`;

describe('tenant isolation', () => {
  test('another tenant cannot read an item, list it, or read its request status (404, as if absent)', async () => {
    const got = await request(item(stack.readUrl), { token: tokens.eve });
    expect(got.status).toBe(404);
    expect(got.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(got.text).not.toContain('acme-only');
    const list = await request(`${stack.readUrl}/v1/collections/notes/items?limit=100`, { token: tokens.eve });
    expect(list.status).toBe(200);
    expect(list.body.items).toEqual([]);
    const status = await request(`${stack.readUrl}/v1/requests/${aliceRequest}`, { token: tokens.eve });
    expect(status.status).toBe(404);
    // The owner still reads it: the 404s above are isolation, not absence.
    expect((await request(item(stack.readUrl), { token: tokens.alice })).status).toBe(200);
  });

  test("another tenant's PATCH, DELETE and conditional PUT act on its own namespace and never touch the item", async () => {
    const patch = await request(item(stack.gatewayUrl), { method: 'PATCH', token: tokens.eve, json: { owner: 'eve' }, headers: { 'content-type': 'application/merge-patch+json' } });
    const del = await request(item(stack.gatewayUrl), { method: 'DELETE', token: tokens.eve });
    const put = await request(item(stack.gatewayUrl), { method: 'PUT', token: tokens.eve, json: { owner: 'eve' }, headers: { 'if-match': '"1"' } });
    expect([patch.status, del.status, put.status]).toEqual([202, 202, 202]);
    expect(await sockets.eve!.finalAck(patch.body.requestId)).toMatchObject({ stage: 'rejected', reason: { code: 'not_found' } });
    expect(await sockets.eve!.finalAck(del.body.requestId)).toMatchObject({ stage: 'rejected', reason: { code: 'not_found' } });
    expect(await sockets.eve!.finalAck(put.body.requestId)).toMatchObject({ stage: 'rejected', reason: { code: 'version_conflict' } });
    const still = await request(item(stack.readUrl), { token: tokens.alice });
    expect(still.body).toMatchObject({ version: 1, data: { owner: 'alice', secret: 'acme-only' } });
    const events = await stack.pg.query("SELECT tenant, principal FROM events WHERE collection = 'notes' AND item_id = 'shared'");
    expect(events.rows).toEqual([{ tenant: 'acme', principal: 'alice' }]);
  });

  test("the ack stream never carries another tenant's or another principal's acks, live or on resume", async () => {
    await sleep(300);
    const mine = (who: string) => sockets[who]!.acks().every((a) => (who === 'alice' ? true : a.requestId !== aliceRequest));
    expect(mine('bob')).toBe(true);
    expect(mine('eve')).toBe(true);
    expect(sockets.bob!.acks()).toEqual([]);
    expect(sockets.alice!.acks().map((a) => a.requestId)).toEqual([aliceRequest, aliceRequest]);
    // Resuming from the start, or from alice's cursor, shows only one's own history.
    const aliceCursor = sockets.alice!.acks().at(-1)!.cursor as number;
    for (const who of ['bob', 'eve']) {
      for (const after of [0, aliceCursor - 1]) {
        const s = await TestSocket.open(`${stack.ackUrl}/v1/acks?after=${after}`, { Authorization: `Bearer ${tokens[who]}` });
        await sleep(300);
        expect(s.acks().filter((a) => a.requestId === aliceRequest)).toEqual([]);
        await s.close();
      }
    }
  });
});

describe('bad tokens are refused with 401 by every service', () => {
  const now = () => Math.floor(Date.now() / 1000);
  const cases: Array<[string, () => Promise<string>]> = [
    ['expired', () => signToken(stack.secret, { tenant: 'acme', sub: 'alice', ttlSeconds: -60 })],
    ['not yet valid (nbf)', () => signToken(stack.secret, { tenant: 'acme', sub: 'alice', notBefore: now() + 3600 })],
    ['signed with the wrong key', () => signToken(randomBytes(32).toString('base64url'), { tenant: 'acme', sub: 'alice' })],
    ['forged (payload changed after signing)', async () => {
      const [h, , s] = tokens.eve!.split('.');
      return `${h}.${b64({ tenant: 'acme', sub: 'alice', exp: now() + 3600 })}.${s}`;
    }],
    ['alg: none', async () => `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ tenant: 'acme', sub: 'alice', exp: now() + 3600 })}.`],
    ['HS512 with the right key (algorithm not allowed)', async () => {
      const input = `${b64({ alg: 'HS512', typ: 'JWT' })}.${b64({ tenant: 'acme', sub: 'alice', exp: now() + 3600 })}`;
      return `${input}.${createHmac('sha512', stack.secret).update(input).digest('base64url')}`;
    }],
    ['without exp', async () => {
      const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ tenant: 'acme', sub: 'alice' })}`;
      return `${input}.${createHmac('sha256', stack.secret).update(input).digest('base64url')}`;
    }],
  ];

  test.each(cases)('a token %s', async (_name, make) => {
    const bad = await make();
    tokens[`bad ${_name}`] = bad;
    const answers = [
      await request(item(stack.gatewayUrl), { method: 'PUT', token: bad, json: { owner: 'mallory' } }),
      await request(item(stack.gatewayUrl), { method: 'DELETE', token: bad }),
      await request(item(stack.readUrl), { token: bad }),
      await request(`${stack.readUrl}/v1/collections/notes/items`, { token: bad }),
      await request(`${stack.readUrl}/v1/requests/${aliceRequest}`, { token: bad }),
    ];
    for (const res of answers) {
      expect(res.status).toBe(401);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(res.body).toMatchObject({ status: 401, type: expect.any(String), title: expect.any(String), detail: expect.any(String) });
      expect(res.text).not.toContain('acme-only');
    }
    await expect(TestSocket.open(`${stack.ackUrl}/v1/acks`, { Authorization: `Bearer ${bad}` })).rejects.toMatchObject({ status: 401 });
    await expect(TestSocket.open(`${stack.ackUrl}/v1/acks?access_token=${encodeURIComponent(bad)}`)).rejects.toMatchObject({ status: 401 });
    const events = await stack.pg.query("SELECT count(*)::int AS n FROM events WHERE principal <> 'alice' AND tenant = 'acme'");
    expect(events.rows[0].n).toBe(0);
  });
});

test('no service ever logs a token or the signing secret (LOG_LEVEL=debug)', async () => {
  // Use the query-string token path too, the one most likely to end up in an access log.
  const s = await TestSocket.open(`${stack.ackUrl}/v1/acks?access_token=${tokens.alice}`);
  await s.close();
  await request(`${stack.readUrl}/v1/nope?access_token=${tokens.alice}`, { token: tokens.alice });
  await sleep(500);
  const logs = Object.values(stack.services).map((svc) => svc.text()).join('\n');
  expect(logs.length).toBeGreaterThan(0);
  expect(logs).toContain('"level":"debug"'); // the services really logged at debug
  const secrets = [stack.secret, ...Object.values(tokens), ...Object.values(tokens).map((t) => t.split('.')[2]!).filter((sig) => sig.length > 10)];
  for (const secret of secrets) expect(logs.includes(secret)).toBe(false);
});
