/**
 * Property-based fuzzing (fast-check) of every public surface, against the services running as
 * child processes: hostile HTTP requests (methods, paths, encodings, headers, bodies, sizes, JWTs)
 * to the gateway and the read API, hostile upgrade requests and frames to the ack service.
 * Invariants: never a 5xx, never a crash, every error is application/problem+json (or a documented
 * WebSocket close code), and nothing but the accepted (202) writes ever reaches the log or the
 * read model.
 *
 * The normal suite runs a small fixed-seed sample; `npm run fuzz` runs FUZZ_RUNS (>= 10,000) cases.
 */
import { createHmac } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { WebSocket } from 'ws';
import { type ProcessStack, sleep, startProcessStack } from './helpers/process-stack';
import { type RawResponse, rawRequest } from './helpers/raw-http';

const TOTAL_RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const SEED = Number(process.env.FUZZ_SEED ?? 424242);
const runs = (share: number) => Math.max(20, Math.round(TOTAL_RUNS * share));
jest.setTimeout(Math.max(120_000, TOTAL_RUNS * 60));

let stack: ProcessStack;
let validToken: string;
const accepted = new Set<string>();

beforeAll(async () => {
  stack = await startProcessStack('fuzz');
  validToken = await stack.token({ tenant: 'acme', sub: 'fuzzer' });
});

afterAll(async () => {
  await stack?.close();
});

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const hs256 = (secret: string, data: string) => createHmac('sha256', secret).update(data).digest('base64url');
const visible = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 80 });
const now = () => Math.floor(Date.now() / 1000);

/** Tokens from valid to hostile: alg none, wrong algs, wrong keys, bad claims, garbage. */
const tokenArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant('VALID') },
  fc.constant(''),
  visible,
  fc.record({
    alg: fc.constantFrom('none', 'HS256', 'HS512', 'RS256', 'ES256', 'None', 'hs256', ''),
    typ: fc.constantFrom('JWT', undefined),
    tenant: fc.oneof(fc.constant('acme'), fc.constant('other'), visible, fc.constant('a#b'), fc.constant('{x}'), fc.constant('../../x'), fc.string({ maxLength: 100 })),
    sub: fc.oneof(fc.constant('fuzzer'), visible, fc.string({ maxLength: 300 }), fc.constant('')),
    exp: fc.oneof(fc.constant(undefined), fc.integer({ min: -1e9, max: 1e10 }), fc.constant('soon')),
    nbf: fc.oneof(fc.constant(undefined), fc.integer({ min: 0, max: 4e9 })),
    key: fc.constantFrom('right', 'wrong', 'empty', 'none'),
  }).map((t) => {
    const header = b64({ alg: t.alg, ...(t.typ ? { typ: t.typ } : {}) });
    const payload = b64({ tenant: t.tenant, sub: t.sub, ...(t.exp !== undefined ? { exp: t.exp } : {}), ...(t.nbf !== undefined ? { nbf: t.nbf } : {}) });
    const input = `${header}.${payload}`;
    const sig = t.key === 'none' ? '' : hs256(t.key === 'right' ? stack.secret : t.key === 'wrong' ? 'x'.repeat(43) : '', input);
    return `${input}.${sig}`;
  }),
  // A valid token with one part tampered.
  fc.tuple(fc.integer({ min: 0, max: 2 }), visible).map(([part, junk]) => `TAMPER:${part}:${junk}`),
);

async function resolveToken(t: string): Promise<string> {
  if (t === 'VALID') return validToken;
  if (t.startsWith('TAMPER:')) {
    const [, part, junk] = t.split(':', 3) as [string, string, string];
    const parts = validToken.split('.');
    parts[Number(part)] = `${parts[Number(part)]!.slice(0, -2)}${b64(junk).slice(0, 4) || 'AA'}`;
    return parts.join('.');
  }
  return t;
}

const segmentArb = fc.oneof(
  { weight: 4, arbitrary: fc.stringMatching(/^[A-Za-z0-9_.-]{1,20}$/) },
  // Cursors that decode to JSON but name no real key (empty key parts are invalid in DynamoDB).
  fc.constantFrom(b64(['', '']), b64(['x', '']), b64([1, 2]), b64(['a', 'b', 'c'])),
  fc.constantFrom('..', '.', '%2e%2e', '%2F', '%00', '%ff', '%', '%zz', '%252e', 'a%20b', '~', '%E2%80%AE', "'", '*', '$', ';', '@', ':'),
  fc.string({ maxLength: 40 }).map((s) => encodeURIComponent(s)),
  fc.integer({ min: 129, max: 3000 }).map((n) => 'a'.repeat(n)),
  fc.constant(''),
);

