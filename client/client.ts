/**
 * The Ackstream client: writes over REST, their `queued` and final acks over one resumable
 * WebSocket per client, and a REST status fallback when the ack history cannot be resumed.
 *
 *   const c = createClient({ gatewayUrl, readUrl, ackUrl, token });
 *   const w = await c.put('notes', 'n1', { title: 'hi' }, { idempotencyKey, ifMatch: 3 });
 *   await w.queued;
 *   const { version } = await w.committed; // rejects with WriteRejectedError on `rejected`
 *
 * Uses only fetch, URL, timers and the standard WebSocket API, so it runs in browsers and Node.
 */
import type { Ack, JsonObject, RequestStatus, WriteAccepted } from '../core/contracts';
import { checkDocumentValue, MAX_DOCUMENT_BYTES } from '../core/document';
import { ClientClosedError, HttpProblemError, InvalidDocumentError, WriteRejectedError } from './errors';
import { OPEN, resolveWebSocket, type MinimalWebSocket, type WebSocketConstructor } from './websocket';

export interface ClientOptions {
  /** Write API base URL, e.g. http://127.0.0.1:3000 */
  gatewayUrl: string;
  /** Read API base URL (request status fallback), e.g. http://127.0.0.1:3001 */
  readUrl: string;
  /** Ack service base URL, e.g. ws://127.0.0.1:3002 (the /v1/acks path is added when absent). */
  ackUrl: string;
  /** A JWT, or a function giving a fresh one (called for every request and reconnect). */
  token: string | (() => string | Promise<string>);
  /** Overrides the WebSocket implementation (default: the platform's, else `ws`). */
  WebSocket?: WebSocketConstructor;
  fetch?: typeof fetch;
  /** Reconnect backoff bounds (exponential with jitter). */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** How often pending writes are re-checked over REST after a reset (until their ack or status is final). */
  statusPollMs?: number;
  /** Application-level ping, so a dead connection is noticed where the platform hides ping frames. */
  pingIntervalMs?: number;
  /** Observes connection life: useful for logs and tests. */
  onEvent?: (event: ClientEvent) => void;
  /**
   * Every ack this principal receives, once, in cursor order (also those of writes made elsewhere,
   * e.g. by another client of the same principal): for tails and monitors.
   */
  onAck?: (ack: Ack) => void;
  /**
   * Start from the acks after this cursor (0 = all the history the ack service keeps) instead of
   * live only; once an ack is seen, reconnects resume from the last cursor as always.
   */
  after?: number;
}

export type ClientEvent =
  | { type: 'open'; after: number | undefined }
  | { type: 'close'; code: number; reason: string }
  | { type: 'reset'; reason: string; detail: string; after: number }
  | { type: 'error'; error: unknown };

export interface WriteOptions {
  idempotencyKey?: string;
  /** The version the item must have (`If-Match`); otherwise `rejected` with `version_conflict`. */
  ifMatch?: number;
  /** PUT only: create, never overwrite (`If-None-Match: *`). */
  ifNoneMatch?: boolean;
}

export interface Queued {
  requestId: string;
  /** Absent when the queued stage was learnt from the final ack or the REST status. */
  cursor?: number;
  /** The queued ack, when it came over the WebSocket. */
  ack?: Ack;
}

export interface Committed {
  requestId: string;
  version: number;
  at: string;
  /** The committed ack, when it came over the WebSocket. */
  ack?: Ack;
}

export interface WriteHandle {
  requestId: string;
  accepted: WriteAccepted;
  /** Resolves once the write is durable on the stream (also when only its final outcome is seen). */
  queued: Promise<Queued>;
  /** Resolves when committed; rejects with WriteRejectedError when rejected, ClientClosedError on close(). */
  committed: Promise<Committed>;
}

/** An attachment being added: its id, and the worker's outcome as a write's (committed = the item lists it). */
export interface AttachmentHandle {
  attachmentId: string;
  requestId: string;
  /** Resolves when committed; rejects with WriteRejectedError (e.g. `attachment_sha256_mismatch`). */
  committed: Promise<Committed>;
}

