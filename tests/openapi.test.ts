/**
 * `docs/openapi.yaml` against the running stack: real responses of the gateway and the read API
 * (status, declared headers, content type, body) are validated with ajv (JSON Schema 2020-12, the
 * dialect of OpenAPI 3.1), and every documented operation must have been exercised.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import sharpImport from 'sharp';
import { parse } from 'yaml';
import { request, type JsonResponse } from './helpers/http';
import { type AttachmentStack, startAttachmentStack } from './helpers/attachments';
import { TestSocket } from './helpers/ws-client';

type Obj = Record<string, any>;
const doc = parse(readFileSync(path.join(__dirname, '..', 'docs', 'openapi.yaml'), 'utf8')) as Obj;
// validateFormats off: `format` stays an annotation, as OpenAPI 3.1 allows (no ajv-formats needed).
const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
ajv.addSchema(doc, 'oas');

const METHODS = ['get', 'put', 'patch', 'delete', 'post'];
const operations = Object.entries(doc.paths as Obj).flatMap(([template, item]) =>
  METHODS.filter((m) => item[m]).map((m) => ({
    template,
    method: m,
    regex: new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`),
  })),
);
const exercised = new Set<string>();

const pointer = (...parts: string[]) => parts.map((p) => encodeURIComponent(p.replace(/~/g, '~0').replace(/\//g, '~1'))).join('/');

/** Follows a local `$ref` (responses and headers are not schemas, so ajv does not resolve them). */
function deref(node: Obj, at: string): { node: Obj; at: string } {
  if (typeof node.$ref !== 'string') return { node, at };
  const parts = (node.$ref as string).slice(2).split('/');
  return { node: parts.reduce((n: Obj, p) => n[p.replace(/~1/g, '/').replace(/~0/g, '~')], doc), at: pointer(...parts) };
}

function validate(schemaAt: string, value: unknown, what: string): void {
  const check = ajv.getSchema(`oas#/${schemaAt}`) ?? ajv.compile({ $ref: `oas#/${schemaAt}` });
  if (!check(value)) throw new Error(`${what} does not match ${schemaAt}: ${ajv.errorsText(check.errors)}\n${JSON.stringify(value)}`);
}

/** Checks one real response against the document. */
function conforms(method: string, url: string, res: JsonResponse): void {
  const urlPath = new URL(url).pathname;
  const op = operations.find((o) => o.method === method.toLowerCase() && o.regex.test(urlPath));
  if (!op) throw new Error(`${method} ${urlPath} is not documented`);
  exercised.add(`${op.method} ${op.template}`);
  const opAt = pointer('paths', op.template, op.method);
  const declared = doc.paths[op.template][op.method].responses[String(res.status)];
  if (!declared) throw new Error(`${method} ${urlPath} answered ${res.status}, not documented (${res.text})`);
  const { node: response, at } = deref(declared, `${opAt}/responses/${res.status}`);

  for (const [name, h] of Object.entries((response.headers ?? {}) as Obj)) {
    const { node: header, at: hAt } = deref(h, `${at}/headers/${pointer(name)}`);
    const value = res.headers.get(name);
    if (value === null) {
      if (header.required) throw new Error(`${method} ${urlPath} ${res.status}: header ${name} missing`);
      continue;
    }
    validate(`${hAt}/schema`, value, `header ${name}`);
  }

  const content = response.content as Obj | undefined;
  if (!content) {
    expect(res.text).toBe('');
    return;
  }
  const type = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
  if (!content[type]) throw new Error(`${method} ${urlPath} ${res.status}: content type ${type} not documented`);
  validate(`${at}/content/${pointer(type)}/schema`, res.body, `${method} ${urlPath} ${res.status} body`);
}

let stack: AttachmentStack;
let token: string;
let other: string;
let socket: TestSocket;

beforeAll(async () => {
  stack = await startAttachmentStack('openapi', { quotaBytes: 3 * 1024 * 1024 });
  await stack.startWorker();
  token = await stack.token({ tenant: 'acme', sub: 'alice' });
  other = await stack.token({ tenant: 'globex', sub: 'bob' });
  socket = await TestSocket.open(`${stack.ackUrl}/v1/acks`, { Authorization: `Bearer ${token}` });
});

