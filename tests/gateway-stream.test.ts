/**
 * The gateway's stream side: micro-batched PutRecords keep one item's order through partial
 * failures; the buffer and the retry budget bound every request (503 + Retry-After, never a hang);
 * shutdown answers every pending write; the per-tenant rate limit is shared through Redis;
 * one log line per request and Prometheus metrics; PutRecords over signed HTTP (or the SDK);
 * the queued acks of a batch appended together, in order.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { type KinesisClient, PutRecordsCommand, type PutRecordsCommandOutput } from '@aws-sdk/client-kinesis';
import type { AckLog } from '../core/ack-log';
import { createKinesis } from '../core/aws';
import { loadConfig } from '../core/config';
import { createLogger } from '../core/log';
import { RedisAckLog } from '../core/redis-ack-log';
import type { RunningService } from '../core/service';
import type { KinesisSender } from '../gateway/batching-stream';
import { HttpKinesisClient } from '../core/kinesis-http';
import { GatewayConfig, type GatewayOverrides, startGateway } from '../gateway/main';
import { QueuedAckBatcher } from '../gateway/queued-acks';
import { request } from './helpers/http';
import { inStreamOrder, readStream } from './helpers/kinesis-records';
import { startStack, type Stack } from './helpers/stack';

let stack: Stack;
let kinesis: KinesisClient;
let token: string;
const started: RunningService[] = [];

beforeAll(async () => {
  stack = await startStack('gw_stream', { services: [] });
  kinesis = createKinesis({ region: 'us-east-1', endpoint: stack.env.KINESIS_ENDPOINT });
  token = await stack.token({ tenant: 'acme', sub: 'alice' });
});
afterAll(async () => {
  for (const s of started) await s.close();
  kinesis?.destroy();
  await stack?.close();
});

async function gateway(env: Record<string, string> = {}, overrides: GatewayOverrides = {}) {
  const g = await startGateway(loadConfig(GatewayConfig, { ...stack.env, ...env }), overrides);
  started.push(g);
  return g;
}
const put = (base: string, id: string, body: unknown, t = token) =>
  request(`${base}/v1/collections/notes/items/${id}`, { method: 'PUT', token: t, json: body });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A MOCK, for a fault the emulator cannot produce: kinesalite never fails single PutRecords
 * entries. This wrapper sends the real client only the entries it lets through and reports the
 * others as throttled, exactly as Kinesis does for a partial failure (failed entries are not written).
 */
function partiallyFailing(real: KinesisClient, shouldFail: (data: string) => boolean) {
  let injected = 0;
  const sender: KinesisSender = {
    send: (async (cmd: unknown, opts?: unknown) => {
      if (!(cmd instanceof PutRecordsCommand)) return (real.send as (c: unknown, o?: unknown) => Promise<unknown>)(cmd, opts);
      const entries = cmd.input.Records ?? [];
      const fail = entries.map((e) => shouldFail(Buffer.from(e.Data!).toString('utf8')));
      const passed = entries.filter((_, i) => !fail[i]);
      const out = passed.length
        ? await real.send(new PutRecordsCommand({ StreamName: cmd.input.StreamName!, Records: passed }))
        : { Records: [], FailedRecordCount: 0 };
      let j = 0;
      const records = entries.map((_, i) => {
        if (!fail[i]) return out.Records![j++]!;
        injected++;
        return { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'injected' };
      });
      return { ...out, Records: records, FailedRecordCount: fail.filter(Boolean).length } as PutRecordsCommandOutput;
    }) as KinesisSender['send'],
  };
  return { sender, injected: () => injected };
}