const pathArb = (kind: 'write' | 'read') => fc.tuple(
  fc.constantFrom(...(kind === 'write'
    ? ['/v1/collections/{c}/items/{i}', '/v1/collections/{c}/items/{i}', '/v1/collections/{c}/items', '/v1/{c}', '/{c}/{i}', '/v1/collections/{c}/items/{i}/{i}', '//v1/collections/{c}/items/{i}', '/V1/collections/{c}/items/{i}']
    : ['/v1/collections/{c}/items/{i}', '/v1/collections/{c}/items', '/v1/requests/{i}', '/v1/collections/{c}/items?limit={i}', '/v1/collections/{c}/items?limit=5&cursor={i}', '/v1/{c}', '/{c}', '/v1/requests/{i}/{c}'])),
  segmentArb, segmentArb, fc.option(fc.constantFrom('?', '?x=1', '#frag', '?a=%ff&b', '?limit=-1'), { nil: undefined }),
).map(([tpl, c, i, q]) => `${tpl.replace('{c}', c).replace(/\{i\}/g, i)}${q ?? ''}`);

const bodyArb = fc.oneof(
  { weight: 3, arbitrary: fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 }).map((o) => Buffer.from(JSON.stringify(o))) },
  fc.jsonValue({ maxDepth: 2 }).map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
  fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
  fc.constantFrom('{"__proto__":{"polluted":true}}', '{"constructor":{"prototype":{"x":1}}}', '{"a":1,"a":2}', '{', '', 'null', '[]', '"str"', '{"a":"\\ud800"}', '\ufeff{"bom":1}')
    .map((s) => Buffer.from(s)),
  fc.integer({ min: 1, max: 5000 }).map((d) => Buffer.from(`${'{"a":'.repeat(d)}1${'}'.repeat(d)}`)),
  fc.integer({ min: 60_000, max: 300_000 }).map((n) => Buffer.from(JSON.stringify({ big: 'x'.repeat(n) }))),
);

const encodingArb = fc.constantFrom(undefined, undefined, undefined, 'gzip', 'deflate', 'br', 'identity', 'compress', 'gzip, gzip', 'x-bogus');

function expectProblemOrOk(res: RawResponse, method: string, what: string): void {
  if (res.status >= 500) throw new Error(`${what} answered ${res.status}: ${res.body.toString().slice(0, 300)}`);
  if (res.status >= 400 && method !== 'HEAD') {
    const type = res.headers['content-type'] ?? '';
    if (!type.startsWith('application/problem+json')) throw new Error(`${what} answered ${res.status} as ${type}: ${res.body.toString().slice(0, 200)}`);
    const p = JSON.parse(res.body.toString()) as Record<string, unknown>;
    if (p.status !== res.status || typeof p.type !== 'string' || typeof p.title !== 'string' || typeof p.detail !== 'string') {
      throw new Error(`${what}: problem body incomplete: ${res.body.toString().slice(0, 200)}`);
    }
  }
}

function assertAlive(): void {
  for (const svc of ['gateway', 'read-model', 'ack-service', 'processors'] as const) {
    if (!stack.services[svc].running) throw new Error(`${svc} crashed:\n${stack.services[svc].text().slice(-2000)}`);
  }
}

