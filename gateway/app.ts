/**
 * The write API (express): authenticate, authorise, rate-limit, validate, put the command on the
 * stream, answer 202, emit the `queued` ack. Nothing is put on the stream for a request that
 * fails any check; a write with an Idempotency-Key already seen is answered from its first outcome.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { z } from 'zod';
import type { AckLog } from '../core/ack-log';
import type { Principal } from '../core/auth';
import type { HeaderVerifier } from '../core/token-cache';
import { ATTACHMENTS_STATE_KEY } from '../core/attachments';
import { CollectionName, type Command, type CommandKind, ItemId, type WriteAccepted } from '../core/contracts';
import {
  BadRequestError,
  ForbiddenError,
  NotFoundError,
  PayloadTooLargeError,
  ProblemError,
  ServiceUnavailableError,
  toProblemError,
  TooManyRequestsError,
  UnprocessableError,
  UnsupportedMediaTypeError,
} from '../core/errors';
import type { Logger } from '../core/log';
import { metricsHandler } from '../core/metrics';
import { requestStatusWrite } from '../core/projections';
import type { HotStore } from '../core/read-store';
import { AttachmentIdParams, AttachmentParams, type AttachmentSettings, createUpload, downloadUrl } from './attachments';
import type { CommandStream, StreamPosition } from './command-stream';
import type { IdempotencyScope, IdempotencyStore } from './idempotency';
import { bodyText, parseJsonBody } from './json-body';
import type { GatewayMetrics } from './metrics';
import { QueuedAckBatcher } from './queued-acks';
import type { RateLimiter } from './rate-limit';

export interface GatewayDeps {
  stream: CommandStream;
  acks: AckLog;
  hot: HotStore;
  verifier: HeaderVerifier;
  log: Logger;
  maxBodyBytes: number;
  idempotency: IdempotencyStore;
  /** Absent: no rate limit. */
  rateLimiter?: RateLimiter;
  metrics?: GatewayMetrics;
  /** Attachments (gateway/attachments.ts); absent: the attachment routes answer 404. */
  attachments?: AttachmentSettings;
  /** Set when shutdown begins: new requests are answered 503. */
  lifecycle?: { closing: boolean };
}

/**
 * Roles (contract v1 compatible): a token without a `roles` claim may write. A token that carries
 * roles may write only if one of them is `writer`, `admin` or `operator`; e.g. `["reader"]` gets 403.
 */
export const WRITE_ROLES: ReadonlySet<string> = new Set(['writer', 'admin', 'operator']);

const Params = z.object({ collection: CollectionName, id: ItemId });
const WriteHeaders = z.object({
  'if-match': z.string().regex(/^"[1-9][0-9]{0,9}"$/, 'must be a quoted version, e.g. "3"').optional(),
  'if-none-match': z.literal('*', { message: 'must be *' }).optional(),
  'idempotency-key': z.string().regex(/^[\x21-\x7E]{1,255}$/, 'must be 1-255 printable ASCII characters without spaces').optional(),
  'x-trace-id': z.string().max(128, 'must be at most 128 characters').optional(),
});
type ItemWriteKind = Extract<CommandKind, 'put' | 'patch' | 'delete' | 'detach'>;
const CONTENT_TYPES: Record<Exclude<ItemWriteKind, 'delete' | 'detach'>, string[]> = {
  put: ['application/json'],
  patch: ['application/merge-patch+json', 'application/json'],
};
const ContentType = z.object({
  type: z.string(),
  charset: z.string().regex(/^utf-?8$/i, 'must be utf-8').optional(),
});

const ITEM_PATH = '/v1/collections/:collection/items/:id';
const ATTACHMENTS_PATH = `${ITEM_PATH}/attachments`;
const ATTACHMENT_PATH = `${ATTACHMENTS_PATH}/:attachmentId`;
const IDEMPOTENCY_POLL_MS = 10;

