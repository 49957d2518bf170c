/** ioredis connections: fail fast on start-up instead of queueing commands forever. */
import { Redis } from 'ioredis';

export function createRedis(url: string, authToken?: string): Redis {
  return new Redis(url, {
    ...(authToken ? { password: authToken } : {}),
    maxRetriesPerRequest: 2,
    enableAutoPipelining: true,
    lazyConnect: false,
  });
}

export async function closeRedis(redis: Redis): Promise<void> {
  try {
    await redis.quit();
  } catch {
    redis.disconnect();
  }
}