test('the gateway answers every hostile write with a 202 or a problem+json 4xx, never a 5xx, and only 202s reach the log', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom('PUT', 'PUT', 'PATCH', 'DELETE', 'POST', 'GET', 'HEAD', 'OPTIONS', 'TRACE', 'put'),
      pathArb('write'), tokenArb, bodyArb, encodingArb,
      fc.constantFrom(undefined, 'application/json', 'application/json', 'application/merge-patch+json', 'text/plain', 'application/json; charset=utf-16', 'application/json; charset=latin1', 'application/x-www-form-urlencoded', 'application/vnd.evil+json', 'multipart/form-data; boundary=x'),
      fc.record({
        ifMatch: fc.option(fc.oneof(visible, fc.constantFrom('"1"', '"0"', '"99999999999"', '*', 'W/"1"', '"-1"')), { nil: undefined }),
        ifNoneMatch: fc.option(fc.oneof(visible, fc.constant('*')), { nil: undefined }),
        idem: fc.option(fc.oneof(visible, fc.string({ minLength: 256, maxLength: 400 }).map((s) => s.replace(/[^\x21-\x7e]/g, 'x'))), { nil: undefined }),
        trace: fc.option(visible, { nil: undefined }),
        lengthLie: fc.boolean(),
      }),
      async (method, path, tok, body, encoding, contentType, h) => {
        const token = await resolveToken(tok);
        const headers: Array<[string, string]> = [];
        if (token) headers.push(['Authorization', `Bearer ${token}`]);
        if (contentType) headers.push(['Content-Type', contentType]);
        let payload = body;
        if (encoding) {
          headers.push(['Content-Encoding', encoding]);
          if (encoding === 'gzip' && body.length % 2 === 0) payload = gzipSync(body); // half real gzip, half lies
        }
        if (h.ifMatch !== undefined) headers.push(['If-Match', h.ifMatch]);
        if (h.ifNoneMatch !== undefined) headers.push(['If-None-Match', h.ifNoneMatch]);
        if (h.idem !== undefined) headers.push(['Idempotency-Key', h.idem]);
        if (h.trace !== undefined) headers.push(['X-Trace-Id', h.trace]);
        // A Content-Length shorter than the body: the rest is garbage the server must not act on.
        if (h.lengthLie && payload.length > 2) headers.push(['Content-Length', String(payload.length - 1)]);
        const res = await rawRequest(Number(new URL(stack.gatewayUrl).port), { method, path, headers, body: payload });
        expectProblemOrOk(res, method, `${method} ${path.slice(0, 120)}`);
        if (res.status === 202) accepted.add((JSON.parse(res.body.toString()) as { requestId: string }).requestId);
        else if (res.status < 400 && !(method === 'OPTIONS' || method === 'HEAD')) throw new Error(`unexpected ${res.status} for ${method} ${path}`);
        assertAlive();
      },
    ),
    { numRuns: runs(0.5), seed: SEED, endOnFailure: true },
  );
  // Only the accepted writes were decided: the log and the read model hold nothing else.
  let decided: string[] = [];
  for (let i = 0; i < 100; i++) {
    decided = (await stack.pg.query<{ request_id: string }>('SELECT request_id FROM requests')).rows.map((r) => r.request_id);
    if (decided.length >= accepted.size) break;
    await sleep(300);
  }
  expect(new Set(decided)).toEqual(accepted);
  const events = Number((await stack.pg.query<{ n: string }>('SELECT count(*) AS n FROM events WHERE request_id <> ALL($1)', [[...accepted]])).rows[0]!.n);
  expect(events).toBe(0);
  assertAlive();
});

test('the read API answers every hostile read with a 2xx/304 or a problem+json 4xx, never a 5xx, and changes nothing', async () => {
  const before = await snapshot();
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom('GET', 'GET', 'GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'OPTIONS', 'PATCH'),
      pathArb('read'), tokenArb,
      fc.option(fc.oneof(visible, fc.constantFrom('*', '"1"', 'W/"2"')), { nil: undefined }),
      fc.option(fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)), { nil: undefined }),
      async (method, path, tok, ifNoneMatch, body) => {
        const token = await resolveToken(tok);
        const headers: Array<[string, string]> = [];
        if (token) headers.push(['Authorization', `Bearer ${token}`]);
        if (ifNoneMatch !== undefined) headers.push(['If-None-Match', ifNoneMatch]);
        const res = await rawRequest(Number(new URL(stack.readUrl).port), { method, path, headers, ...(body ? { body } : {}) });
        expectProblemOrOk(res, method, `${method} ${path.slice(0, 120)}`);
        assertAlive();
      },
    ),
    { numRuns: runs(0.3), seed: SEED + 1, endOnFailure: true },
  );
  expect(await snapshot()).toEqual(before);
});

