/** Composition root of the ack service. */
import { z } from 'zod';
import type { AckLog } from '../core/ack-log';
import { TokenVerifier } from '../core/auth';
import { AuthEnv, LogEnv, loadConfig, port, positiveInt, RedisEnv, runMain } from '../core/config';
import { createLogger, type Logger } from '../core/log';
import { RedisAckLog } from '../core/redis-ack-log';
import { closeRedis, createRedis } from '../core/redis';
import { answerClientErrorsWithProblems, closeOnSignals, type RunningService } from '../core/service';
import { AckServer, createAckHttpServer } from './server';
import { ConsoleEnv, mountConsole } from './console';

export const AckConfig = z.object({
  ACK_PORT: port(3002),
  HOST: z.string().default('127.0.0.1'),
  HEARTBEAT_MS: positiveInt(30_000),
  REPLAY_PAGE_SIZE: positiveInt(500),
}).merge(AuthEnv).merge(RedisEnv).merge(LogEnv).merge(ConsoleEnv);
export type AckConfig = z.infer<typeof AckConfig>;

export async function startAckService(config: AckConfig, overrides: { acks?: AckLog; log?: Logger } = {}): Promise<RunningService> {
  const log = overrides.log ?? createLogger(config.LOG_LEVEL, { service: 'ack-service' });
  const redis = overrides.acks ? undefined : createRedis(config.REDIS_URL, config.REDIS_AUTH_TOKEN);
  const acks = overrides.acks ?? new RedisAckLog(redis!, config.REDIS_PREFIX);
  const ack = new AckServer({
    acks, log, verifier: new TokenVerifier(config.AUTH_SECRET), heartbeatMs: config.HEARTBEAT_MS, replayPageSize: config.REPLAY_PAGE_SIZE,
  });
  await ack.start();
  const server = createAckHttpServer(ack);
  answerClientErrorsWithProblems(server);
  mountConsole(server, { connectionCount: () => ack.connectionCount(), acks, config, log }); // operator console (GET /console): ack-service/console.ts
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
