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

/** Removes every key under `prefix` (SCAN + UNLINK, glob characters in the prefix matched literally). */
export async function deleteKeysByPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== '0');
}
