/**
 * The operator console: `GET /console` (a static page + one script, no build, no CDN) and its
 * JSON feed, mounted on the ack service's HTTP server by one call in ack-service/main.ts.
 *
 * The page is public (it holds no data); everything it shows comes from `/console/api/*`, which
 * needs the same JWT as the rest of the API with the `operator` role (header or ?access_token=).
 * Numbers come from the services' Prometheus `/metrics` (CONSOLE_METRICS_URLS, scraped at most once
 * a second whatever the number of viewers; an endpoint that does not answer shows as "n/a") and,
 * for acks by stage and queued→committed latency, from the ack log this service already follows.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { AckLog } from '../core/ack-log';
import { type Principal, TokenVerifier } from '../core/auth';
import type { Ack } from '../core/contracts';
import { ForbiddenError, MethodNotAllowedError, NotFoundError, type ProblemError, toProblemError, UnauthorizedError } from '../core/errors';
import type { Logger } from '../core/log';
import * as panels from './console/panels';
import { type LabelFilter, parsePrometheus, type Scrape, sum } from './prometheus';

export const ConsoleEnv = z.object({
  /** Comma-separated Prometheus endpoints to read; default: the local `npm start` ports. */
  CONSOLE_METRICS_URLS: z
    .string()
    .default('http://127.0.0.1:3000/metrics,http://127.0.0.1:3001/metrics,http://127.0.0.1:3002/metrics,http://127.0.0.1:3003/metrics')
    .transform((s) => s.split(',').map((u) => u.trim()).filter(Boolean))
    .pipe(z.array(z.string().url())),
  /** Where the console's "test write" goes (server side, so the gateway needs no CORS). */
  CONSOLE_GATEWAY_URL: z.string().url().default('http://127.0.0.1:3000'),
});
export type ConsoleConfig = z.infer<typeof ConsoleEnv> & { AUTH_SECRET: string };

export interface ConsoleDeps {
  /** Open WebSockets of this instance, when no ack-service metrics are configured. */
  connectionCount(): number;
  acks: AckLog;
  config: ConsoleConfig;
  log: Logger;
}

export const OPERATOR_ROLE = 'operator';
const ASSETS: Record<string, { file: string; type: string }> = {
  '/console': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/console/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/console/console.js': { file: 'console.js', type: 'text/javascript; charset=utf-8' },
  '/console/console.css': { file: 'console.css', type: 'text/css; charset=utf-8' },
};
const ASSET_DIR = path.join(__dirname, 'console');
const SCRAPE_TIMEOUT_MS = 800;
const WINDOW_MS = 60_000;

type Stage = 'queued' | 'committed' | 'rejected';
type Latency = panels.Latency;

/** Acks as the ack log sees them, for every tenant: per-second counts and queued→committed latency. */
class AckWatch {
  private readonly perSecond = new Map<number, Record<Stage, number>>();
  private readonly queuedAt = new Map<string, number>();
  private latencies: Array<[number, number]> = [];
  readonly totals: Record<Stage, number> = { queued: 0, committed: 0, rejected: 0 };

  // Called for every ack of every tenant: the current second's bucket is kept at hand, and "at" is
  // parsed only for the stages that feed the latency.
  private sec = -1;
  private bucket: Record<Stage, number> = { queued: 0, committed: 0, rejected: 0 };

  observe(ack: Ack): void {
    const now = Date.now();
    const sec = Math.floor(now / 1000);
    if (sec !== this.sec) {
      this.sec = sec;
      this.bucket = this.perSecond.get(sec) ?? { queued: 0, committed: 0, rejected: 0 };
      this.perSecond.set(sec, this.bucket);
      if (this.perSecond.size > 120) for (const k of this.perSecond.keys()) if (k < sec - 90) this.perSecond.delete(k);
    }
    this.bucket[ack.stage] += 1;
    this.totals[ack.stage] += 1;
    if (ack.stage === 'queued') {
      this.queuedAt.set(ack.requestId, Date.parse(ack.at));
      // Bounded: an ack whose final stage never comes here (another instance's subscriber, a crash) is forgotten.
      if (this.queuedAt.size > 20_000) this.queuedAt.delete(this.queuedAt.keys().next().value!);
    } else {
      const q = this.queuedAt.get(ack.requestId);
      if (q === undefined) return;
      this.queuedAt.delete(ack.requestId);
      const at = Date.parse(ack.at);
      if (ack.stage === 'committed' && Number.isFinite(at)) this.latencies.push([now, Math.max(0, at - q)]);
    }
    if (this.latencies.length > 10_000) this.latencies = this.latencies.slice(-5_000);
  }