export interface AttachmentFile {
  name: string;
  contentType: string;
  bytes: Uint8Array<ArrayBuffer>;
  /** Hex sha256 of the bytes: the worker then checks it. */
  sha256?: string;
}

interface Pending {
  requestId: string;
  queued: Deferred<Queued>;
  committed: Deferred<Committed>;
  done: boolean;
}

class Deferred<T> {
  resolve!: (v: T) => void;
  reject!: (e: unknown) => void;
  readonly promise = new Promise<T>((res, rej) => {
    this.resolve = res;
    this.reject = rej;
  });
  constructor() {
    // Callers often await only one of queued/committed; never let the other become an unhandled rejection.
    this.promise.catch(() => undefined);
  }
}

/** Acks for requests whose 202 has not come back yet are kept this long, at most this many. */
const EARLY_ACK_TTL_MS = 60_000;
const EARLY_ACK_MAX = 10_000;

export class AckstreamClient {
  private readonly WS: WebSocketConstructor;
  private readonly fetch: typeof fetch;
  private ws: MinimalWebSocket | undefined;
  private connecting: Promise<void> | undefined;
  private closed = false;
  private attempts = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private pollTimer: ReturnType<typeof setTimeout> | undefined;
  private heardSincePing = true;
  /** Connections opened so far. */
  private opens = 0;
  /** Connections opened without a cursor (nothing to resume from). */
  private uncursoredOpens = 0;
  private readonly pending = new Map<string, Pending>();
  /** Acks that arrived before their write's 202 (the WebSocket can beat the HTTP answer). */
  private readonly early = new Map<string, { acks: Ack[]; t: number }>();
  /** Requests whose outcome must be fetched over REST (after a reset or an uncursored reconnect). */
  private readonly needStatus = new Set<string>();
  /** The last ack cursor seen; reconnects resume from it. */
  cursor = 0;

