/**
 * The gateway accepts only valid, authenticated, authorised writes. Every refusal is a precise
 * problem+json, and nothing refused ever reaches the stream (read back with GetRecords).
 */
import { SignJWT } from 'jose';
import { createKinesis } from '../core/aws';
import { type JsonResponse, request } from './helpers/http';
import { readStream } from './helpers/kinesis-records';
import { startStack, type Stack } from './helpers/stack';

let stack: Stack;
let token: string;

beforeAll(async () => {
  stack = await startStack('gw_validation', { services: ['gateway'], env: { MAX_BODY_BYTES: '1024' } });
  token = await stack.token({ tenant: 'acme', sub: 'alice' });
});
afterAll(async () => {
  await stack?.close();
});

const url = (collection = 'notes', id = 'n1') => `${stack.gatewayUrl}/v1/collections/${collection}/items/${id}`;
const secret = () => new TextEncoder().encode(stack.env.AUTH_SECRET!);
const now = () => Math.floor(Date.now() / 1000);

async function expectProblem(res: JsonResponse, status: number, detail: RegExp) {
  expect({ status: res.status, detail: res.body?.detail }).toEqual({ status, detail: expect.stringMatching(detail) });
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({ type: expect.stringMatching(/^urn:ackstream:problem:/), title: expect.any(String), status });
}

async function streamRecords() {
  const kinesis = createKinesis({ region: 'us-east-1', endpoint: stack.env.KINESIS_ENDPOINT });
  try {
    return await readStream(kinesis, stack.env.KINESIS_STREAM!);
  } finally {
    kinesis.destroy();
  }
}

