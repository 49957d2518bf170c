/**
 * `npm run smoke -- --gateway <url> --read <url> --acks <url> --token <jwt> [--collection C] [--timeout S]`
 *
 * Post-deploy check: runs one item's whole life against any deployment, with the project's own
 * client SDK for writes and acks and plain HTTP for reads:
 *   health of the three services → ack WebSocket opens → PUT → queued + committed acks →
 *   GET (v1, ETag, Cache-Control, 304 on If-None-Match) → request status → PATCH → acks → GET v2 →
 *   DELETE → acks → GET 404.
 * Every status code, field and header the steps rely on is checked (a /healthz answering 404, as
 * behind the AWS load balancer, is reported as skipped); each step is printed with its
 * time. Exit code: 0 all good, 1 a deviation (the first one, with what was expected and what came),
 * 2 bad usage. The item is `smoke-<time>-<random>` in collection `smoke` of the token's tenant; a
 * failed run tries to delete it again so nothing is left behind.
 */
import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual, parseArgs } from 'node:util';
import { cliEnv } from './cli-env';
import { createClient, HttpProblemError, type Ack, type AckstreamClient, type ClientEvent, type WriteHandle } from '../client';

export interface SmokeOptions {
  gatewayUrl: string;
  readUrl: string;
  ackUrl: string;
  token: string;
  collection?: string;
  /** Longest wait for one step (an ack, a read), ms. */
  timeoutMs?: number;
  /** Where the step lines go (default: stdout). */
  print?: (line: string) => void;
}

export interface SmokeStep {
  name: string;
  ok: boolean;
  ms: number;
  detail: string;
}

export interface SmokeResult {
  ok: boolean;
  item: string;
  steps: SmokeStep[];
  /** The first deviation, when !ok. */
  failure?: string;
}

/** A deviation from the contract: what was expected and what the deployment did. */
class Deviation extends Error {}

/** A step that does not apply to this deployment, and why. */
interface Skipped {
  skipped: string;
}

interface Recorded {
  method: string;
  url: string;
  status: number;
  headers: Headers;
}

const trim = (u: string) => u.replace(/\/+$/, '');

