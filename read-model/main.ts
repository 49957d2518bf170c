/** Composition root of the read API. */
import { z } from 'zod';
import { TokenVerifier } from '../core/auth';
import { createDocumentClient, createDynamo } from '../core/aws';
import { AuthEnv, AwsEnv, LogEnv, loadConfig, port, RedisEnv, runMain, TablesEnv } from '../core/config';
import { createLogger, type Logger } from '../core/log';
import { closeRedis, createRedis } from '../core/redis';
import { closeOnSignals, type RunningService } from '../core/service';
import { ReadModelReader } from './reader';
import { liveStores } from './registry'; // [replay]
import { createReadServer } from './server';
import { DynamoDurableStore, type HotStore, RedisHotStore } from './stores';

export const ReadConfig = z.object({
  READ_PORT: port(3001),
  HOST: z.string().default('127.0.0.1'),
}).merge(AuthEnv).merge(AwsEnv).merge(RedisEnv).merge(TablesEnv).merge(LogEnv);
export type ReadConfig = z.infer<typeof ReadConfig>;

export async function startReadModel(config: ReadConfig, overrides: { hot?: HotStore; log?: Logger } = {}): Promise<RunningService> {
  const log = overrides.log ?? createLogger(config.LOG_LEVEL, { service: 'read-model' });
  const redis = overrides.hot ? undefined : createRedis(config.REDIS_URL, config.REDIS_AUTH_TOKEN);
  const hot = overrides.hot ?? new RedisHotStore(redis!, config.REDIS_PREFIX);
  const dynamo = createDynamo({ region: config.AWS_REGION, endpoint: config.DYNAMODB_ENDPOINT });
  const doc = createDocumentClient(dynamo);
  const baseDurable = new DynamoDurableStore(doc, config.ITEMS_TABLE, config.REQUESTS_TABLE);
  // [replay] items are read from the live version of the projection, resolved through the registry (read-model/registry.ts).
  const live = liveStores({ doc, redis, itemsTable: config.ITEMS_TABLE, requestsTable: config.REQUESTS_TABLE, redisPrefix: config.REDIS_PREFIX, base: { durable: baseDurable, hot } });
  const server = createReadServer({ reader: new ReadModelReader(live.hot, live.durable, log), verifier: new TokenVerifier(config.AUTH_SECRET), log });
  await new Promise<void>((resolve, reject) => server.listen(config.READ_PORT, config.HOST, resolve).on('error', reject));
  const actual = (server.address() as { port: number }).port;
  log.info('read API listening', { port: actual });
  return {
    name: 'read-model',
    port: actual,
    url: `http://${config.HOST}:${actual}`,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      if (redis) await closeRedis(redis);
      dynamo.destroy();
    },
  };
}

if (require.main === module) {
  runMain(async () => {
    const service = await startReadModel(loadConfig(ReadConfig));
    closeOnSignals([service]);
  });
}
