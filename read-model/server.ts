/**
 * The read API on bare node:http: four routes do not need a framework (express costs ≈ 200 µs per
 * request here), and the hot path stays lean: the path is split by hand (no URL object), names are
 * checked with one regex, verified tokens are cached, and the stored JSON is sent as-is, never
 * parsed and re-serialised.
 *
 * Caching: items carry `ETag: "<version>"` and `Cache-Control: private, no-cache`: a browser may
 * keep the copy but must revalidate every time (a cheap 304), because the item can change at any
 * moment and the data is per tenant (never in a shared cache). Listings get `private, no-cache`
 * without a validator; request status, which moves from queued to final within milliseconds,
 * gets `no-store`.
 */
import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { Principal } from '../core/auth';
import type { HeaderVerifier } from '../core/token-cache';
import { NAME_PATTERN } from '../core/contracts';
import { parseQuery } from '../core/document';
import { BadRequestError, ConflictError, MethodNotAllowedError, NotFoundError, ProblemError, toProblemError } from '../core/errors';
import type { Logger } from '../core/log';
import type { Registry } from '../core/metrics';
import type { ReadModelReader } from './reader';
import type { ItemAnswer } from '../core/read-store';
import { InvalidCursorError } from '../core/read-store';
import { InvalidTokenError, parseTokens, type StreamPosition } from '../core/read-store';

export interface ReadApiDeps {
  reader: ReadModelReader;
  verifier: HeaderVerifier;
  log: Logger;
  /** Served on `GET /metrics` (Prometheus text), like the other services. */
  metrics?: Registry;
  /** Longest wait for `minVersion` (items) or `consistentWith` (listings) before answering 409 (ms). */
  minVersionWaitMs?: number;
}

const REQUEST_ID = /^[A-Za-z0-9_-]{1,64}$/;
const LIMIT = /^[1-9][0-9]{0,2}$/;
const VERSION = /^[0-9]{1,10}$/;
const MAX_CURSOR = 1024;
const MAX_CONSISTENT_WITH = 8192;
const DEFAULT_LIMIT = 20;
const ITEM_CACHE = 'private, no-cache';
const HEALTH = Buffer.from('{"status":"ok","service":"read-model"}');

const enum Route {
  Item = 1,
  List = 2,
  Request = 3,
}

/**
 * The hot path (an item GET whose token is cached and whose answer is in the near cache) runs
 * synchronously inside the request event, like a bare node:http handler: no async function, no
 * promise, no microtask. Anything else (a token to verify, a Redis or DynamoDB read, a
 * `minVersion` wait) continues asynchronously with the same rules.
 */
export function createReadServer(deps: ReadApiDeps): Server {
  const waitMs = deps.minVersionWaitMs ?? 2000;
  return createServer((req, res) => {
    let pending: Promise<void> | void;
    try {
      pending = handle(deps, waitMs, req, res);
    } catch (err) {
      sendProblem(deps, req, res, err);
      return;
    }
    if (pending !== undefined) pending.catch((err: unknown) => sendProblem(deps, req, res, err));
  });
}

/** Answers at once when it can; otherwise returns the promise of the answer. */
function handle(deps: ReadApiDeps, waitMs: number, req: IncomingMessage, res: ServerResponse): Promise<void> | void {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const query = q === -1 ? '' : url.slice(q + 1);
  if (path === '/healthz') return send(res, 200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }, HEALTH);
  if (path === '/metrics' && deps.metrics) {
    const registry = deps.metrics;
    return registry.metrics().then((text) => send(res, 200, { 'Content-Type': registry.contentType, 'Cache-Control': 'no-store' }, text));
  }
  // segments: ['', 'v1', 'collections', c, 'items', id?] or ['', 'v1', 'requests', id]
  const seg = path.split('/');
  const route = seg[1] !== 'v1' ? 0 : seg[2] === 'collections' && seg[4] === 'items' ? (seg.length === 6 ? Route.Item : seg.length === 5 ? Route.List : 0) : seg[2] === 'requests' && seg.length === 4 ? Route.Request : 0;
  if (route === 0) throw new NotFoundError(`No route for ${req.method} ${path}.`);
  if (req.method !== 'GET' && req.method !== 'HEAD') throw new MethodNotAllowedError(`${req.method} is not allowed on the read API.`, 'GET, HEAD');
  const authorization = req.headers.authorization;
  const known = deps.verifier.peekHeader?.(authorization);
  if (known !== undefined) return answer(deps, waitMs, req, res, route, seg, query, known);
  return deps.verifier.verifyHeader(authorization).then((principal) => answer(deps, waitMs, req, res, route, seg, query, principal));
}