export async function runSmoke(o: SmokeOptions): Promise<SmokeResult> {
  const print = o.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const timeoutMs = o.timeoutMs ?? 30_000;
  const collection = o.collection ?? 'smoke';
  const id = `smoke-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const itemPath = `/v1/collections/${encodeURIComponent(collection)}/items/${encodeURIComponent(id)}`;
  const auth = { authorization: `Bearer ${o.token}` };
  const steps: SmokeStep[] = [];
  const started = performance.now();

  // The SDK's HTTP calls go through this, so the 202's headers can be checked too.
  let last: Recorded | undefined;
  const recordingFetch: typeof fetch = async (input, init) => {
    const res = await fetch(input, init);
    last = { method: init?.method ?? 'GET', url: String(input), status: res.status, headers: res.headers };
    return res;
  };
  // Why the ack WebSocket did not open (or closed), for the message.
  // An error event says more (e.g. "Unexpected server response: 401") than the close that follows it.
  let lastSocketTrouble = '';
  let onSocketClose: (() => void) | undefined;
  const onEvent = (e: ClientEvent) => {
    if (e.type === 'error') lastSocketTrouble = describeSocketError(e.error);
    else if (e.type === 'close') {
      const closed = `closed with code ${e.code}${e.reason ? ` (${e.reason})` : ''}`;
      lastSocketTrouble = lastSocketTrouble.startsWith('error') ? `${lastSocketTrouble}, ${closed}` : closed;
      onSocketClose?.();
    } else if (e.type === 'reset') lastSocketTrouble = `reset: ${e.reason} ${e.detail}`;
    else if (e.type === 'open') lastSocketTrouble = '';
  };
  const client: AckstreamClient = createClient({
    gatewayUrl: o.gatewayUrl,
    readUrl: o.readUrl,
    ackUrl: o.ackUrl,
    token: o.token,
    fetch: recordingFetch,
    onEvent,
    reconnectMaxMs: 1000,
  });

  async function step(name: string, fn: () => Promise<string | Skipped>): Promise<void> {
    const t0 = performance.now();
    try {
      const out = await fn();
      const detail = typeof out === 'string' ? out : out.skipped;
      const s = { name, ok: true, ms: performance.now() - t0, detail };
      steps.push(s);
      print(`  ${typeof out === 'string' ? 'ok  ' : 'skip'} ${name.padEnd(44)} ${fmtMs(s.ms)}  ${detail}`);
    } catch (err) {
      const detail = err instanceof Deviation ? err.message : `${(err as Error).name}: ${(err as Error).message}`;
      const s = { name, ok: false, ms: performance.now() - t0, detail };
      steps.push(s);
      print(`  FAIL ${name.padEnd(44)} ${fmtMs(s.ms)}  ${detail}`);
      throw new Deviation(`${name}: ${detail}`);
    }
  }

  const within = <T>(p: Promise<T>, what: string): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Deviation(`${what} did not arrive within ${timeoutMs / 1000} s`)), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
  };

  /** A plain HTTP call with a timeout; connection errors become deviations naming the URL. */
  async function http(method: string, url: string, headers: Record<string, string> = {}): Promise<{ res: Response; text: string; json: unknown }> {
    let res: Response;
    try {
      res = await fetch(url, { method, headers, signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      throw new Deviation(`${method} ${url} failed: ${causeOf(err)}`);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { res, text, json };
  }

  /** Runs one write through the SDK and checks the 202 (status, Location, body) and both acks. */
  async function write(kind: 'PUT' | 'PATCH' | 'DELETE', expectVersion: number, send: () => Promise<WriteHandle>): Promise<Ack> {
    let handle!: WriteHandle;
    await step(`${kind} ${itemPath} → 202`, async () => {
      try {
        handle = await send();
      } catch (err) {
        if (err instanceof HttpProblemError) {
          throw new Deviation(`expected 202, got ${err.status}: ${err.problem.detail ?? err.problem.title ?? ''}${hintFor(err.status, 'gateway')}`);
        }
        throw new Deviation(`${kind} failed: ${causeOf(err)}`);
      }
      const r = last!;
      const a = handle.accepted;
      expectEq('202 body status', a.status, 'queued');
      expect(/^[A-Za-z0-9_-]{1,64}$/.test(a.requestId ?? ''), `202 body requestId ${JSON.stringify(a.requestId)} does not match ^[A-Za-z0-9_-]{1,64}$`);
      expect(/^shardId-/.test(a.shardId ?? ''), `202 body shardId ${JSON.stringify(a.shardId)} does not start with shardId-`);
      expect(/^[0-9]+$/.test(a.sequenceNumber ?? ''), `202 body sequenceNumber ${JSON.stringify(a.sequenceNumber)} is not a decimal number`);
      expectEq('202 Location header', r.headers.get('location'), `/v1/requests/${a.requestId}`);
      expectContentType(r.headers, 'application/json', '202');
      return `requestId ${a.requestId}, ${a.shardId}`;
    });
    let queuedCursor = 0;
    await step(`${kind} queued ack (WebSocket)`, async () => {
      const q = await within(handle.queued, `the queued ack of ${handle.requestId}`);
      expect(q.ack !== undefined, `the queued stage was only learnt from ${q.cursor === undefined ? 'the final ack or REST status' : 'REST'}, not a queued ack on the WebSocket${socketNote()}`);
      checkAck(q.ack!, 'queued', handle.requestId);
      queuedCursor = q.ack!.cursor;
      return `cursor ${q.ack!.cursor}`;
    });
    let committed!: Ack;
    await step(`${kind} committed ack (WebSocket)`, async () => {
      let c;
      try {
        c = await within(handle.committed, `the committed ack of ${handle.requestId}`);
      } catch (err) {
        if (err instanceof Deviation) throw err;
        throw new Deviation(`expected committed, got ${causeOf(err)}`);
      }
      expect(c.ack !== undefined, `the outcome was only learnt from GET /v1/requests, not a committed ack on the WebSocket${socketNote()}`);
      checkAck(c.ack!, 'committed', handle.requestId);
      expectEq('committed ack version', c.ack!.version, expectVersion);
      expect(c.ack!.cursor > queuedCursor, `committed ack cursor ${c.ack!.cursor} is not after the queued ack's ${queuedCursor}`);
      committed = c.ack!;
      return `version ${c.ack!.version}, cursor ${c.ack!.cursor}`;
    });
    return committed;
  }

  function checkAck(ack: Ack, stage: Ack['stage'], requestId: string): void {
    expectEq('ack type', ack.type, 'ack');
    expectEq('ack stage', ack.stage, stage);
    expectEq('ack requestId', ack.requestId, requestId);
    expectEq('ack collection', ack.collection, collection);
    expectEq('ack id', ack.id, id);
    expect(Number.isInteger(ack.cursor) && ack.cursor > 0, `ack cursor ${JSON.stringify(ack.cursor)} is not a positive integer`);
    expect(!Number.isNaN(Date.parse(ack.at ?? '')), `ack at ${JSON.stringify(ack.at)} is not a timestamp`);
  }

  const socketNote = () => (lastSocketTrouble ? ` (the ack WebSocket ${lastSocketTrouble})` : '');

  /** GET the item at (at least) a version: 200 with the document, ETag and Cache-Control. */
  async function getItem(version: number, data: Record<string, unknown>): Promise<void> {
    await step(`GET ${itemPath}?minVersion=${version} → 200 v${version}`, async () => {
      const { res, json, text } = await http('GET', `${trim(o.readUrl)}${itemPath}?minVersion=${version}`, auth);
      expectStatus(res.status, 200, text, 'read');
      expectContentType(res.headers, 'application/json', 'item');
      expectEq('ETag header', res.headers.get('etag'), `"${version}"`);
      expectEq('Cache-Control header', res.headers.get('cache-control'), 'private, no-cache');
      const doc = json as Record<string, unknown>;
      expectEq('item collection', doc?.collection, collection);
      expectEq('item id', doc?.id, id);
      expectEq('item version', doc?.version, version);
      expect(!Number.isNaN(Date.parse(String(doc?.updatedAt))), `item updatedAt ${JSON.stringify(doc?.updatedAt)} is not a timestamp`);
      expect(isDeepStrictEqual(doc?.data, data), `item data is ${JSON.stringify(doc?.data)}, expected ${JSON.stringify(data)}`);
      return `ETag ${res.headers.get('etag')}`;
    });
    await step(`GET ${itemPath} If-None-Match → 304`, async () => {
      const { res, text } = await http('GET', `${trim(o.readUrl)}${itemPath}`, { ...auth, 'if-none-match': `"${version}"` });
      expectStatus(res.status, 304, text, 'read');
      expectEq('ETag header on 304', res.headers.get('etag'), `"${version}"`);
      return 'not modified';
    });
  }

  print(`smoke: item ${collection}/${id}`);
  print(`       gateway ${o.gatewayUrl}, read ${o.readUrl}, acks ${o.ackUrl}`);
  let wrote = false;
  let deleted = false;
  try {
    for (const [name, base] of [['gateway', o.gatewayUrl], ['read API', o.readUrl], ['ack service', httpOf(o.ackUrl)]] as const) {
      await step(`${name} GET /healthz → 200`, async () => {
        const { res, json, text } = await http('GET', `${trim(base)}/healthz`);
        // Behind the AWS load balancer /healthz is not routed publicly (its own health checks use it):
        // a plain 404 there is not a deviation; a refused connection or a 5xx is.
        if (res.status === 404 && (json as { status?: unknown } | undefined)?.status !== 'ok') {
          return { skipped: 'not routed publicly here (404); the load balancer checks it' };
        }
        expectStatus(res.status, 200, text, name);
        const body = json as { status?: unknown; service?: unknown } | undefined;
        expectEq(`${name} health status`, body?.status, 'ok');
        return `service ${String(body?.service)}`;
      });
    }
    await step('ack WebSocket opens', async () => {
      try {
        // The client would keep reconnecting; the smoke run stops at the first refusal and says why.
        const refused = new Promise<never>((_, reject) => {
          onSocketClose = () => reject(new Deviation('the ack WebSocket did not open'));
        });
        await within(Promise.race([client.connect(), refused]), 'the ack WebSocket connection');
      } catch (err) {
        throw new Deviation(`${causeOf(err)}${socketNote()}${/401|4401|unauthori/i.test(lastSocketTrouble) ? ' — is the token valid for this deployment (same signing secret, not expired)?' : ''}`);
      } finally {
        onSocketClose = undefined;
      }
      return trim(o.ackUrl);
    });

    const v1 = { title: 'smoke test', done: false, n: 1, tags: ['smoke'] };
    wrote = true;
    const put = await write('PUT', 1, () => client.put(collection, id, v1, { idempotencyKey: `${id}-put`, ifNoneMatch: true }));
    await getItem(1, v1);
    await step(`GET /v1/requests/{requestId} → 200 committed`, async () => {
      const status = await client.requestStatus(put.requestId).catch((err: unknown) => {
        throw new Deviation(err instanceof HttpProblemError ? `expected 200, got ${err.status}: ${err.problem.detail ?? ''}` : causeOf(err));
      });
      expect(status !== undefined, `GET /v1/requests/${put.requestId} answered 404 after the committed ack`);
      expectEq('request status code', last!.status, 200);
      expectEq('request status Cache-Control', last!.headers.get('cache-control'), 'no-store');
      expectEq('request status', status!.status, 'committed');
      expectEq('request status requestId', status!.requestId, put.requestId);
      expectEq('request status version', status!.version, 1);
      return 'committed v1';
    });

    await write('PATCH', 2, () => client.patch(collection, id, { done: true, n: 2 }, { ifMatch: 1 }));
    await getItem(2, { ...v1, done: true, n: 2 });

    await write('DELETE', 3, () => client.delete(collection, id, { ifMatch: 2 }));
    deleted = true;
    await step(`GET ${itemPath}?minVersion=3 → 404`, async () => {
      const { res, json, text } = await http('GET', `${trim(o.readUrl)}${itemPath}?minVersion=3`, auth);
      expectStatus(res.status, 404, text, 'read');
      expectContentType(res.headers, 'application/problem+json', '404');
      expectEq('404 problem status', (json as { status?: unknown } | undefined)?.status, 404);
      return 'gone';
    });
    print(`smoke: PASS, ${steps.length} steps in ${fmtMs(performance.now() - started)}`);
    return { ok: true, item: `${collection}/${id}`, steps };
  } catch (err) {
    const failure = err instanceof Deviation ? err.message : `${(err as Error).name}: ${(err as Error).message}`;
    if (wrote && !deleted) {
      // Leave nothing behind: a best-effort delete (no If-Match; its outcome is not awaited).
      await fetch(`${trim(o.gatewayUrl)}${itemPath}`, { method: 'DELETE', headers: auth, signal: AbortSignal.timeout(5000) }).catch(() => undefined);
    }
    print(`smoke: FAIL after ${fmtMs(performance.now() - started)}: ${failure}`);
    return { ok: false, item: `${collection}/${id}`, steps, failure };
  } finally {
    client.close();
  }
}