export function createGatewayApp(deps: GatewayDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const lifecycle = deps.lifecycle ?? { closing: false };
  // The acks of one PutRecords call's writes go to the ack log in one call per principal.
  const queuedAcks = new QueuedAckBatcher(deps.acks);

  // One structured line per request, plus the request metrics.
  const logRequest = (req: Request, res: Response, next: NextFunction) => {
    const start = process.hrtime.bigint();
    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      const route = req.route?.path === ITEM_PATH ? 'item' : (req.route?.path as string | undefined) ?? 'unmatched';
      const labels = { method: req.method, route, status: String(res.statusCode) };
      deps.metrics?.requests.inc(labels);
      deps.metrics?.latency.observe(labels, seconds);
      const quiet = route === '/metrics' || route === '/healthz';
      (quiet ? deps.log.debug : deps.log.info)('request', {
        requestId: res.locals.requestId ?? null,
        tenant: res.locals.tenant ?? null,
        method: req.method,
        path: req.path,
        status: res.statusCode,
        latencyMs: Math.round(seconds * 1e6) / 1e3,
        ...(res.locals.replayed ? { idempotentReplay: true } : {}),
      });
    });
    next();
  };
  app.use(logRequest);

  app.get('/healthz', (_req, res) => {
    if (lifecycle.closing) res.status(503).json({ status: 'closing', service: 'gateway' });
    else res.json({ status: 'ok', service: 'gateway' });
  });
  if (deps.metrics) app.get('/metrics', metricsHandler(deps.metrics.registry));

  // Raw bytes, so the size limit holds before parsing and syntax errors can name their position.
  const rawBody = express.raw({ type: () => true, limit: deps.maxBodyBytes });

  /**
   * express.raw's result for the plain request (no Content-Encoding, a Content-Length within the
   * limit, the request still open) read directly, without body-parser's and raw-body's machinery
   * (3.6 % of the gateway's CPU in a profile); every other request goes through express.raw, which
   * inflates, refuses a length above the limit (413) or an unknown encoding (415).
   */
  const readBody = (req: Request, res: Response): Promise<void> => {
    const h = req.headers;
    const encoding = h['content-encoding'];
    const length = h['content-length'] === undefined ? NaN : Number(h['content-length']);
    const open = !(req as { upgrade?: boolean }).upgrade && req.socket?.readable && !(req.complete && !req.readable);
    if ((encoding !== undefined && encoding.toLowerCase() !== 'identity') || h['transfer-encoding'] !== undefined
      || !(length <= deps.maxBodyBytes) || !open) return runMiddleware(rawBody, req, res);
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let received = 0;
      const done = (err?: unknown) => {
        req.off('data', onData).off('end', onEnd).off('aborted', onAborted).off('error', onAborted).off('close', onClose);
        if (err) reject(err);
        else {
          (req as { body?: unknown }).body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, received);
          resolve();
        }
      };
      const onData = (chunk: Buffer) => {
        received += chunk.length;
        chunks.push(chunk);
      };
      // What raw-body reports (the HTTP parser holds the body to its Content-Length, so only an abort ends it early).
      const onEnd = () => done(received === length ? undefined : Object.assign(new Error('request size did not match content length'), {
        type: 'request.size.invalid', status: 400, expected: length, length, received,
      }));
      const onAborted = () => done(Object.assign(new Error('request aborted'), { type: 'request.aborted', status: 400, expected: length, length, received }));
      const onClose = () => {
        if (!req.complete) onAborted();
      };
      req.on('data', onData).on('end', onEnd).on('aborted', onAborted).on('error', onAborted).on('close', onClose);
    });
  };

  const refuseWhileClosing = () => {
    if (lifecycle.closing) throw new ServiceUnavailableError('The gateway is shutting down; retry on another instance.', 1);
  };
  /**
   * What every write route checks before it reads a body, in this order: not shutting down (503),
   * the token (401), its roles (403), the tenant's rate (429), the path parameters and headers (400).
   */
  const writePreamble = async <P>(req: Request, res: Response, paramsSchema: z.ZodType<P>) => {
    refuseWhileClosing();
    const authorization = req.header('authorization');
    const principal = deps.verifier.peekHeader?.(authorization) ?? await deps.verifier.verifyHeader(authorization);
    res.locals.tenant = principal.tenant;
    authorise(principal);
    await rateLimit(deps, principal.tenant, res);
    return { principal, params: parse(paramsSchema, req.params, 'path parameter'), headers: writeHeaders(req) };
  };

  const write = (kind: ItemWriteKind) => async (req: Request, res: Response, next: NextFunction) => {
    try {
      const { principal, params, headers } = await writePreamble(req, res, Params);
      let data: Record<string, unknown> | undefined;
      if (kind === 'detach') {
        if (!deps.attachments) throw new NotFoundError(`No route for ${req.method} ${req.path}.`);
        data = { attachmentId: parse(AttachmentIdParams, req.params, 'path parameter').attachmentId };
      } else if (kind !== 'delete') {
        requireContentType(req, kind);
        await readBody(req, res);
        data = readObject(req.body);
        if (Object.hasOwn(data, ATTACHMENTS_STATE_KEY)) {
          throw new BadRequestError(`The top-level key "${ATTACHMENTS_STATE_KEY}" is reserved for the item's attachments (POST .../attachments adds one).`);
        }
      }
      const command: Command = {
        v: 1,
        requestId: randomUUID(),
        kind,
        tenant: principal.tenant,
        principal: principal.sub,
        collection: params.collection,
        id: params.id,
        ...(data ? { data } : {}),
        ...(headers['if-match'] !== undefined ? { ifMatch: Number(headers['if-match'].slice(1, -1)) } : {}),
        ...(headers['if-none-match'] !== undefined ? { ifNoneMatch: true as const } : {}),
        ...(headers['idempotency-key'] !== undefined ? { idempotencyKey: headers['idempotency-key'] } : {}),
        ...(headers['x-trace-id'] ? { traceId: headers['x-trace-id'] } : {}),
        receivedAt: new Date().toISOString(),
      };
      if (command.ifNoneMatch && command.kind !== 'put') {
        throw new BadRequestError('If-None-Match: * is only meaningful on PUT.');
      }
      const accepted = command.idempotencyKey
        ? await idempotentPut(deps, queuedAcks, command, res)
        : await queue(deps, queuedAcks, command);
      res.locals.requestId = accepted.requestId;
      if ((kind === 'delete' || kind === 'detach') && deps.attachments?.purge) {
        // The bytes go once the DELETE is committed (the worker waits for it); a lost job leaves orphans that `verify` reports.
        await deps.attachments.purge({ tenant: command.tenant, collection: command.collection, id: command.id, requestId: accepted.requestId,
          ...(kind === 'detach' ? { attachmentId: String(command.data?.attachmentId) } : {}) })
          .catch((err: unknown) => deps.log.warn('attachment purge job not sent', { requestId: accepted.requestId, err }));
      }
      if (lifecycle.closing) res.set('Connection', 'close');
      sendAccepted(res, accepted);
    } catch (err) {
      next(err);
    }
  };

  app.put(ITEM_PATH, write('put'));
  app.patch(ITEM_PATH, write('patch'));
  app.delete(ITEM_PATH, write('delete'));
  app.delete(ATTACHMENT_PATH, write('detach'));

  app.post(ATTACHMENTS_PATH, async (req, res, next) => {
    try {
      if (!deps.attachments) {
        refuseWhileClosing(); // a 503 while shutting down comes first, as on every write route
        throw new NotFoundError(`No route for ${req.method} ${req.path}: attachments are not configured.`);
      }
      const { principal, params, headers } = await writePreamble(req, res, AttachmentParams);
      requireContentType(req, 'attachment');
      await runMiddleware(rawBody, req, res);
      const answer = await createUpload(deps.attachments, deps.idempotency, {
        tenant: principal.tenant, principal: principal.sub, idempotencyKey: headers['idempotency-key'],
      }, params, readObject(req.body));
      res.locals.requestId = answer.requestId;
      res.status(201).location(`${req.path}/${answer.attachmentId}`).set('Cache-Control', 'no-store').json(answer);
    } catch (err) {
      next(err);
    }
  });

  app.get(ATTACHMENT_PATH, async (req, res, next) => {
    try {
      if (!deps.attachments) throw new NotFoundError(`No route for ${req.method} ${req.path}: attachments are not configured.`);
      // Any role of the tenant may read; the item and the key are looked up under the token's tenant only.
      const principal = await deps.verifier.verifyHeader(req.header('authorization'));
      res.locals.tenant = principal.tenant;
      const params = parse(AttachmentIdParams, req.params, 'path parameter');
      const url = await downloadUrl(deps.attachments, principal.tenant, params, req.query.thumbnail !== undefined);
      res.status(302).set('Cache-Control', 'no-store').location(url).end();
    } catch (err) {
      next(err);
    }
  });

  app.use((req, _res, next) => next(new NotFoundError(`No route for ${req.method} ${req.path}.`)));
  const onError = (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const problem = toProblemError(mapBodyParserError(err));
    if (problem.status >= 500 && !(err instanceof ProblemError)) deps.log.error('unhandled error', { err, path: req.path });
    if (lifecycle.closing) res.set('Connection', 'close');
    res.status(problem.status).set(problem.headers).type('application/problem+json').send(JSON.stringify(problem.toProblem(req.originalUrl)));
  };
  app.use(onError);

  /*
   * The item writes skip the router's walk over every layer (with the direct 202 and SigV4, −7.6 %
   * of the gateway's CPU per write, docs/PERFORMANCE.md):
   * a request whose method and path the router would give to exactly these handlers, with path
   * parameters it would decode to themselves (no %), goes straight to the same request-log
   * middleware, handler and error handler, with what the router would have set (params, route,
   * originalUrl, baseUrl). Any other spelling (case, trailing slash, percent-encoding, absolute
   * form) goes through the router as before.
   */
  const itemHandlers: Record<string, { handler: express.RequestHandler; route: unknown }> = {};
  for (const [method, kind] of [['PUT', 'put'], ['PATCH', 'patch'], ['DELETE', 'delete']] as const) {
    const layer = (app.router.stack as Array<{ route?: { path: string; methods: Record<string, boolean>; stack: Array<{ handle: express.RequestHandler }> } }>)
      .find((l) => l.route?.path === ITEM_PATH && l.route.methods[kind]);
    if (layer?.route?.stack.length === 1) itemHandlers[method] = { handler: layer.route.stack[0]!.handle, route: layer.route };
  }
  // express' app(req, res) looks app.handle up on every request.
  const withHandle = app as unknown as { handle: (req: IncomingMessage, res: ServerResponse, done?: NextFunction) => void };
  const routerHandle = withHandle.handle.bind(app);
  withHandle.handle = (rawReq, rawRes, done) => {
    const fast = itemHandlers[rawReq.method!];
    const m = fast && FAST_ITEM_PATH.exec(rawReq.url!);
    if (!fast || !m) return routerHandle(rawReq, rawRes, done);
    // What app.handle does before the router (x-powered-by is disabled).
    const req = rawReq as Request;
    const res = rawRes as Response;
    req.res = res;
    res.req = req;
    Object.setPrototypeOf(req, app.request);
    Object.setPrototypeOf(res, app.response);
    if (!res.locals) res.locals = Object.create(null) as Response['locals'];
    // What the router and the route set before they call the handler.
    req.baseUrl = '';
    req.originalUrl = req.originalUrl || req.url;
    req.params = { collection: m[1]!, id: m[2]! };
    (req as { route?: unknown }).route = fast.route;
    const fail = (err?: unknown) => onError(err ?? new NotFoundError(`No route for ${req.method} ${req.path}.`), req, res, () => undefined);
    // As express 5 does, a rejected handler promise goes to the error handler.
    logRequest(req, res, () => void Promise.resolve(fast.handler(req, res, fail)).catch(fail));
  };
  return app;
}

