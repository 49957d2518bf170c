/**
 * The ack WebSocket against real Redis: auth at the upgrade, per-principal isolation, order under
 * reordered arrival, resume without gap or duplicate, reset, two instances, heartbeat, slow
 * clients and bad input. Acks are appended straight through the RedisAckLog (the same adapter the
 * gateway and processors use), so each case controls exactly what arrives and when.
 */
import { SignJWT } from 'jose';
import { WebSocket } from 'ws';
import { RedisAckLog } from '../core/redis-ack-log';
import type { AckDraft, AckRoute } from '../core/contracts';
import { loadConfig } from '../core/config';
import type { RunningService } from '../core/service';
import { AckConfig, startAckService } from '../ack-service/main';
import { startStack, type Stack } from './helpers/stack';
import { type Received, TestSocket } from './helpers/ws-client';

let stack: Stack;
let log: RedisAckLog;
const extra: RunningService[] = [];

beforeAll(async () => {
  stack = await startStack('acks', { services: ['ack-service'], env: { MAX_CONNECTIONS_PER_PRINCIPAL: '3' } });
  log = new RedisAckLog(stack.redis, stack.redisPrefix);
});

afterAll(async () => {
  for (const s of extra) await s.close();
  await stack?.close();
});

/** Another ack-service instance on the same Redis and prefix, with config overrides. */
async function instance(env: Record<string, string> = {}): Promise<RunningService> {
  const svc = await startAckService(loadConfig(AckConfig, { ...stack.env, ...env }));
  extra.push(svc);
  return svc;
}

const route = (tenant: string, principal: string): AckRoute => ({ tenant, principal });
let seq = 0;
const draft = (stage: AckDraft['stage'], requestId = `r${++seq}`, extra: Partial<AckDraft> = {}): AckDraft => ({
  type: 'ack', stage, requestId, collection: 'notes', id: 'n1', at: new Date().toISOString(),
  ...(stage === 'committed' ? { version: 1 } : {}),
  ...(stage === 'rejected' ? { reason: { code: 'version_conflict', message: 'stale If-Match' } } : {}),
  ...extra,
});

async function open(tenant: string, sub: string, query = '', base = stack.ackUrl): Promise<TestSocket> {
  const token = await stack.token({ tenant, sub });
  return TestSocket.open(`${base}/v1/acks${query}`, { Authorization: `Bearer ${token}` });
}

async function refused(url: string, headers: Record<string, string> = {}) {
  try {
    const s = await TestSocket.open(url, headers);
    await s.close();
    throw new Error('upgrade was accepted');
  } catch (err) {
    const e = err as { status?: number; body?: string };
    if (e.status === undefined) throw err;
    return { status: e.status, problem: JSON.parse(e.body ?? '{}') as Record<string, unknown> };
  }
}