afterAll(async () => {
  await socket?.close();
  await stack?.close();
});

async function call(base: 'gateway' | 'read', method: string, p: string, init: { token?: string; body?: string; headers?: Record<string, string> } = {}) {
  const url = `${base === 'gateway' ? stack.gatewayUrl : stack.readUrl}${p}`;
  const res = await request(url, { method, ...(init.token ? { token: init.token } : {}), ...(init.body !== undefined ? { body: init.body } : {}), headers: init.headers ?? {} });
  conforms(method, url, res);
  return res;
}

const JSON_TYPE = { 'content-type': 'application/json' };

test('gateway writes answer as documented: 202 with Location, and problem+json errors', async () => {
  const put = await call('gateway', 'PUT', '/v1/collections/docs/items/a', { token, body: '{"title":"a"}', headers: JSON_TYPE });
  expect(put.status).toBe(202);
  await socket.finalAck(put.body.requestId);
  const patch = await call('gateway', 'PATCH', '/v1/collections/docs/items/a', { token, body: '{"done":true}', headers: { 'content-type': 'application/merge-patch+json' } });
  expect(patch.status).toBe(202);
  await socket.finalAck(patch.body.requestId);
  const stale = await call('gateway', 'PUT', '/v1/collections/docs/items/a', { token, body: '{}', headers: { ...JSON_TYPE, 'if-match': '"1"' } });
  expect(stale.status).toBe(202);
  expect((await socket.finalAck(stale.body.requestId)).stage).toBe('rejected');
  await call('gateway', 'PUT', '/v1/collections/docs/items/b', { token, body: '{"title":"b"}', headers: JSON_TYPE }).then((r) => socket.finalAck(r.body.requestId));
  const del = await call('gateway', 'DELETE', '/v1/collections/docs/items/b', { token });
  expect(del.status).toBe(202);
  await socket.finalAck(del.body.requestId);

  expect((await call('gateway', 'PUT', '/v1/collections/docs/items/a', { token, body: '{nope', headers: JSON_TYPE })).status).toBe(400);
  expect((await call('gateway', 'PATCH', '/v1/collections/docs/items/a', { token, body: '[1]', headers: JSON_TYPE })).status).toBe(400);
  expect((await call('gateway', 'PUT', '/v1/collections/docs/items/a', { body: '{}', headers: JSON_TYPE })).status).toBe(401);
  expect((await call('gateway', 'PUT', '/v1/collections/docs/items/a', { token, body: 'x', headers: { 'content-type': 'text/plain' } })).status).toBe(415);
  const big = JSON.stringify({ blob: 'x'.repeat(70 * 1024) });
  expect((await call('gateway', 'PUT', '/v1/collections/docs/items/a', { token, body: big, headers: JSON_TYPE })).status).toBe(413);
  expect((await call('gateway', 'DELETE', '/v1/collections/docs/items/a', { token, headers: { 'if-match': 'nope' } })).status).toBe(400);
  expect((await call('gateway', 'GET', '/healthz')).status).toBe(200);

  // request status, committed and rejected
  expect((await call('read', 'GET', `/v1/requests/${patch.body.requestId}`, { token })).body.status).toBe('committed');
  expect((await call('read', 'GET', `/v1/requests/${stale.body.requestId}`, { token })).body.status).toBe('rejected');
});