  /** Mean per second over the last `seconds` full seconds. */
  rates(seconds = 5): Record<Stage, number> {
    const now = Math.floor(Date.now() / 1000);
    const out: Record<Stage, number> = { queued: 0, committed: 0, rejected: 0 };
    for (let s = now - seconds; s < now; s++) {
      const b = this.perSecond.get(s);
      if (b) for (const k of Object.keys(out) as Stage[]) out[k] += b[k] / seconds;
    }
    return out;
  }

  committedLatency(): Latency {
    const since = Date.now() - WINDOW_MS;
    this.latencies = this.latencies.filter(([t]) => t >= since);
    if (!this.latencies.length) return null;
    const v = this.latencies.map(([, l]) => l).sort((a, b) => a - b);
    const at = (q: number) => v[Math.min(v.length - 1, Math.ceil(q * v.length) - 1)]!;
    return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: v[v.length - 1]! };
  }
}

/** Scrapes every configured /metrics at most once a second and keeps a short history for rates. */
class MetricsReader {
  private history: Scrape[] = [];
  private sources: Array<{ url: string; ok: boolean; error?: string }> = [];
  private inflight: Promise<void> | undefined;

  constructor(private readonly urls: string[]) {}

  async refresh(): Promise<void> {
    const last = this.history.at(-1);
    if (last && Date.now() - last.at < 1000) return;
    this.inflight ??= this.scrape().finally(() => {
      this.inflight = undefined;
    });
    await this.inflight;
  }

  private async scrape(): Promise<void> {
    const at = Date.now();
    const results = await Promise.all(
      this.urls.map(async (url) => {
        try {
          const res = await fetch(url, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) });
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
          return { url, ok: true, scrape: parsePrometheus(await res.text(), at) };
        } catch (err) {
          return { url, ok: false, error: err instanceof Error ? err.message : String(err) };
        }
      }),
    );
    this.sources = results.map(({ url, ok, error }) => ({ url, ok, ...(error ? { error } : {}) }));
    const merged: Scrape = { at, samples: [], types: new Map() };
    for (const r of results) {
      if (!r.scrape) continue;
      merged.samples.push(...r.scrape.samples);
      for (const [k, v] of r.scrape.types) merged.types.set(k, v);
    }
    this.history.push(merged);
    this.history = this.history.filter((s) => s.at >= at - 30_000);
  }

  /** The latest scrape and one about 5 s older (at least 1 s), for rates. */
  window(): { prev: Scrape | undefined; cur: Scrape | undefined } {
    const cur = this.history.at(-1);
    if (!cur) return { prev: undefined, cur };
    const older = this.history.filter((s) => cur.at - s.at >= 1000);
    const prev = older.find((s) => cur.at - s.at <= 6000) ?? older.at(-1);
    return { prev, cur };
  }

  status() {
    return this.sources;
  }
}

