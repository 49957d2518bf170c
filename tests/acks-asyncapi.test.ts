/**
 * docs/asyncapi.yaml is the ack protocol: every message the real service sends (acks from the real
 * write path, reset, pong, error) validates against its message schema there.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv from 'ajv';
import { parse } from 'yaml';
import { createClient } from '../client';
import { startStack, type Stack } from './helpers/stack';
import { TestSocket } from './helpers/ws-client';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack('asyncapi');
});
afterAll(async () => {
  await stack?.close();
});

const doc = parse(readFileSync(join(__dirname, '..', 'docs', 'asyncapi.yaml'), 'utf8')) as {
  asyncapi: string;
  components: { messages: Record<string, { payload: object }> };
};

test('every message the service sends matches its AsyncAPI 3 message schema', async () => {
  expect(doc.asyncapi).toMatch(/^3\./);
  const ajv = new Ajv({ strict: false });
  const validators = Object.fromEntries(Object.entries(doc.components.messages).map(([k, m]) => [k, ajv.compile(m.payload)]));
  const token = await stack.token({ tenant: 'acme', sub: 'spec' });
  const s = await TestSocket.open(`${stack.ackUrl}/v1/acks`, { Authorization: `Bearer ${token}` });
  const c = createClient({ gatewayUrl: stack.gatewayUrl, readUrl: stack.readUrl, ackUrl: stack.ackUrl, token });
  await (await c.put('notes', 'spec1', { a: 1 }, { idempotencyKey: 'spec-k' })).committed;
  await (await c.put('notes', 'spec1', { a: 2 }, { ifMatch: 9 })).committed.catch(() => undefined);
  c.close();
  s.ws.send(JSON.stringify({ type: 'ping' }));
  s.ws.send(JSON.stringify({ type: 'nope' }));
  await s.waitFor((ms) => ms.some((m) => m.type === 'error'));
  const r = await TestSocket.open(`${stack.ackUrl}/v1/acks?after=1`, { Authorization: `Bearer ${token}` });
  await r.waitFor((ms) => ms.some((m) => m.type === 'reset'));
  const all = [...s.messages, ...r.messages];
  expect(new Set(all.map((m) => m.type === 'ack' ? `ack:${m.stage}` : m.type))).toEqual(
    new Set(['ack:queued', 'ack:committed', 'ack:rejected', 'pong', 'error', 'reset']),
  );
  for (const m of all) {
    const v = validators[m.type];
    expect(v).toBeDefined();
    if (!v!(m)) throw new Error(`${JSON.stringify(m)} does not match: ${ajv.errorsText(v!.errors)}`);
  }
  // The schemas are strict enough to fail: a stray field is refused.
  expect(validators.ack!({ ...all.find((m) => m.type === 'ack'), extra: 1 })).toBe(false);
  for (const x of [s, r]) await x.close();
});