function expect(cond: boolean, message: string): void {
  if (!cond) throw new Deviation(message);
}

function expectEq(what: string, actual: unknown, expected: unknown): void {
  if (!isDeepStrictEqual(actual, expected)) throw new Deviation(`${what} is ${JSON.stringify(actual) ?? 'absent'}, expected ${JSON.stringify(expected)}`);
}

function expectStatus(actual: number, expected: number, body: string, service: string): void {
  if (actual === expected) return;
  let detail = body.slice(0, 200);
  try {
    const p = JSON.parse(body) as { detail?: string; title?: string };
    detail = p.detail ?? p.title ?? detail;
  } catch {
    // not JSON: the raw start of the body says more than nothing
  }
  throw new Deviation(`expected ${expected}, got ${actual}${detail ? `: ${detail}` : ''}${hintFor(actual, service)}`);
}

function expectContentType(headers: Headers, type: string, what: string): void {
  const ct = headers.get('content-type') ?? '';
  if (ct.split(';')[0]!.trim().toLowerCase() !== type) throw new Deviation(`${what} Content-Type is ${JSON.stringify(ct)}, expected ${type}`);
}

function hintFor(status: number, service: string): string {
  if (status === 401) return ' — is the token valid for this deployment (same signing secret, not expired)?';
  if (status === 404 && service === 'read') return ' — is --read the read API (not the gateway)?';
  if (status === 404) return ` — is this URL the ${service}?`;
  if (status === 503) return ' — a store behind the service is unavailable';
  return '';
}

function causeOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as Error & { cause?: unknown }).cause;
  const c = cause instanceof Error ? `: ${(cause as Error & { code?: string }).code ?? cause.message}` : '';
  return `${err.message}${c}`;
}

function describeSocketError(e: unknown): string {
  const ev = e as { message?: unknown; error?: unknown };
  const msg = typeof ev?.message === 'string' ? ev.message : ev?.error instanceof Error ? ev.error.message : '';
  return `error${msg ? `: ${msg}` : ''}`;
}

/** The ack service's HTTP base (for /healthz) from its WebSocket URL. */
function httpOf(ackUrl: string): string {
  const u = new URL(ackUrl);
  u.protocol = u.protocol === 'wss:' ? 'https:' : u.protocol === 'ws:' ? 'http:' : u.protocol;
  u.pathname = u.pathname.replace(/\/v1\/acks\/?$/, '');
  return u.toString();
}

const fmtMs = (ms: number) => `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`.padStart(8);

const USAGE = 'usage: npm run smoke -- --gateway <url> --read <url> --acks <ws-url> --token <jwt> [--collection smoke] [--timeout 30]';

export async function main(argv = process.argv.slice(2)): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        gateway: { type: 'string' },
        read: { type: 'string' },
        acks: { type: 'string' },
        token: { type: 'string' },
        collection: { type: 'string', default: 'smoke' },
        timeout: { type: 'string', default: '30' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    process.stderr.write(`smoke: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const token = values.token ?? cliEnv().TOKEN;
  const missing = (['gateway', 'read', 'acks'] as const).filter((k) => !values[k]);
  if (!token) missing.push('token' as never);
  if (missing.length) {
    process.stderr.write(`smoke: missing ${missing.map((m) => `--${m}`).join(', ')} (the token may also come from $TOKEN)\n${USAGE}\n`);
    return 2;
  }
  const timeoutS = Number(values.timeout);
  if (!(timeoutS > 0)) {
    process.stderr.write(`smoke: --timeout must be a positive number of seconds\n`);
    return 2;
  }
  for (const [flag, url, schemes] of [['--gateway', values.gateway!, ['http:', 'https:']], ['--read', values.read!, ['http:', 'https:']], ['--acks', values.acks!, ['ws:', 'wss:']]] as const) {
    let ok = false;
    try {
      ok = (schemes as readonly string[]).includes(new URL(url).protocol);
    } catch {
      ok = false;
    }
    if (!ok) {
      process.stderr.write(`smoke: ${flag} ${JSON.stringify(url)} is not a ${schemes.join(' or ').replace(/:/g, '')} URL\n`);
      return 2;
    }
  }
  const result = await runSmoke({
    gatewayUrl: values.gateway!,
    readUrl: values.read!,
    ackUrl: values.acks!,
    token: token!,
    collection: values.collection,
    timeoutMs: timeoutS * 1000,
  });
  return result.ok ? 0 : 1;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`smoke: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