/** An item path the router matches to ITEM_PATH with both parameters decoded to themselves. */
const FAST_ITEM_PATH = /^\/v1\/collections\/([^/?#%]+)\/items\/([^/?#%]+)(?:\?.*)?$/;

/** What `res.status(202).location(url).json(accepted)` sends, without express' helpers: the same headers in the same order. */
function sendAccepted(res: Response, accepted: WriteAccepted): void {
  const body = JSON.stringify(accepted);
  res.statusCode = 202;
  res.setHeader('Location', `/v1/requests/${accepted.requestId}`);
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

/** The write headers, through zod only when one of them is there (most writes carry none). */
function writeHeaders(req: Request): z.infer<typeof WriteHeaders> {
  const h = req.headers;
  if (h['if-match'] === undefined && h['if-none-match'] === undefined && h['idempotency-key'] === undefined && h['x-trace-id'] === undefined) return {};
  return parse(WriteHeaders, h, 'header');
}

function authorise(principal: Principal) {
  if (principal.roles.length && !principal.roles.some((r) => WRITE_ROLES.has(r))) {
    throw new ForbiddenError(
      `The token's roles (${principal.roles.join(', ')}) do not allow writes: one of ${[...WRITE_ROLES].join(', ')} is needed.`,
    );
  }
}

async function rateLimit(deps: GatewayDeps, tenant: string, res: Response) {
  if (!deps.rateLimiter) return;
  const d = await deps.rateLimiter.take(tenant);
  const headers = {
    'RateLimit-Limit': String(d.limit),
    'RateLimit-Remaining': String(d.remaining),
    'RateLimit-Reset': String(d.resetSeconds),
  };
  if (!d.allowed) {
    throw new TooManyRequestsError(`Tenant ${tenant} exceeded its write rate of ${d.limit} per second.`, d.retryAfterSeconds, headers);
  }
  res.set(headers);
}

/** Puts the command; `queued` ack and status only once the stream accepted it. */
async function queue(deps: GatewayDeps, acks: QueuedAckBatcher, command: Command): Promise<WriteAccepted> {
  const position = await deps.stream.put(command);
  await emitQueued(deps, acks, command);
  return accepted(command.requestId, position);
}

const accepted = (requestId: string, p: StreamPosition): WriteAccepted => ({
  requestId, status: 'queued', shardId: p.shardId, sequenceNumber: p.sequenceNumber,
});

/**
 * Same key + same request from the same principal: one record, one request id. A racing request
 * waits for the owner's outcome; if the owner could not queue, the next one takes over with the
 * same request id (so even an ambiguous first put cannot become a second event).
 */
async function idempotentPut(deps: GatewayDeps, acks: QueuedAckBatcher, command: Command, res: Response): Promise<WriteAccepted> {
  const scope: IdempotencyScope = { tenant: command.tenant, principal: command.principal, key: command.idempotencyKey! };
  const fingerprint = createHash('sha256')
    .update(JSON.stringify([command.kind, command.collection, command.id, command.ifMatch ?? null, command.ifNoneMatch ?? null, command.data ?? null]))
    .digest('base64url');
  const giveUpAt = Date.now() + 30_000;
  for (;;) {
    const claim = await store(() => deps.idempotency.claim(scope, fingerprint, command.requestId));
    if (claim.kind === 'owner') {
      const cmd = { ...command, requestId: claim.requestId };
      let position: StreamPosition;
      try {
        position = await deps.stream.put(cmd);
      } catch (err) {
        await deps.idempotency.release(scope, cmd.requestId).catch((e: unknown) => deps.log.warn('idempotency release failed', { err: e }));
        throw err;
      }
      await deps.idempotency
        .complete(scope, { fingerprint, requestId: cmd.requestId, state: 'done', leaseUntil: 0, ...position })
        .catch((e: unknown) => deps.log.warn('idempotency completion not recorded', { requestId: cmd.requestId, err: e }));
      await emitQueued(deps, acks, cmd);
      return accepted(cmd.requestId, position);
    }
    const rec = claim.record;
    if (rec.fingerprint !== fingerprint) {
      throw new UnprocessableError(
        `Idempotency-Key "${scope.key}" was already used with a different request (request ${rec.requestId}); use a new key for a different write.`,
      );
    }
    if (rec.state === 'done' && rec.shardId && rec.sequenceNumber) {
      res.locals.replayed = true;
      deps.metrics?.idempotentReplays.inc();
      return accepted(rec.requestId, { shardId: rec.shardId, sequenceNumber: rec.sequenceNumber });
    }
    // Pending under another request's lease: wait for its outcome (bounded by the lease).
    if (Date.now() > giveUpAt) {
      throw new ServiceUnavailableError(`A request with Idempotency-Key "${scope.key}" is still in progress.`, 1);
    }
    await new Promise((r) => setTimeout(r, IDEMPOTENCY_POLL_MS));
  }
}

async function store<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ProblemError) throw err;
    throw new ServiceUnavailableError(`The idempotency store is unavailable (${(err as Error).message}); the write was not queued.`, 1);
  }
}

