/**
 * The ack WebSocket service (`ws` in noServer mode, so auth happens before the upgrade).
 * Each connection gets only its principal's acks, in cursor order, with no duplicates; a client
 * reconnecting with `?after=<cursor>` first gets what it missed, then live acks.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import type { AckLog } from '../core/ack-log';
import { type Principal, type TokenVerifier } from '../core/auth';
import type { Ack, AckRoute } from '../core/contracts';
import { BadRequestError, NotFoundError, ProblemError, toProblemError, UnauthorizedError } from '../core/errors';
import type { Logger } from '../core/log';

export interface AckServerDeps {
  acks: AckLog;
  verifier: TokenVerifier;
  log: Logger;
  heartbeatMs: number;
  replayPageSize: number;
}

export const ACK_PATH = '/v1/acks';

const routeKey = (r: AckRoute) => `${r.tenant}\u0000${r.principal}`;

/** One client connection: sends acks strictly above its last cursor, buffering live ones while it replays. */
class AckConnection {
  lastCursor = 0;
  alive = true;
  private replaying = true;
  private buffered: Ack[] = [];

  constructor(
    readonly ws: WebSocket,
    readonly route: AckRoute,
  ) {}

  /** Live acks are held back while the history after `lastCursor` is (re)read. */
  pause(): void {
    this.replaying = true;
  }

  offer(ack: Ack): void {
    if (this.replaying) this.buffered.push(ack);
    else this.send(ack);
  }

  send(ack: Ack): void {
    if (ack.cursor <= this.lastCursor || this.ws.readyState !== WebSocket.OPEN) return;
    this.lastCursor = ack.cursor;
    this.ws.send(JSON.stringify(ack));
  }

  goLive(): void {
    this.replaying = false;
    const pending = this.buffered.sort((a, b) => a.cursor - b.cursor);
    this.buffered = [];
    for (const ack of pending) this.send(ack);
  }
}

export class AckServer {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  private readonly byRoute = new Map<string, Set<AckConnection>>();
  private unsubscribe: (() => Promise<void>) | undefined;
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(private readonly deps: AckServerDeps) {}

  async start(): Promise<void> {
    this.unsubscribe = await this.deps.acks.subscribe(
      (route, ack) => {
        const conns = this.byRoute.get(routeKey(route));
        if (conns) for (const c of conns) c.offer(ack);
      },
      () => this.catchUpAll(),
    );
    this.heartbeat = setInterval(() => this.beat(), this.deps.heartbeatMs);
  }

  /** Answers an HTTP upgrade: 401/400/404 as plain HTTP before the upgrade, else a WebSocket. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.authorize(req).then(
      ({ principal, after }) => {
        this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, principal, after));
      },
      (err: unknown) => rejectUpgrade(socket, toProblemError(err)),
    );
  }

  private async authorize(req: IncomingMessage): Promise<{ principal: Principal; after: number | undefined }> {
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
    return { principal, after };
  }

  private accept(ws: WebSocket, principal: Principal, after: number | undefined): void {
    const route: AckRoute = { tenant: principal.tenant, principal: principal.sub };
    const conn = new AckConnection(ws, route);
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
      set.delete(conn);
      if (set.size === 0) this.byRoute.delete(key);
    });
    ws.on('message', (data, isBinary) => this.onClientMessage(conn, data.toString(), isBinary));
    if (after === undefined) {
      conn.goLive();
      return;
    }
    this.replay(conn, after).catch((err: unknown) => {
      this.deps.log.error('replay failed', { err });
      ws.close(1011, 'Could not read the ack history; reconnect with the same cursor.');
    });
  }

  /** Live delivery had a gap: every open connection re-reads the history after its last cursor. */
  private catchUpAll(): void {
    for (const set of this.byRoute.values()) {
      for (const conn of set) {
        conn.pause();
        this.replay(conn, conn.lastCursor).catch((err: unknown) => {
          this.deps.log.error('catch-up replay failed', { err });
          conn.ws.close(1011, 'Could not read the ack history; reconnect with the same cursor.');
        });
      }
    }
  }

  private async replay(conn: AckConnection, after: number): Promise<void> {
    let from = after;
    for (;;) {
      const page = await this.deps.acks.readAfter(conn.route, from, this.deps.replayPageSize);
      if (page.kind === 'reset') {
        conn.ws.send(JSON.stringify({ type: 'reset', reason: page.reason, detail: page.detail, after }));
        break;
      }
      for (const ack of page.acks) conn.send(ack);
      if (page.acks.length < this.deps.replayPageSize) break;
      from = page.acks.at(-1)!.cursor;
    }
    conn.goLive();
  }

  private onClientMessage(conn: AckConnection, text: string, isBinary: boolean): void {
    if (isBinary) {
      conn.ws.close(1003, 'Binary frames are not accepted; send JSON text.');
      return;
    }
    let msg: { type?: unknown };
    try {
      msg = JSON.parse(text) as { type?: unknown };
    } catch {
      conn.ws.close(1007, 'Messages must be JSON.');
      return;
    }
    if (msg?.type === 'ping') {
      conn.ws.send(JSON.stringify({ type: 'pong', cursor: conn.lastCursor }));
      return;
    }
    conn.ws.send(JSON.stringify({ type: 'error', code: 'unknown_type', message: 'Unknown message type; the server accepts {"type":"ping"}.' }));
  }

  private beat(): void {
    for (const set of this.byRoute.values()) {
      for (const conn of set) {
        if (!conn.alive) {
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
    for (const set of this.byRoute.values()) for (const c of set) c.ws.close(1001, 'Server shutting down; reconnect with your last cursor.');
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

function rejectUpgrade(socket: Duplex, problem: ProblemError): void {
  const body = JSON.stringify(problem.toProblem());
  const headers = Object.entries(problem.headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  socket.end(
    `HTTP/1.1 ${problem.status} ${problem.title}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${headers}Connection: close\r\n\r\n${body}`,
  );
}

/** An HTTP server for /healthz with the ack WebSocket on upgrade. */
export function createAckHttpServer(ack: AckServer): Server {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const problem = path === '/healthz' ? undefined : new NotFoundError(`No route for ${req.method} ${path}.`);
    const body = problem ? JSON.stringify(problem.toProblem(req.url)) : JSON.stringify({ status: 'ok', service: 'ack-service', connections: ack.connectionCount() });
    res.writeHead(problem ? 404 : 200, { 'Content-Type': problem ? 'application/problem+json' : 'application/json' }).end(body);
  });
  server.on('upgrade', (req, socket, head) => ack.handleUpgrade(req, socket, head));
  return server;
}