/** A real fault: an endpoint that accepts connections and never answers. */
async function blackhole(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

test('one item\'s writes are on the stream in the order the gateway accepted them, even when PutRecords entries fail and are retried', async () => {
  const seenFirst = new Set<string>();
  // Every record's first attempt fails for about half of them: later records of the same item must wait.
  const faults = partiallyFailing(kinesis, (data) => {
    const { requestId } = JSON.parse(data) as { requestId: string };
    if (seenFirst.has(requestId)) return false;
    seenFirst.add(requestId);
    return Math.random() < 0.5;
  });
  const g = await gateway({ STREAM_LINGER_MS: '15' }, { kinesis: faults.sender });
  const items = ['o1', 'o2', 'o3', 'o4'];
  const writes: Array<Promise<Awaited<ReturnType<typeof put>>>> = [];
  for (let n = 0; n < 8; n++) {
    for (const id of items) writes.push(put(g.url!, id, { n }));
    await sleep(10); // sent (and so accepted) in n order per item
  }
  const answers = await Promise.all(writes);
  expect(answers.map((a) => a.status)).toEqual(Array(writes.length).fill(202));
  expect(faults.injected()).toBeGreaterThan(0);

  const records = (await readStream(kinesis, stack.env.KINESIS_STREAM!)).filter((r) => r.command.collection === 'notes' && items.includes(r.command.id));
  expect(records).toHaveLength(writes.length); // each once: failed entries were not written, retries wrote them once
  for (const id of items) {
    // The order that counts is the gateway's acceptance order (its receivedAt, stamped just before
    // the put): requests sent 10 ms apart can still reach the gateway swapped on a busy machine.
    const onStream = inStreamOrder(records.filter((r) => r.command.id === id));
    const accepted = [...onStream].sort((a, b) => a.command.receivedAt.localeCompare(b.command.receivedAt));
    expect({ id, order: onStream.map((r) => r.command.receivedAt) }).toEqual({ id, order: accepted.map((r) => r.command.receivedAt) });
    expect(onStream.map((r) => (r.command.data as { n: number }).n).sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  }
  // Each 202 names the record's real position.
  const byId = new Map(records.map((r) => [r.command.requestId, r]));
  for (const a of answers) expect(byId.get(a.body.requestId)).toMatchObject({ shardId: a.body.shardId, sequenceNumber: a.body.sequenceNumber });
  const metrics = await request(`${g.url}/metrics`);
  expect(metrics.text).toMatch(/ackstream_gateway_putrecords_retries_total\{reason="ProvisionedThroughputExceededException",service="gateway"\} [1-9]/);
});

test('a write the stream keeps throttling beyond the retry budget is answered 503 with Retry-After, and not written', async () => {
  const faults = partiallyFailing(kinesis, (data) => data.includes('"throttled-item"'));
  const g = await gateway({ STREAM_RETRY_BUDGET_MS: '300' }, { kinesis: faults.sender });
  const t0 = Date.now();
  const res = await put(g.url!, 'throttled-item', { a: 1 });
  expect(res.status).toBe(503);
  expect(res.headers.get('retry-after')).toBe('1');
  expect(res.body.detail).toMatch(/did not accept the write within the retry budget/);
  expect(Date.now() - t0).toBeLessThan(3000);
  const records = await readStream(kinesis, stack.env.KINESIS_STREAM!);
  expect(records.filter((r) => r.command.id === 'throttled-item')).toEqual([]);
});

test('when the buffer is full a write is answered 503 at once, and writes stuck on an unanswering stream get 503 within the budget', async () => {
  const hole = await blackhole();
  try {
    const g = await gateway({
      KINESIS_ENDPOINT: hole.url, STREAM_MAX_BUFFERED: '2', STREAM_RETRY_BUDGET_MS: '800', STREAM_CALL_TIMEOUT_MS: '400', STREAM_LINGER_MS: '0',
    });
    const stuck = [put(g.url!, 'b1', { a: 1 }), put(g.url!, 'b2', { a: 1 })];
    await sleep(150);
    const t0 = Date.now();
    const full = await put(g.url!, 'b3', { a: 1 });
    expect(full.status).toBe(503);
    expect(full.headers.get('retry-after')).toBe('1');
    expect(full.body.detail).toMatch(/write buffer is full \(2 records\)/);
    expect(Date.now() - t0).toBeLessThan(300);
    const late = await Promise.all(stuck);
    expect(late.map((r) => r.status)).toEqual([503, 503]);
    expect(late[0]!.body.detail).toMatch(/within the retry budget/);
  } finally {
    await hole.close();
  }
});

test('shutdown flushes the buffer: every pending write is answered 202 and on the stream; afterwards connections are refused', async () => {
  // Plain linger (no send-when-idle), so the writes are still held when shutdown begins.
  const g = await gateway({ STREAM_LINGER_MS: '500', STREAM_FLUSH_WHEN_IDLE: 'false' });
  const pending = ['s1', 's2', 's3', 's4', 's5'].map((id) => put(g.url!, id, { bye: true }));
  await sleep(100); // all five are held by the batcher, waiting for the linger
  const closing = g.close();
  const answers = await Promise.all(pending);
  await closing;
  expect(answers.map((a) => a.status)).toEqual([202, 202, 202, 202, 202]);
  const records = await readStream(kinesis, stack.env.KINESIS_STREAM!);
  expect(records.filter((r) => r.command.data?.bye).map((r) => r.command.requestId).sort()).toEqual(answers.map((a) => a.body.requestId).sort());
  await expect(put(g.url!, 's6', { bye: true })).rejects.toThrow();
});

test('a lone write is sent at once instead of waiting for the linger; writes arriving right after a call share the next call', async () => {
  // The real client, counted: how many PutRecords calls carried how many records.
  const calls: number[] = [];
  const counting: KinesisSender = {
    send: ((cmd: unknown, opts?: unknown) => {
      if (cmd instanceof PutRecordsCommand) calls.push(cmd.input.Records?.length ?? 0);
      return (kinesis.send as (c: unknown, o?: unknown) => Promise<unknown>)(cmd, opts);
    }) as KinesisSender['send'],
  };
  const g = await gateway({ STREAM_LINGER_MS: '2000' }, { kinesis: counting });
  const t0 = Date.now();
  const lone = await put(g.url!, 'lone', { a: 1 });
  expect(lone.status).toBe(202);
  expect(Date.now() - t0).toBeLessThan(1500); // not held for the 2 s linger
  expect(calls).toEqual([1]);

  // 40 writes at once, right after that call (within the linger): they gather and go out together
  // instead of one call each.
  calls.length = 0;
  const burst = await Promise.all(Array.from({ length: 40 }, (_, i) => put(g.url!, `burst-${i}`, { i })));
  expect(burst.map((r) => r.status)).toEqual(Array(40).fill(202));
  expect(calls.reduce((a, b) => a + b, 0)).toBe(40);
  expect(calls.length).toBeLessThan(40);
  const records = await readStream(kinesis, stack.env.KINESIS_STREAM!);
  const byId = new Map(records.map((r) => [r.command.requestId, r]));
  for (const a of [lone, ...burst]) expect(byId.get(a.body.requestId)).toMatchObject({ shardId: a.body.shardId, sequenceNumber: a.body.sequenceNumber });
});

test('shutdown answers a write the stream cannot take with 503 instead of leaving it pending', async () => {
  const hole = await blackhole();
  try {
    const g = await gateway({ KINESIS_ENDPOINT: hole.url, STREAM_RETRY_BUDGET_MS: '600', STREAM_CALL_TIMEOUT_MS: '300' });
    const pending = put(g.url!, 'never', { a: 1 });
    await sleep(100);
    await g.close();
    const res = await pending;
    expect(res.status).toBe(503);
  } finally {
    await hole.close();
  }
});

test('the per-tenant rate limit is shared by gateway instances through Redis: 429 with Retry-After and RateLimit headers', async () => {
  const env = { RATE_LIMIT_PER_SECOND: '3', RATE_LIMIT_BURST: '1', RATE_LIMIT_BURST_WINDOW_S: '60' };
  const [a, b] = [await gateway(env), await gateway(env)];
  const t = await stack.token({ tenant: 'ratelimited', sub: 'u' });
  const answers = [];
  for (let i = 0; i < 6; i++) answers.push(await put((i % 2 ? b : a).url!, `r${i}`, { i }, t));
  const statuses = answers.map((r) => r.status);
  expect(statuses.filter((s) => s === 202).length).toBeLessThanOrEqual(4);
  const limited = answers.find((r) => r.status === 429)!;
  expect(limited).toBeDefined();
  expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  expect(limited.headers.get('ratelimit-limit')).toBe('3');
  expect(limited.headers.get('ratelimit-remaining')).toBe('0');
  expect(limited.headers.get('ratelimit-reset')).toMatch(/^\d+$/);
  expect(limited.body.detail).toMatch(/Tenant ratelimited exceeded its write rate of 3 per second/);
  const ok = answers.find((r) => r.status === 202)!;
  expect(ok.headers.get('ratelimit-limit')).toBe('3');
  // Another tenant is not affected.
  expect((await put(a.url!, 'other', { x: 1 })).status).toBe(202);
});

test('writes of one tenant arriving together are limited exactly as if they came one by one: each gets its own place in the bucket', async () => {
  const g = await gateway({ RATE_LIMIT_PER_SECOND: '5', RATE_LIMIT_BURST: '2', RATE_LIMIT_BURST_WINDOW_S: '60' });
  const t = await stack.token({ tenant: 'together', sub: 'u' });
  const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => put(g.url!, `t${i}`, { i }, t)));
  const admitted = answers.filter((r) => r.status === 202);
  // 5 per second + 2 of burst; the 12 arrive within one second.
  expect(admitted.length).toBeGreaterThanOrEqual(5);
  expect(admitted.length).toBeLessThanOrEqual(7);
  expect(answers.filter((r) => r.status === 429).length).toBe(12 - admitted.length);

  // Room for all of them (the default 1,000 per second): one decision for the group, one place each.
  const roomyGateway = await gateway();
  const roomy = await stack.token({ tenant: 'roomy', sub: 'u' });
  const many = await Promise.all(Array.from({ length: 10 }, (_, i) => put(roomyGateway.url!, `m${i}`, { i }, roomy)));
  expect(many.map((r) => r.status)).toEqual(Array(10).fill(202));
  const remaining = many.map((r) => Number(r.headers.get('ratelimit-remaining')));
  expect(new Set(remaining).size).toBe(10);
  expect(Math.max(...remaining)).toBeLessThanOrEqual(999);
});