/** The `queued` ack and request status follow the stream's acceptance; if they fail, the write is still queued. */
async function emitQueued(deps: GatewayDeps, acks: QueuedAckBatcher, cmd: Command): Promise<void> {
  const at = new Date().toISOString();
  const results = await Promise.allSettled([
    acks.append(
      { tenant: cmd.tenant, principal: cmd.principal },
      {
        type: 'ack', stage: 'queued', requestId: cmd.requestId,
        ...(cmd.idempotencyKey ? { idempotencyKey: cmd.idempotencyKey } : {}),
        collection: cmd.collection, id: cmd.id, at,
      },
    ),
    deps.hot.putRequest(
      requestStatusWrite(cmd.tenant, { requestId: cmd.requestId, status: 'queued', collection: cmd.collection, id: cmd.id, at }),
    ),
  ]);
  for (const r of results) {
    if (r.status === 'rejected') deps.log.warn('queued ack or status not recorded', { requestId: cmd.requestId, err: r.reason });
  }
}

function requireContentType(req: Request, kind: Exclude<ItemWriteKind, 'delete' | 'detach'> | 'attachment') {
  const raw = req.header('content-type');
  const allowed = kind === 'attachment' ? ['application/json'] : CONTENT_TYPES[kind];
  const what = `Content-Type must be ${allowed.join(' or ')} for ${kind.toUpperCase()}`;
  if (!raw) throw new UnsupportedMediaTypeError(`${what}; the request has no Content-Type.`);
  const [type, ...params] = raw.split(';').map((s) => s.trim());
  const charset = params.find((p) => /^charset=/i.test(p))?.slice(8).replace(/^"|"$/g, '');
  const ct = ContentType.safeParse({ type: type!.toLowerCase(), ...(charset !== undefined ? { charset } : {}) });
  if (!ct.success) throw new UnsupportedMediaTypeError(`Content-Type charset ${charset} is not supported: it must be utf-8.`);
  if (!allowed.includes(ct.data.type)) throw new UnsupportedMediaTypeError(`${what}, not ${ct.data.type}.`);
}