/** Builds the console's numbers; every figure is null ("n/a") when nothing reports it. */
export function buildSnapshot(m: { prev: Scrape | undefined; cur: Scrape | undefined }, watch: AckWatch, localConnections: number) {
  const { cur } = m;
  const shardLag: Array<{ shard: string; millisBehind: number | null; iteratorAgeMs: number | null }> = [];
  // One row per shard and stream consumer (commit, projections): their lags differ by design.
  const shards = new Map<string, { shard: string; consumer: string | undefined }>();
  for (const s of cur?.samples ?? []) {
    if (!s.labels.shard || (s.name !== panels.METRICS.millisBehind && s.name !== panels.METRICS.iteratorAge)) continue;
    const consumer = s.labels.consumer;
    shards.set(`${s.labels.shard}\u0000${consumer ?? ''}`, { shard: s.labels.shard, consumer });
  }
  for (const key of [...shards.keys()].sort()) {
    const { shard, consumer } = shards.get(key)!;
    const only: LabelFilter = (l) => l.shard === shard && l.consumer === consumer;
    shardLag.push({
      shard: consumer && consumer !== 'processors' ? `${shard} (${consumer})` : shard,
      millisBehind: sum(cur, panels.METRICS.millisBehind, only) ?? null,
      iteratorAgeMs: sum(cur, panels.METRICS.iteratorAge, only) ?? null,
    });
  }
  const ackRates = watch.rates();
  const openMetric = sum(cur, panels.METRICS.ackConnections);
  return {
    at: new Date().toISOString(),
    writesPerS: panels.writesPerS(m),
    acksPerS: {
      queued: ackRates.queued,
      committed: ackRates.committed,
      rejected: ackRates.rejected,
      pushed: panels.counterRate(m, panels.METRICS.acksPushed) ?? null,
    },
    ackTotals: { ...watch.totals },
    processorRecordsPerS: panels.processorRecordsPerS(m),
    queuedLatencyMs: panels.queuedLatencyMs(m),
    committedLatencyMs: watch.committedLatency(),
    shardLag,
    dlqDepth: panels.dlqDepth(m),
    openWebSockets: { value: openMetric ?? localConnections, source: openMetric !== undefined ? 'metrics' : 'this instance' },
    readHitRatio: panels.readHitRatio(m),
    replay: panels.replay(m),
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(JSON.stringify(body));
}

function sendProblem(res: ServerResponse, problem: ProblemError, instance?: string): void {
  res.writeHead(problem.status, { 'Content-Type': 'application/problem+json', 'Cache-Control': 'no-store', ...problem.headers });
  res.end(JSON.stringify(problem.toProblem(instance)));
}

/**
 * Puts the console in front of the server's own request handler: `/console` and `/console/*`
 * are answered here, everything else goes on to the handlers registered before.
 */
export function mountConsole(server: Server, deps: ConsoleDeps): void {
  const verifier = new TokenVerifier(deps.config.AUTH_SECRET);
  const watch = new AckWatch();
  const metrics = new MetricsReader(deps.config.CONSOLE_METRICS_URLS);
  let unsubscribe: (() => Promise<void>) | undefined;
  deps.acks.subscribe((_route, ack) => watch.observe(ack)).then(
    (u) => (unsubscribe = u),
    (err: unknown) => deps.log.warn('console: cannot follow the ack log', { err }),
  );
  server.on('close', () => void unsubscribe?.());
  const assets = new Map<string, Buffer>();
  const asset = (file: string) => {
    let b = assets.get(file);
    if (!b) assets.set(file, (b = readFileSync(path.join(ASSET_DIR, file))));
    return b;
  };

  const authorize = async (req: IncomingMessage, url: URL): Promise<Principal> => {
    const q = url.searchParams.get('access_token');
    if (!q && !req.headers.authorization) throw new UnauthorizedError('Missing token: send "Authorization: Bearer <token>" or ?access_token=<token> (operator role).');
    const principal = q ? await verifier.verify(q) : await verifier.verifyHeader(req.headers.authorization);
    if (!principal.roles.includes(OPERATOR_ROLE)) throw new ForbiddenError(`The console needs a token with the "${OPERATOR_ROLE}" role.`);
    return principal;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    const file = ASSETS[url.pathname];
    if (file) {
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new MethodNotAllowedError(`${url.pathname} answers GET only.`, 'GET, HEAD');
      res.writeHead(200, {
        'Content-Type': file.type,
        'Cache-Control': 'no-cache',
        'X-Content-Type-Options': 'nosniff',
        'Referrer-Policy': 'no-referrer',
        'Content-Security-Policy': "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'",
      });
      res.end(req.method === 'HEAD' ? undefined : asset(file.file));
      return;
    }
    if (url.pathname === '/console/api/snapshot') {
      if (req.method !== 'GET') throw new MethodNotAllowedError('The snapshot answers GET only.', 'GET');
      await authorize(req, url);
      await metrics.refresh();
      sendJson(res, 200, { ...buildSnapshot(metrics.window(), watch, deps.connectionCount()), sources: metrics.status() });
      return;
    }
    if (url.pathname === '/console/api/test-write') {
      if (req.method !== 'POST') throw new MethodNotAllowedError('Test writes are POSTed.', 'POST');
      await authorize(req, url);
      req.resume();
      // The operator's own token goes to the gateway, so the write and its acks are the operator's.
      const token = url.searchParams.get('access_token') ?? req.headers.authorization!.replace(/^Bearer +/i, '');
      const id = `test-${Date.now()}-${randomUUID().slice(0, 8)}`;
      const target = `${deps.config.CONSOLE_GATEWAY_URL}/v1/collections/console-test/items/${id}`;
      const started = Date.now();
      try {
        const r = await fetch(target, {
          method: 'PUT',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ source: 'operator console', at: new Date().toISOString() }),
          signal: AbortSignal.timeout(5000),
        });
        const text = await r.text();
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          /* not JSON: shown as text */
        }
        sendJson(res, 200, { gatewayStatus: r.status, collection: 'console-test', id, ms: Date.now() - started, body });
      } catch (err) {
        sendJson(res, 200, { gatewayStatus: null, collection: 'console-test', id, error: `gateway unreachable at ${deps.config.CONSOLE_GATEWAY_URL}: ${(err as Error).message}` });
      }
      return;
    }
    throw new NotFoundError(`No console route ${url.pathname}.`);
  };

  const previous = server.listeners('request') as Array<(req: IncomingMessage, res: ServerResponse) => void>;
  server.removeAllListeners('request');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/console' && !url.pathname.startsWith('/console/')) {
      for (const h of previous) h.call(server, req, res);
      return;
    }
    handle(req, res, url).catch((err: unknown) => {
      const problem = toProblemError(err);
      if (problem.status >= 500) deps.log.error('console request failed', { err });
      if (!res.headersSent) sendProblem(res, problem, url.pathname);
      else res.end();
    });
  });
}