  constructor(private readonly opts: ClientOptions) {
    this.WS = resolveWebSocket(opts.WebSocket);
    this.fetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** Opens the ack connection (writes do this themselves); resolves once it is open. */
  connect(): Promise<void> {
    if (this.closed) return Promise.reject(new ClientClosedError());
    if (this.ws?.readyState === OPEN) return Promise.resolve();
    this.connecting ??= this.open().finally(() => {
      this.connecting = undefined;
    });
    // One refused attempt does not fail a caller: the reconnect loop keeps trying; wait for it.
    return this.connecting.catch((err: unknown) => {
      if (this.closed) throw err;
      return this.waitOpen();
    });
  }

  put(collection: string, id: string, data: JsonObject, options: WriteOptions = {}): Promise<WriteHandle> {
    return this.write('PUT', collection, id, data, 'application/json', options);
  }

  patch(collection: string, id: string, mergePatch: JsonObject, options: WriteOptions = {}): Promise<WriteHandle> {
    return this.write('PATCH', collection, id, mergePatch, 'application/merge-patch+json', options);
  }

  delete(collection: string, id: string, options: WriteOptions = {}): Promise<WriteHandle> {
    return this.write('DELETE', collection, id, undefined, undefined, options);
  }

  /**
   * Adds a file to an item (issue #16): asks the gateway for a presigned upload, PUTs the bytes
   * straight to the object store, and resolves `committed` once the worker's check is committed.
   */
  async attach(collection: string, id: string, file: AttachmentFile, options: Pick<WriteOptions, 'idempotencyKey'> = {}): Promise<AttachmentHandle> {
    if (this.closed) throw new ClientClosedError();
    if (this.opens === 0) await this.connect();
    const headers: Record<string, string> = { authorization: `Bearer ${await this.token()}`, 'content-type': 'application/json' };
    if (options.idempotencyKey !== undefined) headers['idempotency-key'] = options.idempotencyKey;
    const url = `${trimSlash(this.opts.gatewayUrl)}/v1/collections/${encodeURIComponent(collection)}/items/${encodeURIComponent(id)}/attachments`;
    const body = { name: file.name, contentType: file.contentType, size: file.bytes.byteLength, ...(file.sha256 ? { sha256: file.sha256 } : {}) };
    const res = await this.fetch(url, { method: 'POST', headers, body: JSON.stringify(body) });
    if (res.status !== 201) throw new HttpProblemError(res.status, await problemOf(res));
    const created = (await res.json()) as { attachmentId: string; requestId: string; upload: { url: string; method: string; headers: Record<string, string> } };
    // Registered before the upload: the worker's ack may come back before the PUT's answer does.
    const p: Pending = { requestId: created.requestId, queued: new Deferred(), committed: new Deferred(), done: false };
    this.pending.set(p.requestId, p);
    this.needStatus.add(p.requestId); // no 202/queued for this request: also look its outcome up over REST
    this.schedulePoll(this.opts.statusPollMs ?? 1000);
    const put = await this.fetch(created.upload.url, { method: created.upload.method, headers: created.upload.headers, body: file.bytes });
    if (!put.ok) {
      this.pending.delete(p.requestId);
      this.needStatus.delete(p.requestId);
      throw new HttpProblemError(put.status, { type: 'about:blank', title: 'Upload refused by the object store', status: put.status, detail: await put.text() });
    }
    return { attachmentId: created.attachmentId, requestId: created.requestId, committed: p.committed.promise };
  }

  /** Removes an attachment (a write: committed with the item's next version; its bytes are then removed). */
  removeAttachment(collection: string, id: string, attachmentId: string, options: WriteOptions = {}): Promise<WriteHandle> {
    return this.write('DELETE', collection, id, undefined, undefined, options, `/attachments/${encodeURIComponent(attachmentId)}`);
  }

  /** GET /v1/requests/{id} on the read API; undefined while the request is not known there. */
  async requestStatus(requestId: string): Promise<RequestStatus | undefined> {
    const res = await this.fetch(`${trimSlash(this.opts.readUrl)}/v1/requests/${encodeURIComponent(requestId)}`, {
      headers: { authorization: `Bearer ${await this.token()}` },
    });
    if (res.status === 404) return undefined;
    if (!res.ok) throw new HttpProblemError(res.status, await problemOf(res));
    return (await res.json()) as RequestStatus;
  }

  /** Closes the connection; writes still waiting reject with ClientClosedError. */
  close(): void {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.pollTimer);
    clearInterval(this.pingTimer);
    const ws = this.ws;
    this.ws = undefined;
    if (ws) {
      ws.onclose = null;
      ws.close(1000, 'client closed');
    }
    for (const p of this.pending.values()) {
      const err = new ClientClosedError(p.requestId);
      p.queued.reject(err);
      p.committed.reject(err);
    }
    this.pending.clear();
  }

