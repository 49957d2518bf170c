/**
 * Per-tenant write rate limit: a token bucket shared by every gateway instance through Redis
 * (rate-limiter-flexible). `perSecond` is the sustained rate; `burst` extra writes may be taken
 * from a second bucket refilled over `burstWindowSeconds`.
 * If Redis fails, an in-process limiter with the same numbers takes over (fail open per instance,
 * so a Redis outage does not stop writes).
 *
 * One Redis call per tenant per event-loop turn, not per write: the writes of one tenant that
 * arrive in the same turn take their points together from the sustained bucket. If it cannot give
 * them all, the points go back and each write takes its own point, one after another, through
 * both buckets — so every write gets exactly the decision it would have got alone.
 */
import type { Redis } from 'ioredis';
import {
  BurstyRateLimiter, type RateLimiterAbstract, RateLimiterMemory, RateLimiterRedis, RateLimiterRes,
} from 'rate-limiter-flexible';
import { type Pending, PerTurnGroups } from './per-turn';

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

type Waiting = Pending<undefined, RateDecision>;

export class TenantRateLimiter implements RateLimiter {
  private readonly limiter: BurstyRateLimiter;
  private readonly sustained: RateLimiterAbstract;
  /** Writes waiting for this turn's decision, per tenant. */
  private readonly turn = new PerTurnGroups((tenant, group: Waiting[]) => this.decideGroup(tenant, group));
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
    this.sustained = make('rl:tenant', opts.perSecond, 1);
    this.limiter = new BurstyRateLimiter(this.sustained, make('rl:burst', Math.max(1, opts.burst), opts.burstWindowSeconds));
  }

  take(tenant: string): Promise<RateDecision> {
    return this.turn.add(tenant, undefined);
  }

  private async decideGroup(tenant: string, group: Waiting[]) {
    if (group.length > 1) {
      const n = group.length;
      const together = await this.sustained.consume(tenant, n).catch(async (rej: unknown) => {
        if (!(rej instanceof RateLimiterRes)) throw rej;
        await this.sustained.reward(tenant, n); // not all fit: give them back, decide one by one
        return undefined;
      });
      if (together) {
        // As if they had taken their points in arrival order.
        group.forEach((w, i) => w.resolve(this.allowed(together.remainingPoints + (n - 1 - i), together.msBeforeNext)));
        return;
      }
    }
    for (const w of group) w.resolve(await this.takeOne(tenant));
  }

  private async takeOne(tenant: string): Promise<RateDecision> {
    try {
      const res = await this.limiter.consume(tenant, 1);
      return this.allowed(res.remainingPoints, res.msBeforeNext);
    } catch (rej) {
      if (rej instanceof RateLimiterRes) {
        const resetSeconds = Math.max(1, Math.ceil(rej.msBeforeNext / 1000));
        return { allowed: false, limit: this.opts.perSecond, remaining: 0, resetSeconds, retryAfterSeconds: resetSeconds };
      }
      throw rej;
    }
  }

  private allowed(remaining: number, msBeforeNext: number): RateDecision {
    return { allowed: true, limit: this.opts.perSecond, remaining: Math.max(0, remaining), resetSeconds: Math.max(0, Math.ceil(msBeforeNext / 1000)) };
  }
}
