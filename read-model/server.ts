/**
 * The read API on bare node:http: three routes do not need a framework, and the hot path stays
 * lean (stored JSON is sent as-is, never parsed and re-serialised).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { z } from 'zod';
import type { TokenVerifier } from '../core/auth';
import { CollectionName, ItemId } from '../core/contracts';
import { BadRequestError, MethodNotAllowedError, NotFoundError, ProblemError, toProblemError } from '../core/errors';
import type { Logger } from '../core/log';
import type { ReadModelReader } from './reader';
import { InvalidCursorError } from './stores';

export interface ReadApiDeps {
  reader: ReadModelReader;
  verifier: TokenVerifier;
  log: Logger;
}

const ITEM = /^\/v1\/collections\/([^/]+)\/items\/([^/]+)$/;
const LIST = /^\/v1\/collections\/([^/]+)\/items$/;
const REQUEST = /^\/v1\/requests\/([^/]+)$/;
const Limit = z.coerce.number().int().min(1).max(100);
const RequestId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);

export function createReadServer(deps: ReadApiDeps): Server {
  return createServer((req, res) => {
    handle(deps, req, res).catch((err: unknown) => sendProblem(deps, req, res, err));
  });
}

async function handle(deps: ReadApiDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const path = url.pathname;
  if (path === '/healthz') return sendJson(res, 200, '{"status":"ok","service":"read-model"}');
  if (!path.startsWith('/v1/')) throw new NotFoundError(`No route for ${req.method} ${path}.`);
  if (req.method !== 'GET' && req.method !== 'HEAD') throw new MethodNotAllowedError(`${req.method} is not allowed on the read API.`, 'GET, HEAD');
  const principal = await deps.verifier.verifyHeader(req.headers.authorization);

  let m = ITEM.exec(path);
  if (m) {
    const collection = param(CollectionName, m[1]!, 'collection');
    const id = param(ItemId, m[2]!, 'id');
    const item = await deps.reader.getItem(principal.tenant, collection, id);
    if (!item || item.json === null) throw new NotFoundError(`Item ${collection}/${id} does not exist.`);
    const etag = `"${item.version}"`;
    res.setHeader('ETag', etag);
    res.setHeader('Cache-Control', 'private, no-cache');
    if (matchesEtag(req.headers['if-none-match'], etag)) {
      res.statusCode = 304;
      res.end();
      return;
    }
    return sendJson(res, 200, item.json);
  }

  m = LIST.exec(path);
  if (m) {
    const collection = param(CollectionName, m[1]!, 'collection');
    const limit = url.searchParams.has('limit') ? param(Limit, url.searchParams.get('limit')!, 'limit') : 20;
    const cursor = url.searchParams.get('cursor') ?? undefined;
    let page;
    try {
      page = await deps.reader.listItems(principal.tenant, collection, limit, cursor || undefined);
    } catch (err) {
      if (err instanceof InvalidCursorError) throw new BadRequestError(`Invalid query parameter "cursor": ${err.message}`);
      throw err;
    }
    res.setHeader('Cache-Control', 'private, no-cache');
    return sendJson(res, 200, `{"items":[${page.items.join(',')}],"nextCursor":${JSON.stringify(page.nextCursor)}}`);
  }

  m = REQUEST.exec(path);
  if (m) {
    const requestId = param(RequestId, m[1]!, 'requestId');
    const status = await deps.reader.getRequest(principal.tenant, requestId);
    if (!status) throw new NotFoundError(`Request ${requestId} is not known.`);
    res.setHeader('Cache-Control', 'no-store');
    return sendJson(res, 200, status);
  }
  throw new NotFoundError(`No route for ${req.method} ${path}.`);
}

function param<T>(schema: z.ZodType<T>, raw: string, name: string): T {
  let value: string;
  try {
    value = decodeURIComponent(raw);
  } catch {
    throw new BadRequestError(`Invalid path parameter "${name}": bad percent-encoding.`);
  }
  const out = schema.safeParse(value);
  if (!out.success) throw new BadRequestError(`Invalid parameter "${name}": ${out.error.issues[0]!.message}.`);
  return out.data;
}

function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(',').some((t) => {
    const tag = t.trim();
    return tag === '*' || tag === etag || tag === `W/${etag}`;
  });
}

function sendJson(res: ServerResponse, status: number, body: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
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
  res.statusCode = problem.status;
  for (const [k, v] of Object.entries(problem.headers)) res.setHeader(k, v);
  res.setHeader('Content-Type', 'application/problem+json');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}