function answer(deps: ReadApiDeps, waitMs: number, req: IncomingMessage, res: ServerResponse, route: Route, seg: string[], query: string, principal: Principal): Promise<void> | void {
  if (route === Route.Item) {
    const collection = name(seg[3]!, 'collection');
    const id = name(seg[5]!, 'id');
    const minVersion = minVersionOf(req, query);
    if (minVersion === 0) {
      const near = deps.reader.peekItem(principal.tenant, collection, id);
      if (near !== undefined) return sendItem(req, res, collection, id, near);
      return deps.reader.getItem(principal.tenant, collection, id).then((item) => sendItem(req, res, collection, id, item));
    }
    return deps.reader.getItemAtLeast(principal.tenant, collection, id, minVersion, waitMs).then((read) => {
      if (!read.reached) {
        const currentVersion = read.item?.version ?? 0;
        throw new ConflictError(
          `Item ${collection}/${id} has not reached version ${minVersion} within ${waitMs} ms; it is at version ${currentVersion}.`,
          { currentVersion },
        );
      }
      sendItem(req, res, collection, id, read.item);
    });
  }
  if (route === Route.List) return list(deps, waitMs, res, seg[3]!, query, principal);
  return requestStatus(deps, res, seg[3]!, principal);
}

/** An item's answer: 404 when absent or deleted, 304 when the client's copy is current, else the stored JSON. */
function sendItem(req: IncomingMessage, res: ServerResponse, collection: string, id: string, item: ItemAnswer | undefined): void {
  if (item === undefined || item.body === null) throw new NotFoundError(`Item ${collection}/${id} does not exist.`);
  const etag = item.etag;
  const inm = req.headers['if-none-match'];
  if (inm !== undefined && matchesEtag(inm, etag)) {
    res.writeHead(304, ['ETag', etag, 'Cache-Control', ITEM_CACHE, 'Vary', 'Authorization']);
    res.end();
    return;
  }
  // The flat [name, value, ...] form: writeHead walks it without enumerating an object's keys.
  res.writeHead(200, ['Content-Type', 'application/json', 'ETag', etag, 'Cache-Control', ITEM_CACHE, 'Vary', 'Authorization', 'Content-Length', item.body.length]);
  res.end(req.method === 'HEAD' ? undefined : item.body);
}

async function list(deps: ReadApiDeps, waitMs: number, res: ServerResponse, rawCollection: string, query: string, principal: Principal): Promise<void> {
  const collection = name(rawCollection, 'collection');
  const params = queryParams(query);
  const rawLimit = params.get('limit') ?? null;
  if (rawLimit !== null && (!LIMIT.test(rawLimit) || Number(rawLimit) > 100)) {
    throw new BadRequestError('Invalid query parameter "limit": must be an integer from 1 to 100.');
  }
  const limit = rawLimit === null ? DEFAULT_LIMIT : Number(rawLimit);
  const cursor = params.get('cursor') || undefined;
  if (cursor !== undefined && cursor.length > MAX_CURSOR) throw new BadRequestError('Invalid query parameter "cursor": The cursor is not one this API returned.');
  const rawAfter = params.get('consistentWith') ?? null;
  let after: StreamPosition[] | undefined;
  if (rawAfter !== null) {
    if (rawAfter.length > MAX_CONSISTENT_WITH) throw new BadRequestError(`Invalid query parameter "consistentWith": longer than ${MAX_CONSISTENT_WITH} characters (send the highest token per shard).`);
    try {
      after = parseTokens(rawAfter);
    } catch (err) {
      if (err instanceof InvalidTokenError) throw new BadRequestError(`Invalid query parameter "consistentWith": ${err.message}.`);
      throw err;
    }
  }
  let page;
  try {
    page = after
      ? await deps.reader.listItemsAfter(principal.tenant, collection, limit, cursor, after, waitMs)
      : await deps.reader.listItems(principal.tenant, collection, limit, cursor);
  } catch (err) {
    if (err instanceof InvalidCursorError) throw new BadRequestError(`Invalid query parameter "cursor": ${err.message}`);
    throw err;
  }
  if (page === undefined) {
    throw new ConflictError(`The listing of ${collection} has not caught up with the writes in "consistentWith" within ${waitMs} ms; retry (their items are readable by id already).`);
  }
  const body = `{"items":[${page.items.join(',')}],"nextCursor":${page.nextCursor === null ? 'null' : `"${page.nextCursor}"`}}`;
  send(res, 200, { 'Content-Type': 'application/json', 'Cache-Control': ITEM_CACHE, Vary: 'Authorization' }, body);
}

