/**
 * The ack WebSocket service (`ws` in noServer mode, so auth happens before the upgrade).
 * Each connection gets only its principal's acks, in cursor order, with no duplicates; a client
 * reconnecting with `?after=<cursor>` first gets what it missed, then live acks.
 *
 * Close codes (also in docs/asyncapi.yaml): 1003 binary frame, 1007 non-JSON text, 1009 message too
 * big, 1013 send buffer full (slow client: reconnect with ?after=<last cursor you processed>),
 * 1001 server shutting down, 1011 ack history unreadable. Unknown message types are answered with an
 * `error` message and the connection stays open.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import type { AckLog } from '../core/ack-log';
import { type Principal, type TokenVerifier } from '../core/auth';
import type { Ack, AckRoute } from '../core/contracts';
import { BadRequestError, NotFoundError, ProblemError, toProblemError, TooManyRequestsError, UnauthorizedError } from '../core/errors';
import type { Logger } from '../core/log';
import { AckMetrics } from './metrics';

export interface AckServerDeps {
  acks: AckLog;
  verifier: TokenVerifier;
  log: Logger;
  heartbeatMs: number;
  resumePageSize: number;
  /** Open connections allowed per principal (tenant + sub); more are refused with 429. */
  maxConnectionsPerPrincipal?: number;
  /** Bytes queued for one connection (ws.bufferedAmount) past which it is closed with 1013. */
  maxBufferedBytes?: number;
  /** Largest client message accepted, in bytes; larger ones close with 1009. */
  maxMessageBytes?: number;
  /** How long a closing slow client gets to read its close frame before it is terminated. */
  closeGraceMs?: number;
}

export const ACK_PATH = '/v1/acks';

export const CLOSE = {
  goingAway: 1001,
  unsupportedData: 1003,
  invalidPayload: 1007,
  messageTooBig: 1009,
  internalError: 1011,
  tryAgainLater: 1013,
} as const;

const routeKey = (r: AckRoute) => `${r.tenant}\u0000${r.principal}`;

/** One client connection: sends acks strictly above its last cursor, buffering live ones while it resumes. */
class AckConnection {
  lastCursor = 0;
  alive = true;
  /** History reads of this connection run one after another (see AckServer.resume). */
  resumeChain: Promise<void> = Promise.resolve();
  pendingResumes = 0;
  private resuming = true;
  private buffered: Array<{ ack: Ack; json: string }> = [];

  /** The socket is corked until the end of this tick (see AckServer.cork). */
  corked = false;

  constructor(
    readonly ws: WebSocket,
    /** The raw socket under `ws`, corked so that a tick's frames to it leave in one write. */
    readonly socket: Duplex,
    readonly route: AckRoute,
    private readonly server: AckServer,
  ) {}

  /** Live acks are held back while the history after `lastCursor` is (re)read. */
  pause(): void {
    this.resuming = true;
  }

  offer(ack: Ack, json: string): void {
    if (this.resuming) this.buffered.push({ ack, json });
    else this.send(ack, json);
  }

  send(ack: Ack, json = JSON.stringify(ack)): void {
    if (ack.cursor <= this.lastCursor || this.ws.readyState !== WebSocket.OPEN) return;
    this.lastCursor = ack.cursor;
    if (!this.corked) this.server.cork(this);
    this.ws.send(json);
    this.server.sent(this, ack);
  }

  goLive(): void {
    this.resuming = false;
    const pending = this.buffered.sort((a, b) => a.ack.cursor - b.ack.cursor);
    this.buffered = [];
    for (const { ack, json } of pending) this.send(ack, json);
  }
}

export class AckServer {
  private readonly wss: WebSocketServer;
  private readonly byRoute = new Map<string, Set<AckConnection>>();
  /** Upgrades authorised but not yet open, counted against the per-principal limit. */
  private readonly pending = new Map<string, number>();
  private unsubscribe: (() => Promise<void>) | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  readonly metrics: AckMetrics;
  private readonly maxPerPrincipal: number;
  private readonly maxBuffered: number;
  private readonly maxMessage: number;
  private readonly closeGraceMs: number;
  /** Connections corked during this tick, uncorked together on the next one. */
  private corked: AckConnection[] = [];
  private readonly uncorkAll = () => {
    const list = this.corked;
    this.corked = [];
    for (const c of list) {
      c.corked = false;
      c.socket.uncork();
    }
  };
  /** Acks pushed since the last /metrics scrape (a plain add on the hot path; see AckMetrics). */
  pushedSinceScrape = 0;

