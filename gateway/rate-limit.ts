/**
 * Per-tenant write rate limit: a token bucket shared by every gateway instance through Redis
 * (rate-limiter-flexible). `perSecond` is the sustained rate; `burst` extra writes may be taken
 * from a second bucket refilled over `burstWindowSeconds`.
 * If Redis fails, an in-process limiter with the same numbers takes over (fail open per instance,
 * so a Redis outage does not stop writes).
 */
import type { Redis } from 'ioredis';
import { BurstyRateLimiter, RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';

export interface RateLimitOptions {
  perSecond: number;
  burst: number;
  burstWindowSeconds: number;
}

export type RateDecision =
  | { allowed: true; limit: number; remaining: number; resetSeconds: number }
  | { allowed: false; limit: number; remaining: 0; resetSeconds: number; retryAfterSeconds: number };

export interface RateLimiter {
  take(tenant: string): Promise<RateDecision>;
}

export class TenantRateLimiter implements RateLimiter {
  private readonly limiter: BurstyRateLimiter;
  constructor(
    private readonly opts: RateLimitOptions,
    redis?: { client: Redis; prefix: string },
  ) {
    const make = (keyPrefix: string, points: number, duration: number) => {
      const memory = new RateLimiterMemory({ keyPrefix, points, duration });
      if (!redis) return memory;
      return new RateLimiterRedis({
        storeClient: redis.client, keyPrefix: `${redis.prefix}${keyPrefix}`, points, duration, insuranceLimiter: memory,
      });
    };
    this.limiter = new BurstyRateLimiter(
      make('rl:tenant', opts.perSecond, 1),
      make('rl:burst', Math.max(1, opts.burst), opts.burstWindowSeconds),
    );
  }

  async take(tenant: string): Promise<RateDecision> {
    const limit = this.opts.perSecond;
    try {
      const res = await this.limiter.consume(tenant, 1);
      return { allowed: true, limit, remaining: Math.max(0, res.remainingPoints), resetSeconds: Math.max(0, Math.ceil(res.msBeforeNext / 1000)) };
    } catch (rej) {
      if (rej instanceof RateLimiterRes) {
        const resetSeconds = Math.max(1, Math.ceil(rej.msBeforeNext / 1000));
        return { allowed: false, limit, remaining: 0, resetSeconds, retryAfterSeconds: resetSeconds };
      }
      throw rej;
    }
  }
}