function readObject(body: unknown): Record<string, unknown> {
  const text = Buffer.isBuffer(body) ? bodyText(body) : '';
  if (!text.trim()) throw new BadRequestError('The request body is empty: a JSON object is required.');
  const value = parseJsonBody(text);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    const kind = value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
    throw new BadRequestError(`The request body must be a JSON object, not ${kind}.`);
  }
  return value as Record<string, unknown>;
}

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const out = schema.safeParse(value);
  if (out.success) return out.data;
  const issue = out.error.issues[0]!;
  const name = issue.path.join('.');
  const label = what === 'header' ? headerName(name) : name;
  throw new BadRequestError(`Invalid ${what} ${label}: ${issue.message}.`);
}

const HEADER_NAMES: Record<string, string> = {
  'if-match': 'If-Match', 'if-none-match': 'If-None-Match', 'idempotency-key': 'Idempotency-Key', 'x-trace-id': 'X-Trace-Id',
};
const headerName = (h: string) => HEADER_NAMES[h] ?? h;

function runMiddleware(mw: express.RequestHandler, req: Request, res: Response): Promise<void> {
  return new Promise((resolve, reject) => mw(req, res, (err?: unknown) => (err ? reject(err) : resolve())));
}

/** body-parser's errors carry a `type`; give each a precise problem. */
function mapBodyParserError(err: unknown): unknown {
  const e = err as { type?: string; limit?: number; length?: number; message?: string; status?: number };
  // The router's percent-decoding of path parameters throws URIError (e.g. `/items/%`).
  if (err instanceof URIError) return new BadRequestError('The request path has invalid percent-encoding.');
  switch (e?.type) {
    case 'entity.too.large':
      return new PayloadTooLargeError(
        `The request body${e.length ? ` (${e.length} bytes)` : ''} exceeds the limit of ${e.limit} bytes.`,
      );
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new UnsupportedMediaTypeError(e.message ?? 'Unsupported encoding.');
    case 'request.aborted':
      return new BadRequestError('The request was aborted by the client.');
    case 'request.size.invalid':
      return new BadRequestError('The request body length does not match its Content-Length.');
    default:
      return err;
  }
}