  constructor(private readonly deps: AckServerDeps) {
    this.maxPerPrincipal = deps.maxConnectionsPerPrincipal ?? 20;
    this.maxBuffered = deps.maxBufferedBytes ?? 1024 * 1024;
    this.maxMessage = deps.maxMessageBytes ?? 4096;
    this.closeGraceMs = deps.closeGraceMs ?? 5000;
    // ws enforces a hard cap (closes 1009 without a reason, before buffering the frame); below it
    // onClientMessage closes 1009 with a reason naming the limit.
    this.wss = new WebSocketServer({ noServer: true, maxPayload: Math.max(64 * 1024, this.maxMessage * 4), perMessageDeflate: false });
    this.metrics = new AckMetrics(() => this.connectionCount(), () => {
      const n = this.pushedSinceScrape;
      this.pushedSinceScrape = 0;
      return n;
    });
  }

  async start(): Promise<void> {
    this.unsubscribe = await this.deps.acks.subscribe(
      (route, ack, json) => {
        const conns = this.byRoute.get(routeKey(route));
        if (!conns) return;
        for (const c of conns) c.offer(ack, json);
      },
      () => this.catchUpAll(),
      // Live delivery stopped: hold every connection's live acks back until the catch-up read, so
      // none can overtake (and, by cursor, hide) an ack published during the gap.
      () => this.pauseAll(),
    );
    this.heartbeat = setInterval(() => this.beat(), this.deps.heartbeatMs);
  }

  /** Answers an HTTP upgrade: 400/401/404/429 as plain HTTP before the upgrade, else a WebSocket. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    this.authorize(req).then(
      ({ principal, after, key }) => {
        if (socket.destroyed) {
          this.release(key);
          return;
        }
        this.wss.handleUpgrade(req, socket, head, (ws) => {
          this.release(key);
          this.accept(ws, socket, principal, after);
        });
      },
      (err: unknown) => {
        const problem = toProblemError(err);
        this.metrics.refused.inc({ status: String(problem.status) });
        rejectUpgrade(socket, problem);
      },
    );
  }

  private release(key: string) {
    const n = (this.pending.get(key) ?? 1) - 1;
    if (n <= 0) this.pending.delete(key);
    else this.pending.set(key, n);
  }

  private async authorize(req: IncomingMessage): Promise<{ principal: Principal; after: number | undefined; key: string }> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== ACK_PATH) throw new NotFoundError(`No WebSocket endpoint at ${url.pathname}; use ${ACK_PATH}.`);
    const queryToken = url.searchParams.get('access_token');
    const principal = queryToken
      ? await this.deps.verifier.verify(queryToken)
      : req.headers.authorization
        ? await this.deps.verifier.verifyHeader(req.headers.authorization)
        : (() => {
            throw new UnauthorizedError('Missing token: send "Authorization: Bearer <token>" or ?access_token=<token>.');
          })();
    const afterRaw = url.searchParams.get('after');
    let after: number | undefined;
    if (afterRaw !== null) {
      if (!/^(0|[1-9][0-9]{0,15})$/.test(afterRaw)) throw new BadRequestError('Query parameter "after" must be a cursor (a non-negative integer).');
      after = Number(afterRaw);
    }
    const key = routeKey({ tenant: principal.tenant, principal: principal.sub });
    const open = (this.byRoute.get(key)?.size ?? 0) + (this.pending.get(key) ?? 0);
    if (open >= this.maxPerPrincipal) {
      throw new TooManyRequestsError(
        `This principal already has ${open} open ack connections (limit ${this.maxPerPrincipal} per instance); close one first.`,
        5,
      );
    }
    this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
    return { principal, after, key };
  }

  private accept(ws: WebSocket, socket: Duplex, principal: Principal, after: number | undefined): void {
    const route: AckRoute = { tenant: principal.tenant, principal: principal.sub };
    const conn = new AckConnection(ws, socket, route, this);
    const key = routeKey(route);
    let set = this.byRoute.get(key);
    if (!set) this.byRoute.set(key, (set = new Set()));
    set.add(conn);
    ws.on('pong', () => {
      conn.alive = true;
    });
    // Oversized or invalid frames make ws emit 'error' (then it closes with 1009/1007/1002);
    // without a listener that error would crash the whole service.
    ws.on('error', (err) => this.deps.log.debug('client connection error', { err }));
    ws.on('close', () => {
      const s = this.byRoute.get(key);
      s?.delete(conn);
      if (s?.size === 0) this.byRoute.delete(key);
    });
    // ws reports protocol errors (e.g. a frame over maxPayload: it has already closed with 1009).
    ws.on('error', (err: Error & { code?: string }) => {
      this.metrics.badInput.inc({ code: err.code ?? 'error' });
      this.deps.log.debug('client protocol error', { code: err.code });
    });
    ws.on('message', (data: Buffer, isBinary) => this.onClientMessage(conn, data, isBinary));
    if (after === undefined) {
      conn.goLive();
      return;
    }
    this.metrics.resumes.inc();
    conn.lastCursor = after; // the client has everything up to its cursor
    this.resume(conn).catch((err: unknown) => {
      this.deps.log.error('resume failed', { err });
      ws.close(CLOSE.internalError, 'Could not read the ack history; reconnect with the same cursor.');
    });
  }

  private pauseAll(): void {
    for (const set of this.byRoute.values()) for (const conn of set) conn.pause();
  }

  /** Live delivery had a gap: every open connection re-reads the history after its last cursor. */
  private catchUpAll(): void {
    for (const set of this.byRoute.values()) {
      for (const conn of set) {
        this.resume(conn).catch((err: unknown) => {
          this.deps.log.error('catch-up resume failed', { err });
          conn.ws.close(1011, 'Could not read the ack history; reconnect with the same cursor.');
        });
      }
    }
  }

