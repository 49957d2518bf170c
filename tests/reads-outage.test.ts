/**
 * The read API when its stores fail, for real: a private redis-server this test kills and
 * restarts (never the shared one), and TCP proxies this test controls in front of Redis and the
 * DynamoDB emulator (cut = refused, black hole = accepted but never answered).
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { Redis } from 'ioredis';
import { loadConfig } from '../core/config';
import { RedisKeys } from '../core/keys';
import type { RunningService } from '../core/service';
import { ReadConfig, startReadModel } from '../read-model/main';
import { DynamoDurableStore } from '../core/read-store';
import { PrivateRedis, TcpProxy } from './helpers/faults';
import { request } from './helpers/http';
import { startStack, type Stack } from './helpers/stack';

let stack: Stack;
let redis: PrivateRedis;
let redisProxy: TcpProxy;
let dynamoProxy: TcpProxy;
let direct: RunningService; // reads Redis directly (killed and restarted)
let proxied: RunningService; // reads Redis through a proxy (black-holed)
let probe: Redis;
let token: string;
const dynamoCalls: string[] = [];
const PREFIX = 'outage:';
const keys = new RedisKeys(PREFIX);

const counting = (doc: DynamoDBDocumentClient) => {
  const send = doc.send.bind(doc) as (cmd: object) => Promise<unknown>;
  doc.send = ((cmd: object) => {
    dynamoCalls.push(cmd.constructor.name);
    return send(cmd);
  }) as typeof doc.send;
  return doc;
};

beforeAll(async () => {
  stack = await startStack('reads-outage', { services: [] });
  redis = await PrivateRedis.start();
  redisProxy = await TcpProxy.start(redis.port);
  dynamoProxy = await TcpProxy.start(Number(new URL(stack.emulators.dynamoEndpoint).port));
  const env = {
    ...stack.env,
    REDIS_PREFIX: PREFIX,
    DYNAMODB_ENDPOINT: dynamoProxy.url,
    READ_REDIS_TIMEOUT_MS: '100',
    READ_DYNAMODB_TIMEOUT_MS: '300',
    READ_BREAKER_OPEN_MS: '200',
  };
  direct = await startReadModel(loadConfig(ReadConfig, { ...env, REDIS_URL: redis.url }), { wrapDocumentClient: counting });
  proxied = await startReadModel(loadConfig(ReadConfig, { ...env, REDIS_URL: `redis://127.0.0.1:${redisProxy.port}` }));
  probe = new Redis(redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50, lazyConnect: true });
  probe.on('error', () => undefined);
  token = await stack.token({ tenant: 'acme', sub: 'alice' });
  const durable = new DynamoDurableStore(stack.doc, stack.env.ITEMS_TABLE!, stack.env.REQUESTS_TABLE!);
  for (const id of ['o1', 'o2']) {
    const doc = { collection: 'notes', id, version: 1, updatedAt: new Date().toISOString(), data: { id } };
    await durable.putItem({ tenant: 'acme', collection: 'notes', id, version: 1, updatedAt: doc.updatedAt, json: JSON.stringify(doc) });
  }
});

afterAll(async () => {
  probe?.disconnect();
  await direct?.close();
  await proxied?.close();
  await redisProxy?.close();
  await dynamoProxy?.close();
  await redis?.kill();
  await stack?.close();
});

const get = (svc: RunningService, id: string) => request(`${svc.url}/v1/collections/notes/items/${id}`, { token });
const gets = () => dynamoCalls.filter((c) => c === 'GetCommand').length;

async function timed<T>(f: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t = Date.now();
  const value = await f();
  return { value, ms: Date.now() - t };
}

async function eventually(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('Redis killed: reads go on from DynamoDB; Redis back: reads refill it and hit it again by themselves', async () => {
  expect((await get(direct, 'o1')).status).toBe(200); // miss → DynamoDB → refill
  const afterRefill = gets();
  expect((await get(direct, 'o1')).status).toBe(200);
  expect(gets()).toBe(afterRefill); // a hit

  await redis.kill();
  for (let i = 0; i < 10; i++) {
    const { value, ms } = await timed(() => get(direct, 'o1'));
    expect(value.status).toBe(200);
    expect(value.body).toMatchObject({ id: 'o1', version: 1 });
    expect(ms).toBeLessThan(1000);
  }
  expect(gets()).toBeGreaterThan(afterRefill); // served by DynamoDB

  await redis.start(); // empty: --save ''
  await probe.connect().catch(() => undefined);
  await eventually(async () => (await get(direct, 'o1')).status === 200 && (await probe.hget(keys.item('acme', 'notes', 'o1'), 'v')) === '1');
  const back = gets();
  for (let i = 0; i < 5; i++) expect((await get(direct, 'o1')).status).toBe(200);
  expect(gets()).toBe(back); // hits again
});

test('Redis hung (accepts, never answers): reads answer from DynamoDB within the Redis timeout', async () => {
  expect((await get(proxied, 'o2')).status).toBe(200);
  await redisProxy.blackhole();
  const times: number[] = [];
  for (let i = 0; i < 10; i++) {
    const { value, ms } = await timed(() => get(proxied, 'o2'));
    expect(value.status).toBe(200);
    times.push(ms);
  }
  expect(Math.max(...times)).toBeLessThan(800);
  await redisProxy.cut();
  await redisProxy.open();
});

test('DynamoDB down with Redis up: hot items are still served', async () => {
  expect((await get(direct, 'o1')).status).toBe(200);
  await dynamoProxy.cut();
  try {
    expect((await get(direct, 'o1')).status).toBe(200);
  } finally {
    await dynamoProxy.open();
  }
});

test('both down: 503 with Retry-After, quickly, never a hang; both back: 200 again', async () => {
  await redis.kill();
  await dynamoProxy.cut();
  for (let i = 0; i < 5; i++) {
    const { value, ms } = await timed(() => get(direct, 'o1'));
    expect(value.status).toBe(503);
    expect(value.headers.get('content-type')).toBe('application/problem+json');
    expect(Number(value.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(value.body).toMatchObject({ type: 'urn:ackstream:problem:unavailable', status: 503 });
    expect(ms).toBeLessThan(1500);
  }

  // a hung DynamoDB (black hole) is bounded by the request timeout, then the breaker answers at once
  await dynamoProxy.blackhole();
  await new Promise((r) => setTimeout(r, 250)); // let the open breaker allow a trial
  const hung = await timed(() => get(direct, 'o2'));
  expect(hung.value.status).toBe(503);
  // The request timeout is 1.5 s: bounded by it plus scheduling slack on a busy machine, not a hang.
  expect(hung.ms).toBeLessThan(2500);

  await dynamoProxy.cut();
  await dynamoProxy.open();
  await redis.start();
  await eventually(async () => (await get(direct, 'o1')).status === 200);
});