describe('validation', () => {
  test('rejects a path parameter that is not a valid name with 400 naming the parameter', async () => {
    const res = await request(url('no%20spaces'), { method: 'PUT', token, json: { a: 1 } });
    await expectProblem(res, 400, /path parameter collection: must match/);
  });

  test('rejects a body that is not JSON with 415 when the Content-Type is wrong or missing', async () => {
    await expectProblem(
      await request(url(), { method: 'PUT', token, body: 'a=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
      415, /Content-Type must be application\/json for PUT, not application\/x-www-form-urlencoded/,
    );
    await expectProblem(await request(url(), { method: 'PUT', token, body: new Blob(['{}']) }), 415, /no Content-Type/);
    await expectProblem(
      await request(url(), { method: 'PUT', token, body: '{}', headers: { 'content-type': 'application/json; charset=latin1' } }),
      415, /charset latin1 is not supported/,
    );
    await expectProblem(
      await request(url(), { method: 'PATCH', token, body: '{}', headers: { 'content-type': 'text/plain' } }),
      415, /application\/merge-patch\+json or application\/json for PATCH/,
    );
  });

  test('rejects malformed JSON with 400 giving the parse position', async () => {
    const res = await request(url(), { method: 'PUT', token, body: '{"title": "x",\n "done": }', headers: { 'content-type': 'application/json' } });
    await expectProblem(res, 400, /not valid JSON: unexpected "}" at position 24 \(line 2, column 10\)/);
    expect(res.body).toMatchObject({ position: 24, line: 2, column: 10 });
    const truncated = await request(url(), { method: 'PUT', token, body: '{"a": [1, 2', headers: { 'content-type': 'application/json' } });
    await expectProblem(truncated, 400, /unexpected the end of the body at position 11/);
  });

  test('rejects a JSON body that is not an object, or empty, with 400', async () => {
    await expectProblem(await request(url(), { method: 'PUT', token, json: [1, 2] }), 400, /must be a JSON object, not an array/);
    await expectProblem(await request(url(), { method: 'PUT', token, json: 'text' }), 400, /must be a JSON object, not a string/);
    await expectProblem(await request(url(), { method: 'PUT', token, body: 'null', headers: { 'content-type': 'application/json' } }), 400, /not null/);
    await expectProblem(await request(url(), { method: 'PUT', token, body: '', headers: { 'content-type': 'application/json' } }), 400, /body is empty/);
  });

  test('rejects a body above the configured limit with 413 naming the limit', async () => {
    const res = await request(url(), { method: 'PUT', token, json: { text: 'x'.repeat(2000) } });
    await expectProblem(res, 413, /exceeds the limit of 1024 bytes/);
  });

  test('rejects malformed concurrency and idempotency headers with 400 naming the header', async () => {
    await expectProblem(await request(url(), { method: 'PUT', token, json: {}, headers: { 'if-match': '3' } }), 400, /header If-Match: must be a quoted version/);
    await expectProblem(await request(url(), { method: 'PUT', token, json: {}, headers: { 'if-none-match': '"3"' } }), 400, /header If-None-Match: must be \*/);
    await expectProblem(await request(url(), { method: 'PUT', token, json: {}, headers: { 'idempotency-key': 'a b' } }), 400, /header Idempotency-Key/);
    await expectProblem(
      await request(url(), { method: 'PATCH', token, json: {}, headers: { 'if-none-match': '*', 'content-type': 'application/merge-patch+json' } }),
      400, /only meaningful on PUT/,
    );
  });
});

describe('auth', () => {
  test('rejects a write without a token, or with a malformed header, with 401 and WWW-Authenticate', async () => {
    const none = await request(url(), { method: 'PUT', json: {} });
    await expectProblem(none, 401, /Missing Authorization header/);
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    await expectProblem(await request(url(), { method: 'PUT', json: {}, headers: { authorization: 'Basic abc' } }), 401, /Malformed Authorization/);
  });

  test('rejects an unsigned token (alg none) with 401', async () => {
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'alice', tenant: 'acme', exp: now() + 600 })}.`;
    await expectProblem(await request(url(), { method: 'PUT', token: unsigned, json: {} }), 401, /malformed|not allowed/);
  });

  test('rejects a token signed with another key or another algorithm with 401', async () => {
    const wrongKey = await new SignJWT({ tenant: 'acme' }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime(now() + 600)
      .sign(new TextEncoder().encode('another-secret-another-secret-another-secret'));
    await expectProblem(await request(url(), { method: 'PUT', token: wrongKey, json: {} }), 401, /signature is invalid/);
    const hs512 = await new SignJWT({ tenant: 'acme' }).setProtectedHeader({ alg: 'HS512' }).setSubject('alice').setExpirationTime(now() + 600)
      .sign(secret());
    await expectProblem(await request(url(), { method: 'PUT', token: hs512, json: {} }), 401, /algorithm that is not allowed/);
  });

  test('rejects an expired token, a token not valid yet, and tokens missing claims with 401', async () => {
    const sign = (claims: Record<string, unknown>, f: (j: SignJWT) => SignJWT = (j) => j) =>
      f(new SignJWT(claims).setProtectedHeader({ alg: 'HS256' })).sign(secret());
    const expired = await sign({ tenant: 'acme' }, (j) => j.setSubject('alice').setExpirationTime(now() - 60));
    await expectProblem(await request(url(), { method: 'PUT', token: expired, json: {} }), 401, /expired/);
    const future = await sign({ tenant: 'acme' }, (j) => j.setSubject('alice').setExpirationTime(now() + 600).setNotBefore(now() + 300));
    await expectProblem(await request(url(), { method: 'PUT', token: future, json: {} }), 401, /"nbf" claim/);
    const noExp = await sign({ tenant: 'acme' }, (j) => j.setSubject('alice'));
    await expectProblem(await request(url(), { method: 'PUT', token: noExp, json: {} }), 401, /"exp" claim/);
    const noTenant = await sign({}, (j) => j.setSubject('alice').setExpirationTime(now() + 600));
    await expectProblem(await request(url(), { method: 'PUT', token: noTenant, json: {} }), 401, /no valid "tenant" claim/);
    const noSub = await sign({ tenant: 'acme' }, (j) => j.setExpirationTime(now() + 600));
    await expectProblem(await request(url(), { method: 'PUT', token: noSub, json: {} }), 401, /"sub" claim/);
  });

  test('rejects a write with 403 when the token carries roles without writer or admin', async () => {
    const reader = await stack.token({ tenant: 'acme', sub: 'rita', roles: ['reader'] });
    await expectProblem(await request(url(), { method: 'PUT', token: reader, json: {} }), 403, /roles \(reader\) do not allow writes/);
    await expectProblem(await request(url(), { method: 'DELETE', token: reader }), 403, /do not allow writes/);
  });
});

test('nothing refused reached the stream; the valid writes did (tokens without roles, and with writer, may write)', async () => {
  expect(await streamRecords()).toEqual([]);
  const plain = await request(url(), { method: 'PUT', token, json: { title: 'ok' } });
  expect(plain.status).toBe(202);
  const writer = await stack.token({ tenant: 'acme', sub: 'wendy', roles: ['reader', 'writer'] });
  const byWriter = await request(url('notes', 'n2'), { method: 'PUT', token: writer, json: { title: 'ok' } });
  expect(byWriter.status).toBe(202);
  const records = await streamRecords();
  expect(records.map((r) => [r.command.requestId, r.partitionKey]).sort()).toEqual(
    [[plain.body.requestId, 'acme/notes/n1'], [byWriter.body.requestId, 'acme/notes/n2']].sort(),
  );
});