  /**
   * Re-reads the connection's history after its last cursor, then goes live. Reads of one
   * connection are queued, never concurrent: two interleaved reads (a resume and a gap catch-up)
   * would send a higher cursor first and the lower ones would then be dropped as already sent.
   * Live acks stay held back until the last queued read is done.
   */
  private resume(conn: AckConnection): Promise<void> {
    conn.pendingResumes++;
    conn.pause();
    const run = conn.resumeChain.then(() => this.readHistory(conn, conn.lastCursor)).finally(() => {
      if (--conn.pendingResumes === 0) conn.goLive();
    });
    conn.resumeChain = run.catch(() => undefined);
    return run;
  }

  private async readHistory(conn: AckConnection, after: number): Promise<void> {
    let from = after;
    for (;;) {
      const page = await this.deps.acks.readAfter(conn.route, from, this.deps.resumePageSize);
      if (page.kind === 'reset') {
        this.metrics.resets.inc({ reason: page.reason });
        if (conn.ws.readyState === WebSocket.OPEN) conn.ws.send(JSON.stringify({ type: 'reset', reason: page.reason, detail: page.detail, after }));
        // The client's cursor means nothing here (older than the history, or from a lost one):
        // live acks from now on go to it whatever their cursor.
        conn.lastCursor = 0;
        break;
      }
      for (const ack of page.acks) conn.send(ack);
      if (page.acks.length < this.deps.resumePageSize) break;
      from = page.acks.at(-1)!.cursor;
    }
  }

  /**
   * Holds a connection's writes until the end of the tick: acks fanned out from one Redis read (or
   * one resume page) to the same socket leave in one write syscall instead of one each. Frames and
   * their order are unchanged; bufferedAmount still counts the held bytes (slow-client bound).
   */
  cork(conn: AckConnection): void {
    conn.corked = true;
    conn.socket.cork();
    if (this.corked.push(conn) === 1) process.nextTick(this.uncorkAll);
  }

  /** Called after every ack written to a socket: metrics and the slow-client bound. */
  sent(conn: AckConnection, ack: Ack): void {
    this.pushedSinceScrape++;
    const at = Date.parse(ack.at);
    if (!Number.isNaN(at)) this.metrics.pushLatency.observe(Math.max(0, Date.now() - at) / 1000);
    if (conn.ws.bufferedAmount > this.maxBuffered) {
      // Bytes held by our own cork are not the client's slowness: flush them, then judge what the kernel refused.
      if (conn.corked) {
        conn.socket.uncork();
        conn.socket.cork();
      }
      if (conn.ws.bufferedAmount > this.maxBuffered) this.closeSlow(conn);
    }
  }

  private closeSlow(conn: AckConnection): void {
    this.metrics.slowClientCloses.inc();
    const ws = conn.ws;
    // The close frame queues behind the unread data; a client that never reads is cut off after the grace.
    ws.close(
      CLOSE.tryAgainLater,
      `Send buffer over ${this.maxBuffered} bytes: client not reading. Reconnect with ?after=<last cursor processed>.`,
    );
    const t = setTimeout(() => ws.terminate(), this.closeGraceMs);
    t.unref();
    ws.once('close', () => clearTimeout(t));
  }