const cursors = (ms: Received[]) => ms.filter((m) => m.type === 'ack').map((m) => m.cursor as number);
const metricsUrl = (svc: { url?: string }) => `${svc.url!.replace(/^ws/, 'http')}/metrics`;
async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(url)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe('auth at the upgrade', () => {
  const url = () => `${stack.ackUrl}/v1/acks`;
  const secret = () => stack.env.AUTH_SECRET!;

  test('refuses a missing token with 401 problem+json before the upgrade', async () => {
    const r = await refused(url());
    expect(r.status).toBe(401);
    expect(r.problem).toMatchObject({ type: 'urn:ackstream:problem:unauthorized', status: 401, detail: expect.stringMatching(/Missing token/) });
  });

  test('refuses a token signed with another key with 401', async () => {
    const forged = await new SignJWT({ tenant: 'acme' }).setProtectedHeader({ alg: 'HS256' }).setSubject('alice')
      .setExpirationTime('1h').sign(new TextEncoder().encode('x'.repeat(40)));
    const r = await refused(url(), { Authorization: `Bearer ${forged}` });
    expect(r.status).toBe(401);
    expect(r.problem.detail).toMatch(/signature/);
  });

  test('refuses an expired token with 401', async () => {
    const expired = await stack.token({ tenant: 'acme', sub: 'alice', ttlSeconds: -60 });
    const r = await refused(`${url()}?access_token=${expired}`);
    expect(r.status).toBe(401);
    expect(r.problem.detail).toMatch(/expired/);
  });

  test('refuses a token with a wrong algorithm (HS512, alg none) with 401', async () => {
    const hs512 = await new SignJWT({ tenant: 'acme' }).setProtectedHeader({ alg: 'HS512' }).setSubject('alice')
      .setExpirationTime('1h').sign(new TextEncoder().encode(secret()));
    expect((await refused(url(), { Authorization: `Bearer ${hs512}` })).problem.detail).toMatch(/algorithm/);
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const none = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'alice', tenant: 'acme', exp: Math.floor(Date.now() / 1000) + 3600 })}.`;
    expect((await refused(url(), { Authorization: `Bearer ${none}` })).status).toBe(401);
  });

  test('refuses a malformed ?after= with 400', async () => {
    const token = await stack.token({ tenant: 'acme', sub: 'alice' });
    const r = await refused(`${url()}?after=-3`, { Authorization: `Bearer ${token}` });
    expect(r.status).toBe(400);
    expect(r.problem.detail).toMatch(/after/);
  });

  test('refuses more connections per principal than the limit with 429 and Retry-After', async () => {
    const held = [await open('acme', 'many'), await open('acme', 'many'), await open('acme', 'many')];
    const token = await stack.token({ tenant: 'acme', sub: 'many' });
    const r = await refused(url(), { Authorization: `Bearer ${token}` });
    expect(r.status).toBe(429);
    expect(r.problem).toMatchObject({ type: 'urn:ackstream:problem:too-many-requests', detail: expect.stringMatching(/limit 3/) });
    // Another principal is not affected, and closing one frees a slot.
    const other = await open('acme', 'few');
    await held[0]!.close();
    await new Promise((r) => setTimeout(r, 50));
    held[0] = await open('acme', 'many');
    for (const s of [...held, other]) await s.close();
  });
});

describe('isolation', () => {
  test('a connection receives only the acks of its own tenant and sub', async () => {
    const aliceAcme = await open('acme', 'iso-alice');
    const bobAcme = await open('acme', 'iso-bob');
    const aliceGlobex = await open('globex', 'iso-alice');
    await log.append(route('acme', 'iso-alice'), draft('queued', 'a1'));
    await log.append(route('acme', 'iso-bob'), draft('queued', 'b1'));
    await log.append(route('globex', 'iso-alice'), draft('queued', 'g1'));
    await log.append(route('acme', 'iso-alice'), draft('committed', 'a1'));
    await aliceAcme.waitFor((ms) => ms.length === 2);
    await bobAcme.waitFor((ms) => ms.length === 1);
    await aliceGlobex.waitFor((ms) => ms.length === 1);
    await new Promise((r) => setTimeout(r, 100)); // nothing else may arrive
    expect(aliceAcme.messages.map((m) => [m.requestId, m.stage])).toEqual([['a1', 'queued'], ['a1', 'committed']]);
    expect(bobAcme.messages.map((m) => m.requestId)).toEqual(['b1']);
    expect(aliceGlobex.messages.map((m) => m.requestId)).toEqual(['g1']);
    for (const s of [aliceAcme, bobAcme, aliceGlobex]) await s.close();
  });
});

describe('order', () => {
  test('never pushes queued after the final ack, even when the final arrives first', async () => {
    const s = await open('acme', 'order');
    const r = route('acme', 'order');
    const committed = await log.append(r, draft('committed', 'late-queued'));
    expect(await log.append(r, draft('queued', 'late-queued'))).toBeNull();
    await log.append(r, draft('queued', 'normal'));
    await log.append(r, draft('rejected', 'normal'));
    await s.waitFor((ms) => ms.length === 3);
    await new Promise((res) => setTimeout(res, 100));
    expect(s.messages.map((m) => [m.requestId, m.stage])).toEqual([['late-queued', 'committed'], ['normal', 'queued'], ['normal', 'rejected']]);
    // The history agrees: resuming from before everything replays the same three.
    const again = await open('acme', 'order', `?after=${committed!.cursor - 1}`);
    await again.waitFor((ms) => ms.length === 3);
    expect(again.messages).toEqual(s.messages);
    for (const x of [s, again]) await x.close();
  });

  test('appendMany stores a batch of one principal in order, with the same rules as append', async () => {
    const s = await open('acme', 'many');
    const r = route('acme', 'many');
    const before = await log.append(r, draft('committed', 'm-done'));
    const out = await log.appendMany(r, [
      draft('queued', 'm-done'), // after its final: dropped
      draft('committed', 'm-done'), // a final again: the stored one, not a new cursor
      draft('committed', 'm1', { version: 1 }),
      draft('rejected', 'm2'),
      draft('committed', 'm3', { version: 2 }),
    ]);
    expect(out[0]).toBeNull();
    expect(out[1]!.cursor).toBe(before!.cursor);
    const fresh = out.slice(2).map((a) => a!.cursor);
    expect(fresh).toEqual([before!.cursor + 1, before!.cursor + 2, before!.cursor + 3]);
    // The re-published final carries its original cursor: the connection pushes it once.
    await s.waitFor((ms) => ms.length === 4);
    await new Promise((res) => setTimeout(res, 100));
    expect(s.messages.map((m) => [m.requestId, m.stage])).toEqual([
      ['m-done', 'committed'], ['m1', 'committed'], ['m2', 'rejected'], ['m3', 'committed'],
    ]);
    // The history holds each once, in order; a resuming client gets the same.
    const history = await log.readAfter(r, before!.cursor - 1, 10);
    expect(history.kind === 'acks' && history.acks.map((a) => [a.requestId, a.cursor])).toEqual([
      ['m-done', before!.cursor], ['m1', fresh[0]], ['m2', fresh[1]], ['m3', fresh[2]],
    ]);
    await s.close();
  });

  test('a replayed final ack is pushed once, with its original cursor', async () => {
    const s = await open('acme', 'replayed');
    const r = route('acme', 'replayed');
    const first = await log.append(r, draft('committed', 'twice'));
    const second = await log.append(r, draft('committed', 'twice'));
    expect(second!.cursor).toBe(first!.cursor);
    await log.append(r, draft('queued', 'next'));
    await s.waitFor((ms) => ms.length === 2);
    expect(s.messages.map((m) => m.requestId)).toEqual(['twice', 'next']);
    const cs = cursors(s.messages);
    expect(cs[1]).toBeGreaterThan(cs[0]!);
    await s.close();
  });
});

describe('frames', () => {
  test('acks arriving together go out as one frame each, in cursor order, each exactly its JSON with the cursor last', async () => {
    const s = await open('acme', 'together');
    const raw: string[] = [];
    s.ws.on('message', (d: Buffer) => raw.push(d.toString()));
    const r = route('acme', 'together');
    // Pipelined on one connection: they reach the service in one read, so its writes to this socket are held and sent together.
    // The first draft carries a stray cursor, which the log's own cursor replaces.
    await Promise.all(Array.from({ length: 50 }, (_, i) => log.append(r, draft('queued', `t${i}`, i === 0 ? ({ cursor: 1 } as Partial<AckDraft>) : {}))));
    await s.waitFor((ms) => ms.length === 50);
    await new Promise((res) => setTimeout(res, 100));
    expect(raw).toHaveLength(50);
    const parsed = raw.map((t) => JSON.parse(t) as Record<string, unknown>);
    expect(parsed.map((m) => m.requestId)).toEqual(Array.from({ length: 50 }, (_, i) => `t${i}`));
    for (let i = 0; i < raw.length; i++) {
      expect(raw[i]).toBe(JSON.stringify(parsed[i]));
      expect(Object.keys(parsed[i]!).at(-1)).toBe('cursor');
      expect(raw[i]!.match(/"cursor"/g)).toHaveLength(1);
      if (i > 0) expect(parsed[i]!.cursor).toBe((parsed[i - 1]!.cursor as number) + 1);
    }
    expect(parsed[0]!.cursor).not.toBe(1);
    await s.close();
  });
});

describe('resume', () => {
  test('after a forced disconnect in the middle of a burst, ?after=<cursor> delivers every missed ack then live ones: no gap, no duplicate', async () => {
    const r = route('acme', 'burst');
    const total = 600;
    const first = await open('acme', 'burst');
    const burst = (async () => {
      for (let i = 0; i < total; i++) await log.append(r, draft('queued', `b${i}`));
    })();
    await first.waitFor((ms) => ms.length >= 150, 20_000);
    first.ws.terminate(); // forced: no close handshake, acks still flowing
    const seen = [...first.messages];
    const last = seen.at(-1)!.cursor as number;
    const second = await open('acme', 'burst', `?after=${last}`);
    await burst;
    await second.waitFor((ms) => seen.length + ms.length >= total, 20_000, 'the rest of the burst');
    await new Promise((res) => setTimeout(res, 100));
    const all = [...seen, ...second.messages];
    expect(all.map((m) => m.requestId)).toEqual(Array.from({ length: total }, (_, i) => `b${i}`));
    const cs = cursors(all);
    for (let i = 1; i < cs.length; i++) expect(cs[i]).toBe(cs[i - 1]! + 1);
    await second.close();
  });

  test('a cursor from a lost history (keys deleted) gets a reset message with reason "lost", then live acks', async () => {
    const r = route('acme', 'lost');
    const a = await log.append(r, draft('queued'));
    const keys = await stack.redis.keys(`${stack.redisPrefix}ack*{acme:lost}*`);
    expect(keys.length).toBeGreaterThan(0);
    await stack.redis.del(...keys);
    const s = await open('acme', 'lost', `?after=${a!.cursor}`);
    await s.waitFor((ms) => ms.length === 1);
    expect(s.messages[0]).toEqual({ type: 'reset', reason: 'lost', detail: expect.any(String), after: a!.cursor });
    await log.append(r, draft('queued', 'after-loss'));
    await s.waitFor((ms) => ms.length === 2);
    expect(s.messages[1]).toMatchObject({ type: 'ack', requestId: 'after-loss' });
    // A new history starts above every cursor of the lost one.
    expect(s.messages[1]!.cursor as number).toBeGreaterThan(a!.cursor);
    await s.close();
  });

  test('a cursor older than the retained history gets a reset message with reason "expired"', async () => {
    const r = route('acme', 'trimmed');
    const a = await log.append(r, draft('queued'));
    for (let i = 0; i < 5; i++) await log.append(r, draft('queued'));
    // What MAXLEN trimming does to a long history, done exactly.
    await stack.redis.xtrim(`${stack.redisPrefix}acks:{acme:trimmed}`, 'MAXLEN', 2);
    const s = await open('acme', 'trimmed', `?after=${a!.cursor}`);
    await s.waitFor((ms) => ms.length === 1);
    expect(s.messages[0]).toMatchObject({ type: 'reset', reason: 'expired', after: a!.cursor });
    await s.close();
  });

  test('retention is bounded per principal and expires with inactivity', async () => {
    const small = new RedisAckLog(stack.redis, stack.redisPrefix, { seconds: 60, maxPerPrincipal: 100 });
    const r = route('acme', 'bounded');
    for (let i = 0; i < 1000; i++) await small.append(r, draft('queued'));
    const key = `${stack.redisPrefix}acks:{acme:bounded}`;
    expect(await stack.redis.xlen(key)).toBeLessThan(300); // MAXLEN ~: trimmed in whole nodes
    const ttl = await stack.redis.ttl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60);
  });
});

describe('two instances', () => {
  test('a client on either instance gets its acks; resume works across instances', async () => {
    const b = await instance();
    const onA = await open('acme', 'multi');
    const onB = await open('acme', 'multi', '', b.url);
    const r = route('acme', 'multi');
    for (let i = 0; i < 20; i++) await log.append(r, draft('queued', `m${i}`));
    await onA.waitFor((ms) => ms.length === 20);
    await onB.waitFor((ms) => ms.length === 20);
    expect(onB.messages).toEqual(onA.messages);
    // Disconnect from A, resume on B.
    const mid = onA.messages[9]!.cursor as number;
    await onA.close();
    const resumed = await open('acme', 'multi', `?after=${mid}`, b.url);
    await resumed.waitFor((ms) => ms.length === 10);
    expect(resumed.messages).toEqual(onB.messages.slice(10));
    for (const s of [onB, resumed]) await s.close();
  });
});

describe('liveness and slow clients', () => {
  test('terminates a connection that stops answering pings; one that answers stays', async () => {
    const svc = await instance({ HEARTBEAT_MS: '100' });
    const token = await stack.token({ tenant: 'acme', sub: 'hb' });
    const dead = new WebSocket(`${svc.url}/v1/acks`, { headers: { Authorization: `Bearer ${token}` }, autoPong: false });
    const live = await open('acme', 'hb', '', svc.url);
    const code = await new Promise<number>((resolve) => dead.on('close', (c) => resolve(c)));
    expect(code).toBe(1006); // terminated, no close frame
    expect(live.closed).toBeUndefined();
    expect(await metric(metricsUrl(svc), 'ackstream_ack_dead_terminations_total')).toBeGreaterThanOrEqual(1);
    await live.close();
  });

  test('a client that does not read is closed with 1013 past its send buffer, then resumes with nothing lost', async () => {
    const svc = await instance({ MAX_BUFFERED_BYTES: String(64 * 1024), CLOSE_GRACE_MS: '30000' });
    const r = route('acme', 'slow');
    const s = await open('acme', 'slow', '', svc.url);
    const raw = (s.ws as unknown as { _socket: import('node:net').Socket })._socket;
    raw.pause(); // real TCP backpressure: the kernel buffers fill, then ws.bufferedAmount grows
    const big = 'x'.repeat(8 * 1024);
    let appended = 0;
    while ((await metric(metricsUrl(svc), 'ackstream_ack_slow_client_closes_total')) < 1) {
      if (appended >= 5000) throw new Error('the server never closed the slow client');
      await Promise.all(Array.from({ length: 50 }, () => log.append(r, draft('rejected', `s${appended++}`, { reason: { code: 'not_found', message: big } }))));
    }
    // A few more while it is closed: these must come with the resume.
    for (let i = 0; i < 10; i++) await log.append(r, draft('queued', `s${appended++}`));
    raw.resume();
    await s.waitFor(() => s.closed !== undefined, 20_000, 'the 1013 close');
    expect(s.closed).toEqual({ code: 1013, reason: expect.stringMatching(/not reading.*after=/) });
    const last = cursors(s.messages).at(-1)!;
    const resumed = await open('acme', 'slow', `?after=${last}`, svc.url);
    await resumed.waitFor((ms) => s.messages.length + ms.length >= appended, 20_000, 'the rest after resume');
    const all = [...s.messages, ...resumed.messages];
    expect(all.map((m) => m.requestId)).toEqual(Array.from({ length: appended }, (_, i) => `s${i}`));
    await resumed.close();
  });
});

describe('bad input from clients', () => {
  async function expectClose(send: (ws: WebSocket) => void, code: number, reason: RegExp) {
    const s = await open('acme', 'bad');
    send(s.ws);
    await s.waitFor(() => s.closed !== undefined, 5000, `close ${code}`);
    expect(s.closed!.code).toBe(code);
    expect(s.closed!.reason).toMatch(reason);
  }

  test('each bad message gets a precise answer and the server keeps serving everyone else', async () => {
    const bystander = await open('acme', 'bystander');
    await expectClose((ws) => ws.send('not json {'), 1007, /JSON/);
    await expectClose((ws) => ws.send(Buffer.from([1, 2, 3]), { binary: true }), 1003, /Binary/);
    await expectClose((ws) => ws.send(JSON.stringify({ type: 'ping', pad: 'x'.repeat(10_000) })), 1009, /4096-byte limit/);
    await expectClose((ws) => ws.send('x'.repeat(200_000)), 1009, /^$/); // over the hard cap: ws closes before buffering it

    const s = await open('acme', 'bad');
    s.ws.send(JSON.stringify({ type: 'subscribe' }));
    s.ws.send(JSON.stringify([1]));
    s.ws.send(JSON.stringify({ type: 'ping' }));
    await s.waitFor((ms) => ms.length === 3);
    expect(s.messages).toEqual([
      { type: 'error', code: 'unknown_type', message: expect.stringMatching(/"subscribe"/) },
      { type: 'error', code: 'unknown_type', message: expect.stringMatching(/null/) },
      { type: 'pong', cursor: 0 },
    ]);
    expect(s.closed).toBeUndefined();

    await log.append(route('acme', 'bystander'), draft('queued', 'still-served'));
    await bystander.waitFor((ms) => ms.length === 1);
    expect(bystander.messages[0]).toMatchObject({ requestId: 'still-served' });
    expect(bystander.closed).toBeUndefined();
    for (const x of [s, bystander]) await x.close();
  });
});

describe('metrics', () => {
  test('GET /metrics exposes connections, pushed acks, push latency, resumes and resets', async () => {
    const url = metricsUrl({ url: stack.ackUrl });
    const s = await open('acme', 'metrics');
    await log.append(route('acme', 'metrics'), draft('queued'));
    await s.waitFor((ms) => ms.length === 1);
    const res = await fetch(url);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await metric(url, 'ackstream_ack_connections_open')).toBeGreaterThanOrEqual(1);
    expect(await metric(url, 'ackstream_acks_pushed_total')).toBeGreaterThanOrEqual(1);
    expect(await metric(url, 'ackstream_ack_push_latency_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(await metric(url, 'ackstream_ack_resumes_total')).toBeGreaterThanOrEqual(1);
    const text = await (await fetch(url)).text();
    expect(text).toMatch(/ackstream_ack_resets_total\{reason="lost"\} [1-9]/);
    expect(text).toMatch(/ackstream_ack_upgrades_refused_total\{status="429"\} [1-9]/);
    await s.close();
  });
});