test('read API answers as documented: items, 304, 409, listings, request status and their errors', async () => {
  const item = await call('read', 'GET', '/v1/collections/docs/items/a', { token });
  expect(item.status).toBe(200);
  expect((await call('read', 'GET', '/v1/collections/docs/items/a', { token, headers: { 'if-none-match': item.headers.get('etag')! } })).status).toBe(304);
  expect((await call('read', 'GET', '/v1/collections/docs/items/a?minVersion=2', { token })).status).toBe(200);
  expect((await call('read', 'GET', '/v1/collections/docs/items/b', { token })).status).toBe(404);
  expect((await call('read', 'GET', '/v1/collections/docs/items/a', { token: other })).status).toBe(404);
  expect((await call('read', 'GET', '/v1/collections/docs/items/a', {})).status).toBe(401);
  expect((await call('read', 'GET', '/v1/collections/docs/items/a?minVersion=x', { token })).status).toBe(400);

  const list = await call('read', 'GET', '/v1/collections/docs/items?limit=1', { token });
  expect(list.status).toBe(200);
  expect((await call('read', 'GET', '/v1/collections/docs/items?limit=500', { token })).status).toBe(400);
  expect((await call('read', 'GET', '/v1/collections/docs/items?cursor=zz', { token })).status).toBe(400);

  expect((await call('read', 'GET', '/v1/requests/unknown-request', { token })).status).toBe(404);
  expect((await call('read', 'GET', '/v1/requests/bad!id', { token })).status).toBe(400);
  expect((await call('read', 'GET', '/healthz')).status).toBe(200);
});

test('read-your-writes past the bound is a documented 409 with currentVersion', async () => {
  const res = await call('read', 'GET', '/v1/collections/docs/items/a', { token, headers: { 'x-min-version': '99' } });
  expect(res.status).toBe(409);
  expect(res.body.currentVersion).toBe(2);
}, 10_000);

test('attachments answer as documented: 201 upload, 302 download, 202 delete, and their errors', async () => {
  const sharp = ((sharpImport as unknown as { default?: typeof sharpImport }).default ?? sharpImport);
  const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#000' } }).png().toBuffer();
  await call('gateway', 'PUT', '/v1/collections/docs/items/att', { token, body: '{"t":1}', headers: JSON_TYPE });
  const base = '/v1/collections/docs/items/att/attachments';
  expect((await call('gateway', 'POST', '/v1/collections/docs/items/none/attachments', { token, body: '{"name":"a.png","contentType":"image/png","size":1}', headers: JSON_TYPE })).status).toBe(404);
  expect((await call('gateway', 'POST', base, { token, body: '{"name":"a.png","contentType":"text/html","size":1}', headers: JSON_TYPE })).status).toBe(400);
  let created = await call('gateway', 'POST', base, { token, body: JSON.stringify({ name: 'a.png', contentType: 'image/png', size: png.length }), headers: JSON_TYPE });
  for (let i = 0; created.status === 404 && i < 50; i++) {
    await new Promise((r) => setTimeout(r, 100)); // the PUT's projection is on its way
    created = await call('gateway', 'POST', base, { token, body: JSON.stringify({ name: 'a.png', contentType: 'image/png', size: png.length }), headers: JSON_TYPE });
  }
  expect(created.status).toBe(201);
  expect((await fetch(created.body.upload.url, { method: 'PUT', headers: created.body.upload.headers, body: new Uint8Array(png) })).status).toBe(200);
  expect((await socket.finalAck(created.body.requestId, 20_000)).stage).toBe('committed');
  const url = `${stack.gatewayUrl}${base}/${created.body.attachmentId}`;
  const raw = await fetch(url, { headers: { authorization: `Bearer ${token}` }, redirect: 'manual' });
  conforms('GET', url, { status: raw.status, headers: raw.headers, body: undefined, text: await raw.text() });
  expect(raw.status).toBe(302);
  expect((await call('gateway', 'GET', `${base}/${created.body.attachmentId}`, { token: other })).status).toBe(404);
  expect((await call('gateway', 'DELETE', `${base}/${created.body.attachmentId}`, { token })).status).toBe(202);
  // The tenant's quota (3 MiB here): the fourth pending 1 MiB upload is a documented 409.
  const big = JSON.stringify({ name: 'big.pdf', contentType: 'application/pdf', size: 1024 * 1024 });
  const statuses: number[] = [];
  for (let i = 0; i < 4; i++) statuses.push((await call('gateway', 'POST', base, { token, body: big, headers: JSON_TYPE })).status);
  expect(statuses).toEqual([201, 201, 201, 409]);
}, 30_000);

test('every documented operation was exercised against the running stack', () => {
  expect([...exercised].sort()).toEqual(operations.map((o) => `${o.method} ${o.template}`).sort());
});