test('the ack service refuses hostile upgrades with problem+json and answers hostile frames with a reply or a documented close code', async () => {
  const port = Number(new URL(stack.ackUrl).port);
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom('/v1/acks', '/v1/acks', '/v1/acks/', '/v1/ack', '/', '/v1/acks/../acks', '/%761/acks'),
      fc.option(fc.oneof(visible.map(encodeURIComponent), fc.constantFrom('-1', '1e3', '0x10', '99999999999999999', '1.5', '')), { nil: undefined }),
      tokenArb.filter((t) => t !== 'VALID'),
      fc.boolean(),
      async (path, after, tok, inQuery) => {
        const token = await resolveToken(tok);
        const q = [after !== undefined ? `after=${after}` : '', inQuery && token ? `access_token=${encodeURIComponent(token)}` : ''].filter(Boolean).join('&');
        const headers: Array<[string, string]> = [
          ['Connection', 'Upgrade'], ['Upgrade', 'websocket'], ['Sec-WebSocket-Version', '13'], ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
        ];
        if (!inQuery && token) headers.push(['Authorization', `Bearer ${token}`]);
        const res = await rawRequest(port, { method: 'GET', path: `${path}${q ? `?${q}` : ''}`, headers });
        if (res.status < 400) throw new Error(`hostile upgrade accepted: ${res.status} ${path}?${q}`);
        expectProblemOrOk(res, 'GET', `upgrade ${path}`);
        assertAlive();
      },
    ),
    { numRuns: runs(0.1), seed: SEED + 2, endOnFailure: true },
  );

  const DOCUMENTED_CLOSE = new Set([1003, 1007, 1009]);
  const frameArb = fc.oneof(
    { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => ({ text: JSON.stringify(v) ?? 'null' })) },
    fc.record({ type: fc.oneof(visible, fc.constantFrom('ping', 'PING', 'ack', 'subscribe')), after: fc.jsonValue({ maxDepth: 1 }) }).map((v) => ({ text: JSON.stringify(v) })),
    fc.string({ maxLength: 200 }).map((text) => ({ text })),
    fc.uint8Array({ maxLength: 200 }).map((a) => ({ binary: Buffer.from(a) })),
    fc.integer({ min: 65 * 1024, max: 200 * 1024 }).map((n) => ({ text: 'x'.repeat(n) })),
    fc.constant({ text: '{"type":"ping"}' as string }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(frameArb, { minLength: 1, maxLength: 4 }), async (frames) => {
      const ws = new WebSocket(`${stack.ackUrl}/v1/acks`, { headers: { Authorization: `Bearer ${validToken}` } });
      const replies: Array<Record<string, unknown>> = [];
      const outcome = new Promise<{ closed?: number; pong?: boolean }>((resolve, reject) => {
        ws.on('message', (d) => {
          const m = JSON.parse(d.toString()) as Record<string, unknown>;
          replies.push(m);
          // The server answers each {"type":"ping"} (ours comes last) with a pong, in order.
          if (m.type === 'pong' && replies.filter((r) => r.type === 'pong').length > pingsIn(frames)) {
            resolve({ pong: true });
          }
        });
        ws.on('close', (code) => resolve({ closed: code }));
        ws.on('error', reject);
      });
      await new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
      for (const f of frames) if (ws.readyState === WebSocket.OPEN) ws.send('binary' in f ? f.binary! : f.text!, { binary: 'binary' in f });
      if (ws.readyState === WebSocket.OPEN) ws.send('{"type":"ping"}');
      const res = await Promise.race([outcome, sleep(10_000).then(() => ({ timeout: true }) as const)]);
      if ('timeout' in res) throw new Error(`no reply and no close after ${JSON.stringify(frames).slice(0, 200)}`);
      if (res.closed !== undefined && !DOCUMENTED_CLOSE.has(res.closed)) throw new Error(`closed with undocumented code ${res.closed}`);
      for (const r of replies) if (r.type !== 'pong' && r.type !== 'error') throw new Error(`unexpected reply ${JSON.stringify(r)}`);
      if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
      assertAlive();
    }),
    { numRuns: runs(0.1), seed: SEED + 3, endOnFailure: true },
  );
});

function pingsIn(frames: Array<{ text?: string; binary?: Buffer }>): number {
  return frames.filter((f) => {
    if (f.text === undefined) return false;
    try {
      return (JSON.parse(f.text) as { type?: unknown } | null)?.type === 'ping';
    } catch {
      return false;
    }
  }).length;
}

/** What the stores hold: rejected input must leave it unchanged. */
async function snapshot() {
  const pg = await stack.pg.query('SELECT (SELECT count(*) FROM events) AS events, (SELECT count(*) FROM requests) AS requests, (SELECT count(*) FROM items) AS items');
  // Rate-limiter buckets (`rl:`) are counters that refill and expire on their own: not read-model state.
  const keys = (await stack.redis.keys(`${stack.redisPrefix}*`)).filter((k) => !k.startsWith(`${stack.redisPrefix}rl:`)).sort();
  return { pg: pg.rows[0], keys };
}