test('each request is one structured log line (request id, tenant, status, latency) and /metrics serves Prometheus text', async () => {
  const lines: string[] = [];
  const g = await gateway({}, { log: createLogger('info', { service: 'gateway' }, (l) => lines.push(l)) });
  const ok = await put(g.url!, 'logged', { a: 1 });
  const bad = await request(`${g.url}/v1/collections/notes/items/logged`, { method: 'PUT', token, body: '[', headers: { 'content-type': 'application/json' } });
  expect([ok.status, bad.status]).toEqual([202, 400]);
  const requests = lines.map((l) => JSON.parse(l)).filter((e) => e.msg === 'request');
  expect(requests).toEqual([
    expect.objectContaining({ requestId: ok.body.requestId, tenant: 'acme', status: 202, method: 'PUT', latencyMs: expect.any(Number) }),
    expect.objectContaining({ requestId: null, tenant: 'acme', status: 400, latencyMs: expect.any(Number) }),
  ]);
  const metrics = await request(`${g.url}/metrics`);
  expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
  expect(metrics.text).toMatch(/ackstream_gateway_requests_total\{method="PUT",route="item",status="202",service="gateway"\} 1/);
  // The count, not a fast bucket: how long one request took on a busy machine is not the contract here.
  expect(metrics.text).toMatch(/ackstream_gateway_request_duration_seconds_count\{service="gateway",method="PUT",route="item",status="202"\} 1/);
  expect(metrics.text).toMatch(/ackstream_gateway_putrecords_batch_records_count\{service="gateway"\} 1/);
  expect(metrics.text).toMatch(/ackstream_gateway_buffer_depth\{service="gateway"\} 0/);
});

