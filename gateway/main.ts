/** Composition root of the gateway (write API). */
import type { Server } from 'node:http';
import { z } from 'zod';
import type { AckLog } from '../core/ack-log';
import { TokenVerifier } from '../core/auth';
import { createKinesis } from '../core/aws';
import { AuthEnv, AwsEnv, LogEnv, loadConfig, port, positiveInt, RedisEnv, runMain, StreamEnv } from '../core/config';
import { createLogger, type Logger } from '../core/log';
import { RedisAckLog } from '../core/redis-ack-log';
import { closeRedis, createRedis } from '../core/redis';
import { answerClientErrorsWithProblems, closeOnSignals, type RunningService } from '../core/service';
import { type HotStore, RedisHotStore } from '../read-model/stores';
import { createGatewayApp } from './app';
import { KinesisCommandStream } from './command-stream';

/** Kinesis takes records up to 1 MiB and DynamoDB items up to 400 KB: bodies stay well below both. */
export const HARD_MAX_BODY_BYTES = 256 * 1024;

export const GatewayConfig = z.object({
  GATEWAY_PORT: port(3000),
  HOST: z.string().default('127.0.0.1'),
  MAX_BODY_BYTES: positiveInt(64 * 1024).pipe(z.number().max(HARD_MAX_BODY_BYTES, `MAX_BODY_BYTES may be at most ${HARD_MAX_BODY_BYTES}`)),
}).merge(AuthEnv).merge(AwsEnv).merge(RedisEnv).merge(StreamEnv).merge(LogEnv);
export type GatewayConfig = z.infer<typeof GatewayConfig>;

export interface GatewayOverrides {
  acks?: AckLog;
  hot?: HotStore;
  log?: Logger;
}

export async function startGateway(config: GatewayConfig, overrides: GatewayOverrides = {}): Promise<RunningService> {
  const log = overrides.log ?? createLogger(config.LOG_LEVEL, { service: 'gateway' });
  const redis = overrides.acks && overrides.hot ? undefined : createRedis(config.REDIS_URL, config.REDIS_AUTH_TOKEN);
  const acks = overrides.acks ?? new RedisAckLog(redis!, config.REDIS_PREFIX);
  const hot = overrides.hot ?? new RedisHotStore(redis!, config.REDIS_PREFIX);
  const kinesis = createKinesis({ region: config.AWS_REGION, endpoint: config.KINESIS_ENDPOINT });
  const stream = new KinesisCommandStream(kinesis, config.KINESIS_STREAM);
  const app = createGatewayApp({
    stream, acks, hot, log, verifier: new TokenVerifier(config.AUTH_SECRET), maxBodyBytes: config.MAX_BODY_BYTES,
  });
  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(config.GATEWAY_PORT, config.HOST, () => resolve(s)).on('error', reject);
  });
  answerClientErrorsWithProblems(server);
  const actual = (server.address() as { port: number }).port;
  log.info('gateway listening', { port: actual });
  return {
    name: 'gateway',
    port: actual,
    url: `http://${config.HOST}:${actual}`,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      await stream.close();
      if (redis) await closeRedis(redis);
      kinesis.destroy();
    },
  };
}

if (require.main === module) {
  runMain(async () => {
    const service = await startGateway(loadConfig(GatewayConfig));
    closeOnSignals([service]);
  });
}
