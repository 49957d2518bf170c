/**
 * The write API (express): authenticate, validate, put the command on the stream, answer 202,
 * emit the `queued` ack. Nothing is put on the stream for a request that fails any check.
 */
import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { z } from 'zod';
import type { AckLog } from '../core/ack-log';
import type { TokenVerifier } from '../core/auth';
import { CollectionName, type Command, type CommandKind, ItemId, type WriteAccepted } from '../core/contracts';
import {
  BadRequestError,
  NotFoundError,
  PayloadTooLargeError,
  ProblemError,
  toProblemError,
  UnsupportedMediaTypeError,
} from '../core/errors';
import type { Logger } from '../core/log';
import { requestStatusWrite } from '../processors/projections';
import type { HotStore } from '../read-model/stores';
import type { CommandStream } from './command-stream';

export interface GatewayDeps {
  stream: CommandStream;
  acks: AckLog;
  hot: HotStore;
  verifier: TokenVerifier;
  log: Logger;
  maxBodyBytes: number;
}

const Params = z.object({ collection: CollectionName, id: ItemId });
const IfMatch = z.string().regex(/^"[1-9][0-9]{0,9}"$/, 'If-Match must be a quoted version, e.g. "3"');
const IfNoneMatch = z.literal('*', { message: 'If-None-Match must be *' });
const IdempotencyKey = z.string().regex(/^[\x21-\x7E]{1,255}$/, 'Idempotency-Key must be 1-255 printable ASCII characters');

const ITEM_PATH = '/v1/collections/:collection/items/:id';

export function createGatewayApp(deps: GatewayDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok', service: 'gateway' });
  });

  const json = express.json({ limit: deps.maxBodyBytes, type: ['application/json', 'application/*+json'], strict: true });
  const write = (kind: CommandKind) => async (req: Request, res: Response, next: NextFunction) => {
    try {
      const principal = await deps.verifier.verifyHeader(req.header('authorization'));
      const params = parse(Params, req.params, 'path');
      if (kind !== 'delete') requireContentType(req, kind);
      await runMiddleware(json, req, res);
      const body: unknown = req.body;
      if (kind !== 'delete' && (typeof body !== 'object' || body === null || Array.isArray(body))) {
        throw new BadRequestError('The request body must be a JSON object.');
      }
      const ifMatch = req.header('if-match');
      const ifNoneMatch = req.header('if-none-match');
      const idempotencyKey = req.header('idempotency-key');
      const command: Command = {
        v: 1,
        requestId: randomUUID(),
        kind,
        tenant: principal.tenant,
        principal: principal.sub,
        collection: params.collection,
        id: params.id,
        ...(kind !== 'delete' ? { data: body as Record<string, unknown> } : {}),
        ...(ifMatch !== undefined ? { ifMatch: Number(parse(IfMatch, ifMatch, 'If-Match').slice(1, -1)) } : {}),
        ...(ifNoneMatch !== undefined ? { ifNoneMatch: (parse(IfNoneMatch, ifNoneMatch, 'If-None-Match'), true as const) } : {}),
        ...(idempotencyKey !== undefined ? { idempotencyKey: parse(IdempotencyKey, idempotencyKey, 'Idempotency-Key') } : {}),
        ...(req.header('x-trace-id') ? { traceId: String(req.header('x-trace-id')).slice(0, 128) } : {}),
        receivedAt: new Date().toISOString(),
      };
      if (command.ifNoneMatch && command.kind !== 'put') {
        throw new BadRequestError('If-None-Match: * is only meaningful on PUT.');
      }

      const position = await deps.stream.put(command);
      await emitQueued(deps, command);
      const answer: WriteAccepted = { requestId: command.requestId, status: 'queued', ...position };
      res.status(202).location(`/v1/requests/${command.requestId}`).json(answer);
      deps.log.info('write queued', { requestId: command.requestId, tenant: command.tenant, kind, status: 202 });
    } catch (err) {
      next(err);
    }
  };

  app.put(ITEM_PATH, write('put'));
  app.patch(ITEM_PATH, write('patch'));
  app.delete(ITEM_PATH, write('delete'));

  app.use((req, _res, next) => next(new NotFoundError(`No route for ${req.method} ${req.path}.`)));
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const problem = toProblemError(mapBodyParserError(err));
    if (problem.status >= 500 && !(err instanceof ProblemError)) deps.log.error('unhandled error', { err, path: req.path });
    res.status(problem.status).set(problem.headers).type('application/problem+json').send(JSON.stringify(problem.toProblem(req.originalUrl)));
  });
  return app;
}

/** The `queued` ack and request status follow the stream's acceptance; if they fail, the write is still queued. */
async function emitQueued(deps: GatewayDeps, cmd: Command): Promise<void> {
  const at = new Date().toISOString();
  const results = await Promise.allSettled([
    deps.acks.append(
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

function requireContentType(req: Request, kind: CommandKind) {
  const type = (req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  const allowed = kind === 'patch' ? ['application/merge-patch+json', 'application/json'] : ['application/json'];
  if (!allowed.includes(type)) {
    throw new UnsupportedMediaTypeError(
      `Content-Type must be ${allowed.join(' or ')} for ${kind.toUpperCase()}${type ? `, not ${type}` : ''}.`,
    );
  }
}

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const out = schema.safeParse(value);
  if (out.success) return out.data;
  const issue = out.error.issues[0]!;
  const where = issue.path.length ? `${what} parameter "${issue.path.join('.')}"` : what;
  throw new BadRequestError(`Invalid ${where}: ${issue.message}.`);
}

function runMiddleware(mw: express.RequestHandler, req: Request, res: Response): Promise<void> {
  return new Promise((resolve, reject) => mw(req, res, (err?: unknown) => (err ? reject(err) : resolve())));
}

/** body-parser's errors carry a `type`; give each a precise problem. */
function mapBodyParserError(err: unknown): unknown {
  const e = err as { type?: string; limit?: number; message?: string; status?: number };
  // The router's percent-decoding of path parameters throws URIError (e.g. `/items/%`).
  if (err instanceof URIError) return new BadRequestError('The request path has invalid percent-encoding.');
  switch (e?.type) {
    case 'entity.too.large':
      return new PayloadTooLargeError(`The request body exceeds the limit of ${e.limit} bytes.`);
    case 'entity.parse.failed':
      return new BadRequestError(`The request body is not valid JSON: ${e.message}.`);
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new UnsupportedMediaTypeError(e.message ?? 'Unsupported encoding.');
    case 'request.aborted':
      return new BadRequestError('The request was aborted by the client.');
    default:
      return err;
  }
}