  private async write(method: string, collection: string, id: string, body: JsonObject | undefined, contentType: string | undefined, o: WriteOptions, suffix = ''): Promise<WriteHandle> {
    if (this.closed) throw new ClientClosedError();
    // JSON.stringify would silently turn NaN into null, drop undefined members, or send a lone
    // surrogate the gateway refuses: check the document rules first, so nothing is sent for it.
    if (body !== undefined) {
      const violation = checkDocumentValue(body, { maxBytes: MAX_DOCUMENT_BYTES });
      if (violation) throw new InvalidDocumentError(violation);
    }
    // The first write waits for the socket, so its acks are seen live. Later writes do not wait for a
    // reconnect: the resume from the cursor replays their acks (or, failing that, REST status does).
    if (this.opens === 0) await this.connect();
    else if (this.ws?.readyState !== OPEN) this.connect().catch(() => undefined);
    const uncursoredBefore = this.uncursoredOpens;
    const unresumable = this.ws?.readyState !== OPEN && this.cursor === 0;
    const headers: Record<string, string> = { authorization: `Bearer ${await this.token()}` };
    if (contentType) headers['content-type'] = contentType;
    if (o.idempotencyKey !== undefined) headers['idempotency-key'] = o.idempotencyKey;
    if (o.ifMatch !== undefined) headers['if-match'] = `"${o.ifMatch}"`;
    if (o.ifNoneMatch) headers['if-none-match'] = '*';
    const url = `${trimSlash(this.opts.gatewayUrl)}/v1/collections/${encodeURIComponent(collection)}/items/${encodeURIComponent(id)}${suffix}`;
    const res = await this.fetch(url, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    if (res.status !== 202) throw new HttpProblemError(res.status, await problemOf(res));
    const accepted = (await res.json()) as WriteAccepted;
    if (this.closed) throw new ClientClosedError(accepted.requestId);
    const p: Pending = { requestId: accepted.requestId, queued: new Deferred(), committed: new Deferred(), done: false };
    this.pending.set(p.requestId, p);
    if (unresumable || this.uncursoredOpens !== uncursoredBefore) {
      // Written while disconnected with no cursor, or across a reconnect without one: a resume
      // cannot replay this write's acks, so its outcome is also looked up over REST.
      this.needStatus.add(p.requestId);
      this.schedulePoll(this.opts.statusPollMs ?? 1000);
    }
    const early = this.early.get(p.requestId);
    if (early) {
      this.early.delete(p.requestId);
      for (const ack of early.acks) this.apply(p, ack);
    }
    return { requestId: p.requestId, accepted, queued: p.queued.promise, committed: p.committed.promise };
  }

  private async token(): Promise<string> {
    return typeof this.opts.token === 'string' ? this.opts.token : this.opts.token();
  }

  private async open(): Promise<void> {
    const base = trimSlash(this.opts.ackUrl);
    const url = new URL(/\/v1\/acks$/.test(base) ? base : `${base}/v1/acks`);
    url.searchParams.set('access_token', await this.token()); // browsers cannot set headers on a WebSocket
    const after = this.cursor > 0 ? this.cursor : this.opts.after;
    if (after !== undefined) url.searchParams.set('after', String(after));
    else if (this.pending.size > 0) {
      // Never had a cursor, yet writes are waiting: acks sent while disconnected cannot be replayed.
      for (const id of this.pending.keys()) this.needStatus.add(id);
    }
    if (after === undefined) this.uncursoredOpens++;
    const ws = new this.WS(url.toString());
    this.ws = ws;
    await new Promise<void>((resolve, reject) => {
      let opened = false;
      ws.onopen = () => {
        opened = true;
        this.opens++;
        this.attempts = 0;
        this.heardSincePing = true;
        this.startPing();
        this.emit({ type: 'open', after });
        if (this.needStatus.size) this.schedulePoll(0);
        resolve();
      };
      ws.onmessage = (ev) => {
        this.heardSincePing = true;
        if (typeof ev.data === 'string') this.onMessage(ev.data);
      };
      ws.onerror = (ev) => this.emit({ type: 'error', error: ev });
      ws.onclose = (ev) => {
        if (this.ws === ws) this.ws = undefined;
        clearInterval(this.pingTimer);
        this.emit({ type: 'close', code: ev.code, reason: ev.reason });
        if (!this.closed) this.scheduleReconnect(ev.code);
        if (!opened) reject(new Error(`ack connection failed (${ev.code})`));
      };
    });
  }

  private waitOpen(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const check = () => {
        if (this.closed) return reject(new ClientClosedError());
        if (this.ws?.readyState === OPEN) return resolve();
        setTimeout(check, 20);
      };
      check();
    });
  }

  private scheduleReconnect(code: number): void {
    clearTimeout(this.reconnectTimer);
    const min = this.opts.reconnectMinMs ?? 100;
    const max = this.opts.reconnectMaxMs ?? 5000;
    // A slow-client close (1013) means "read faster": come back at once, from the cursor.
    const delay = code === 1013 && this.attempts === 0 ? 0 : Math.min(max, min * 2 ** this.attempts) * (0.5 + Math.random() / 2);
    this.attempts++;
    this.reconnectTimer = setTimeout(() => {
      if (!this.closed && !this.ws) this.connect().catch((error: unknown) => this.emit({ type: 'error', error }));
    }, delay);
  }

  private startPing(): void {
    clearInterval(this.pingTimer);
    const every = this.opts.pingIntervalMs ?? 25_000;
    this.pingTimer = setInterval(() => {
      const ws = this.ws;
      if (!ws || ws.readyState !== OPEN) return;
      if (!this.heardSincePing) {
        ws.close(4000, 'no answer to ping'); // onclose reconnects from the cursor
        return;
      }
      this.heardSincePing = false;
      ws.send('{"type":"ping"}');
    }, every);
  }

  private onMessage(text: string): void {
    let msg: { type?: string; [k: string]: unknown };
    try {
      msg = JSON.parse(text) as typeof msg;
    } catch {
      return;
    }
    if (msg.type === 'ack') {
      const ack = msg as unknown as Ack;
      if (ack.cursor <= this.cursor) return; // already seen (replay overlap)
      this.cursor = ack.cursor;
      this.opts.onAck?.(ack);
      const p = this.pending.get(ack.requestId);
      if (p) this.apply(p, ack);
      else this.keepEarly(ack);
    } else if (msg.type === 'reset') {
      this.emit({ type: 'reset', reason: String(msg.reason), detail: String(msg.detail), after: Number(msg.after) });
      // The server could not replay: anything still pending is looked up over REST.
      for (const id of this.pending.keys()) this.needStatus.add(id);
      this.schedulePoll(0);
    }
  }

  private keepEarly(ack: Ack): void {
    const now = Date.now();
    const entry = this.early.get(ack.requestId);
    if (entry) entry.acks.push(ack);
    else this.early.set(ack.requestId, { acks: [ack], t: now });
    // Acks of this principal's other clients also land here: keep the map bounded and short-lived.
    for (const [id, e] of this.early) {
      if (this.early.size <= EARLY_ACK_MAX && now - e.t < EARLY_ACK_TTL_MS) break;
      this.early.delete(id);
    }
  }

  private apply(p: Pending, ack: Ack): void {
    if (p.done) return;
    if (ack.stage === 'queued') {
      p.queued.resolve({ requestId: p.requestId, cursor: ack.cursor, ack });
      return;
    }
    this.settle(p, ack.stage, ack.version, ack.reason, ack.at, ack);
  }

  private settle(p: Pending, stage: 'committed' | 'rejected', version: number | undefined, reason: Ack['reason'], at: string, ack?: Ack): void {
    p.done = true;
    this.pending.delete(p.requestId);
    this.needStatus.delete(p.requestId);
    p.queued.resolve({ requestId: p.requestId }); // a final outcome implies it was queued (no-op if already resolved)
    if (stage === 'committed') p.committed.resolve({ requestId: p.requestId, version: version ?? 0, at, ...(ack ? { ack } : {}) });
    else p.committed.reject(new WriteRejectedError(p.requestId, reason ?? { code: 'invalid_command', message: 'rejected' }, ack));
  }

  private schedulePoll(delay: number): void {
    clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(() => {
      this.pollStatuses().catch((error: unknown) => this.emit({ type: 'error', error })).finally(() => {
        if (!this.closed && this.needStatus.size) this.schedulePoll(this.opts.statusPollMs ?? 1000);
      });
    }, delay);
  }

  private async pollStatuses(): Promise<void> {
    for (const id of [...this.needStatus]) {
      const p = this.pending.get(id);
      if (!p) {
        this.needStatus.delete(id);
        continue;
      }
      const s = await this.requestStatus(id);
      if (!s || p.done) continue;
      if (s.status === 'queued') p.queued.resolve({ requestId: id });
      else this.settle(p, s.status, s.version, s.reason, s.at);
    }
  }

  private emit(e: ClientEvent): void {
    this.opts.onEvent?.(e);
  }
}

export function createClient(options: ClientOptions): AckstreamClient {
  return new AckstreamClient(options);
}

const trimSlash = (u: string) => u.replace(/\/+$/, '');

async function problemOf(res: Response): Promise<HttpProblemError['problem']> {
  const text = await res.text();
  try {
    return JSON.parse(text) as HttpProblemError['problem'];
  } catch {
    return { title: res.statusText, detail: text.slice(0, 500) };
  }
}
