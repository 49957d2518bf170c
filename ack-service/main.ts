/** Composition root of the ack service. */
import { z } from 'zod';
import { type AckLog, AckRetentionEnv, retentionFrom } from '../core/ack-log';
import { TokenVerifier } from '../core/auth';
import { AuthEnv, LogEnv, loadConfig, port, positiveInt, RedisEnv, runMain } from '../core/config';
import { createLogger, type Logger } from '../core/log';
import { RedisAckLog } from '../core/redis-ack-log';
import { closeRedis, createRedis } from '../core/redis';
import { answerClientErrorsWithProblems, closeOnSignals, type RunningService } from '../core/service';
import { AckServer, createAckHttpServer } from './server';
import { ConsoleEnv, createConsole } from './console';

export const AckConfig = z.object({
  /** Port of the WebSocket server (and the operator console). */
  ACK_PORT: port(3002),
  /** Interface the server listens on (0.0.0.0 in a container). */
  HOST: z.string().default('127.0.0.1'),
  /** Interval of the server's pings; a connection that missed the previous one is terminated. */
  HEARTBEAT_MS: positiveInt(30_000),
  /** Acks read per page when a connection resumes from its cursor (`?after=`). Default 500. */
  RESUME_PAGE_SIZE: z.coerce.number().int().positive().optional(),
  /** Deprecated alias of RESUME_PAGE_SIZE (its name before "replay" came to mean only rebuilds); RESUME_PAGE_SIZE wins. */
  REPLAY_PAGE_SIZE: z.coerce.number().int().positive().optional(),
  /** Per principal and instance; more upgrades get 429. */
  MAX_CONNECTIONS_PER_PRINCIPAL: positiveInt(20),
  /** Per connection: unread bytes past this close it with 1013 (slow client). */
  MAX_BUFFERED_BYTES: positiveInt(1024 * 1024),
  /** Largest client message; larger closes with 1009. */
  MAX_MESSAGE_BYTES: positiveInt(4096),
  /** How long a closing slow client gets to read its close frame before it is terminated. */
  CLOSE_GRACE_MS: positiveInt(5000),
}).merge(AckRetentionEnv).merge(AuthEnv).merge(RedisEnv).merge(LogEnv).merge(ConsoleEnv);
export type AckConfig = z.infer<typeof AckConfig>;

export async function startAckService(config: AckConfig, overrides: { acks?: AckLog; log?: Logger } = {}): Promise<RunningService> {
  const log = overrides.log ?? createLogger(config.LOG_LEVEL, { service: 'ack-service' });
  const redis = overrides.acks ? undefined : createRedis(config.REDIS_URL, config.REDIS_AUTH_TOKEN);
  const acks = overrides.acks ?? new RedisAckLog(redis!, config.REDIS_PREFIX, retentionFrom(config));
  const ack = new AckServer({
    acks, log, verifier: new TokenVerifier(config.AUTH_SECRET), heartbeatMs: config.HEARTBEAT_MS, resumePageSize: config.RESUME_PAGE_SIZE ?? config.REPLAY_PAGE_SIZE ?? 500,
    maxConnectionsPerPrincipal: config.MAX_CONNECTIONS_PER_PRINCIPAL,
    maxBufferedBytes: config.MAX_BUFFERED_BYTES,
    maxMessageBytes: config.MAX_MESSAGE_BYTES,
    closeGraceMs: config.CLOSE_GRACE_MS,
  });
  await ack.start();
  // The operator console (GET /console): ack-service/console/.
  const operatorConsole = createConsole({ connectionCount: () => ack.connectionCount(), acks, config, log });
  const server = createAckHttpServer(ack, [operatorConsole]);
  answerClientErrorsWithProblems(server);
  await new Promise<void>((resolve, reject) => server.listen(config.ACK_PORT, config.HOST, resolve).on('error', reject));
  const actual = (server.address() as { port: number }).port;
  log.info('ack service listening', { port: actual });
  return {
    name: 'ack-service',
    port: actual,
    url: `ws://${config.HOST}:${actual}`,
    async close() {
      await ack.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      if (!overrides.acks) await acks.close();
      if (redis) await closeRedis(redis);
    },
  };
}

if (require.main === module) {
  runMain(async () => {
    const service = await startAckService(loadConfig(AckConfig));
    closeOnSignals([service]);
  });
}