  private onClientMessage(conn: AckConnection, data: Buffer, isBinary: boolean): void {
    const ws = conn.ws;
    if (isBinary) {
      this.metrics.badInput.inc({ code: String(CLOSE.unsupportedData) });
      ws.close(CLOSE.unsupportedData, 'Binary frames are not accepted; send JSON text.');
      return;
    }
    if (data.length > this.maxMessage) {
      this.metrics.badInput.inc({ code: String(CLOSE.messageTooBig) });
      ws.close(CLOSE.messageTooBig, `Message of ${data.length} bytes is over the ${this.maxMessage}-byte limit.`);
      return;
    }
    let msg: unknown;
    try {
      msg = JSON.parse(data.toString('utf8'));
    } catch {
      this.metrics.badInput.inc({ code: String(CLOSE.invalidPayload) });
      ws.close(CLOSE.invalidPayload, 'Messages must be JSON text.');
      return;
    }
    const type = msg !== null && typeof msg === 'object' ? (msg as { type?: unknown }).type : undefined;
    if (type === 'ping') {
      ws.send(JSON.stringify({ type: 'pong', cursor: conn.lastCursor }));
      return;
    }
    this.metrics.badInput.inc({ code: 'error' });
    ws.send(JSON.stringify({
      type: 'error',
      code: 'unknown_type',
      message: `Unknown message type ${JSON.stringify(type ?? null).slice(0, 64)}; the server accepts {"type":"ping"}.`,
    }));
  }

  private beat(): void {
    for (const set of this.byRoute.values()) {
      for (const conn of set) {
        if (!conn.alive) {
          this.metrics.deadTerminations.inc();
          conn.ws.terminate();
          continue;
        }
        conn.alive = false;
        conn.ws.ping();
      }
    }
  }

  connectionCount(): number {
    let n = 0;
    for (const s of this.byRoute.values()) n += s.size;
    return n;
  }

  async close(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.unsubscribe?.();
    for (const set of this.byRoute.values()) {
      for (const c of set) {
        c.ws.close(CLOSE.goingAway, 'Server shutting down; reconnect with your last cursor.');
        setTimeout(() => c.ws.terminate(), this.closeGraceMs).unref();
      }
    }
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

function rejectUpgrade(socket: Duplex, problem: ProblemError): void {
  if (socket.destroyed) return;
  const body = JSON.stringify(problem.toProblem());
  const headers = Object.entries(problem.headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  socket.end(
    `HTTP/1.1 ${problem.status} ${problem.title}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${headers}Connection: close\r\n\r\n${body}`,
  );
}

/** An HTTP server for /healthz and /metrics with the ack WebSocket on upgrade. */
/** A path prefix the HTTP server hands to a handler of its own (the operator console: ack-service/console/). */
export interface Mount {
  /** Answers `prefix` and `prefix/*`. */
  prefix: string;
  handle(req: IncomingMessage, res: ServerResponse): void;
  close(): Promise<void>;
}

export function createAckHttpServer(ack: AckServer, mounts: readonly Mount[] = []): Server {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const mount = mounts.find((m) => path === m.prefix || path.startsWith(`${m.prefix}/`));
    if (mount) {
      mount.handle(req, res);
      return;
    }
    if (req.method === 'GET' && path === '/metrics') {
      ack.metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'Content-Type': ack.metrics.registry.contentType }).end(text),
        () => res.writeHead(500, { 'Content-Type': 'application/problem+json' }).end(JSON.stringify(toProblemError(undefined).toProblem(req.url))),
      );
      return;
    }
    const problem = path === '/healthz' ? undefined : new NotFoundError(`No route for ${req.method} ${path}.`);
    const body = problem ? JSON.stringify(problem.toProblem(req.url)) : JSON.stringify({ status: 'ok', service: 'ack-service', connections: ack.connectionCount() });
    res.writeHead(problem ? 404 : 200, { 'Content-Type': problem ? 'application/problem+json' : 'application/json' }).end(body);
  });
  server.on('upgrade', (req, socket, head) => ack.handleUpgrade(req, socket, head));
  server.on('close', () => {
    for (const m of mounts) void m.close();
  });
  return server;
}