test('PutRecords over signed HTTP: each record is on the stream where the sender says; a failed call is an error named by the service', async () => {
  const sender = new HttpKinesisClient({
    endpoint: stack.env.KINESIS_ENDPOINT!, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  try {
    const records = ['h1', 'h2', 'h3'].map((id) => ({
      PartitionKey: `acme:notes:${id}`,
      Data: Buffer.from(JSON.stringify({ v: 1, requestId: `http-${id}`, kind: 'put', tenant: 'acme', principal: 'alice', collection: 'notes', id, data: { id } })),
    }));
    const out = await sender.send(new PutRecordsCommand({ StreamName: stack.env.KINESIS_STREAM!, Records: records }));
    expect(out.FailedRecordCount).toBe(0);
    const onStream = new Map((await readStream(kinesis, stack.env.KINESIS_STREAM!)).map((r) => [r.command.requestId, r]));
    out.Records!.forEach((r, i) => {
      expect(onStream.get(`http-h${i + 1}`)).toMatchObject({ shardId: r.ShardId, sequenceNumber: r.SequenceNumber });
    });
    await expect(sender.send(new PutRecordsCommand({ StreamName: 'no-such-stream', Records: records }))).rejects.toMatchObject({
      name: 'ResourceNotFoundException',
    });
  } finally {
    sender.destroy();
  }
});

test('STREAM_CLIENT=http puts over signed HTTP instead of the SDK client, with the same answer', async () => {
  const g = await gateway({ STREAM_CLIENT: 'http' });
  const res = await put(g.url!, 'via-http', { a: 1 });
  expect(res.status).toBe(202);
  const onStream = (await readStream(kinesis, stack.env.KINESIS_STREAM!)).find((r) => r.command.requestId === res.body.requestId);
  expect(onStream).toMatchObject({ shardId: res.body.shardId, sequenceNumber: res.body.sequenceNumber });
});

test('the queued acks emitted in one turn are appended in one call per principal, in the order they were emitted', async () => {
  const log = new RedisAckLog(stack.redis, stack.redisPrefix);
  const calls: number[] = [];
  // The real log, counted.
  const counted: AckLog = {
    append: (route, draft) => log.append(route, draft),
    appendMany: (route, drafts) => {
      calls.push(drafts.length);
      return log.appendMany(route, drafts);
    },
    readAfter: (route, after, limit) => log.readAfter(route, after, limit),
    subscribe: (l, g, s) => log.subscribe(l, g, s),
    close: () => log.close(),
  };
  const batcher = new QueuedAckBatcher(counted);
  const alice = { tenant: 'acme', principal: 'batch-alice' };
  const bob = { tenant: 'acme', principal: 'batch-bob' };
  const draft = (requestId: string) => ({
    type: 'ack' as const, stage: 'queued' as const, requestId, collection: 'notes', id: requestId, at: new Date().toISOString(),
  });
  const acks = await Promise.all([
    batcher.append(alice, draft('a1')), batcher.append(bob, draft('b1')), batcher.append(alice, draft('a2')), batcher.append(alice, draft('a3')),
  ]);
  expect(calls.sort()).toEqual([3]); // alice's three in one call; bob's single one through append
  const [a1, b1, a2, a3] = acks;
  expect(b1).toMatchObject({ requestId: 'b1' });
  expect([a1!.requestId, a2!.requestId, a3!.requestId]).toEqual(['a1', 'a2', 'a3']);
  expect(a1!.cursor).toBeLessThan(a2!.cursor);
  expect(a2!.cursor).toBeLessThan(a3!.cursor);
  const stored = await log.readAfter(alice, 0, 10);
  expect(stored.kind === 'acks' && stored.acks.map((a) => a.requestId)).toEqual(['a1', 'a2', 'a3']);
});
