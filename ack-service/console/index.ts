/**
 * The operator console: `GET /console` (a static page + one script, no build, no CDN) and its
 * JSON feed, mounted on the ack service's HTTP server (ack-service/server.ts, `mounts`) by ack-service/main.ts.
 *
 * The page is public (it holds no data); everything it shows comes from `/console/api/*`, which
 * needs the same JWT as the rest of the API with the `operator` role (header or ?access_token=).
 * Numbers come from the services' Prometheus `/metrics` (CONSOLE_METRICS_URLS, scraped at most once
 * a second whatever the number of viewers; an endpoint that does not answer shows as "n/a") and,
 * for acks by stage and queued→committed latency, from the ack log this service already follows.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { AckLog } from '../../core/ack-log';
import { type Principal, TokenVerifier } from '../../core/auth';
import { ForbiddenError, MethodNotAllowedError, NotFoundError, toProblemError, UnauthorizedError } from '../../core/errors';
import type { Logger } from '../../core/log';
import type { Mount } from '../server';
import { AckWatch } from './ack-watch';
import { staticAssets } from './assets';
import { sendJson, sendProblem } from './http';
import { MetricsReader } from './metrics-reader';
import { buildSnapshot } from './snapshot';
import { testWrite } from './test-write';

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

/** The console as a mount: `/console` and `/console/*`; it follows the ack log until closed. */
export function createConsole(deps: ConsoleDeps): Mount {
  const verifier = new TokenVerifier(deps.config.AUTH_SECRET);
  const watch = new AckWatch();
  const metrics = new MetricsReader(deps.config.CONSOLE_METRICS_URLS);
  const assets = staticAssets();
  const subscribed = deps.acks.subscribe((_route, ack) => watch.observe(ack)).catch((err: unknown) => {
    deps.log.warn('console: cannot follow the ack log', { err });
    return undefined;
  });

  const authorize = async (req: IncomingMessage, url: URL): Promise<Principal> => {
    const q = url.searchParams.get('access_token');
    if (!q && !req.headers.authorization) throw new UnauthorizedError('Missing token: send "Authorization: Bearer <token>" or ?access_token=<token> (operator role).');
    const principal = q ? await verifier.verify(q) : await verifier.verifyHeader(req.headers.authorization);
    if (!principal.roles.includes(OPERATOR_ROLE)) throw new ForbiddenError(`The console needs a token with the "${OPERATOR_ROLE}" role.`);
    return principal;
  };

  const route = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    if (assets(req, res, url.pathname)) return;
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
      const token = url.searchParams.get('access_token') ?? req.headers.authorization!.replace(/^Bearer +/i, '');
      sendJson(res, 200, await testWrite(deps.config.CONSOLE_GATEWAY_URL, token));
      return;
    }
    throw new NotFoundError(`No console route ${url.pathname}.`);
  };

  return {
    prefix: '/console',
    handle(req, res) {
      const url = new URL(req.url ?? '/', 'http://localhost');
      route(req, res, url).catch((err: unknown) => {
        const problem = toProblemError(err);
        if (problem.status >= 500) deps.log.error('console request failed', { err });
        if (!res.headersSent) sendProblem(res, problem, url.pathname);
        else res.end();
      });
    },
    async close() {
      const unsubscribe = await subscribed;
      await unsubscribe?.();
    },
  };
}