async function requestStatus(deps: ReadApiDeps, res: ServerResponse, requestId: string, principal: Principal): Promise<void> {
  if (!REQUEST_ID.test(requestId)) throw new BadRequestError('Invalid path parameter "requestId": must match ^[A-Za-z0-9_-]{1,64}$.');
  const status = await deps.reader.getRequest(principal.tenant, requestId);
  if (!status) throw new NotFoundError(`Request ${requestId} is not known.`);
  send(res, 200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }, status);
}

/** The query string under the document rules (core/document.ts): strict UTF-8, no U+0000, no parameter twice. */
function queryParams(query: string): Map<string, string> {
  const params = parseQuery(query);
  if (params instanceof Map) return params;
  throw new BadRequestError(`Invalid query string: ${params.message}`, { rule: params.rule, pointer: params.pointer });
}

/** A collection or item id from the path; percent-decoding only when there is a `%`. */
function name(raw: string, what: string): string {
  let value = raw;
  if (raw.includes('%')) {
    try {
      value = decodeURIComponent(raw);
    } catch {
      throw new BadRequestError(`Invalid path parameter "${what}": bad percent-encoding.`);
    }
  }
  if (!NAME_PATTERN.test(value)) throw new BadRequestError(`Invalid path parameter "${what}": must match ^[A-Za-z0-9_.-]{1,128}$.`);
  return value;
}

/** `?minVersion=N` or `X-Min-Version: N` (the larger if both); 0 = no wait. */
function minVersionOf(req: IncomingMessage, query: string): number {
  let v = 0;
  if (query !== '') {
    const raw = queryParams(query).get('minVersion');
    if (raw !== undefined) v = version(raw, 'query parameter "minVersion"');
  }
  const header = req.headers['x-min-version'];
  if (header !== undefined) v = Math.max(v, version(Array.isArray(header) ? header.join(',') : header, 'header "X-Min-Version"'));
  return v;
}

function version(raw: string, what: string): number {
  const n = Number(raw);
  if (!VERSION.test(raw) || n > 2_147_483_647) throw new BadRequestError(`Invalid ${what}: must be an integer from 0 to 2147483647.`);
  return n;
}

function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header === etag) return true;
  return header.split(',').some((t) => {
    const tag = t.trim();
    return tag === '*' || tag === etag || tag === `W/${etag}`;
  });
}

/** One writeHead with every header: cheaper than setHeader calls, and HEAD gets no body. */
function send(res: ServerResponse, status: number, headers: OutgoingHttpHeaders, body: string | Buffer | undefined): void {
  if (body !== undefined) headers['Content-Length'] = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  res.writeHead(status, headers);
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function sendProblem(deps: ReadApiDeps, req: IncomingMessage, res: ServerResponse, err: unknown): void {
  const problem = toProblemError(err);
  if (!(err instanceof ProblemError)) deps.log.error('unhandled error', { err, path: req.url });
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(problem.toProblem(req.url));
  send(res, problem.status, { ...problem.headers, 'Content-Type': 'application/problem+json', 'Cache-Control': 'no-store' }, body);
}
