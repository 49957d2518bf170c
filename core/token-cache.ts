/**
 * Verifying an HS256 JWT (base64 decode, HMAC, claim checks) is the largest CPU cost of a hot read.
 * A token is immutable, so once verified its principal is valid until its `exp`: a bounded cache
 * keyed by the exact token string answers repeat requests without re-verifying. Only tokens that
 * passed full verification enter; entries are dropped at `exp`; a forged or altered token is a
 * different string and is verified in full.
 *
 * A hit is synchronous (`peekHeader`), so the read API's hot path needs no await, and it only sets
 * a bit: eviction is CLOCK (an approximation of LRU, as in the near cache), because the Map
 * delete + re-insert of an exact LRU cost more than the lookup itself under load.
 */
import { bearerToken, type Principal, type TokenVerifier } from './auth';

interface Entry {
  principal: Principal;
  expiresAtMs: number;
  /** Used since it last came to the front of the eviction order (CLOCK's reference bit). */
  used: boolean;
}

const BEARER = 'Bearer ';

/** What a service needs to authenticate a request: verify a header, and take a cached principal without a promise where it can. */
export interface HeaderVerifier {
  verifyHeader(header: string | undefined): Promise<Principal>;
  /** A principal known without verifying (a cached token), or undefined: then `verifyHeader`. */
  peekHeader?(header: string | undefined): Principal | undefined;
}

export class CachingTokenVerifier {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly verifier: TokenVerifier,
    private readonly maxEntries = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * The principal of a cached, unexpired token, without verifying anything; undefined otherwise
   * (then `verifyHeader`). Only the canonical `Bearer <token>` form is looked up: any other
   * spelling misses here and goes through the full parse, never a looser one.
   */
  peekHeader(header: string | undefined): Principal | undefined {
    if (header === undefined || !header.startsWith(BEARER)) return undefined;
    const hit = this.entries.get(header.slice(BEARER.length));
    if (hit === undefined || hit.expiresAtMs <= this.now()) return undefined;
    hit.used = true;
    return hit.principal;
  }

  async verifyHeader(header: string | undefined): Promise<Principal> {
    const known = this.peekHeader(header);
    if (known !== undefined) return known;
    const token = bearerToken(header);
    const principal = await this.verifier.verify(token);
    const exp = expiryOf(token);
    if (exp !== undefined) {
      this.entries.delete(token);
      this.entries.set(token, { principal, expiresAtMs: exp * 1000, used: false });
      this.evict();
    }
    return principal;
  }

  get size(): number {
    return this.entries.size;
  }

  /** CLOCK: the oldest entry goes unless it was used since it came to the front; then it goes to the back. */
  private evict(): void {
    const now = this.now();
    while (this.entries.size > this.maxEntries) {
      const [token, e] = this.entries.entries().next().value!;
      this.entries.delete(token);
      if (e.used && e.expiresAtMs > now) {
        e.used = false;
        this.entries.set(token, e);
      }
    }
  }
}

/** `exp` of a token that has just been verified (so its payload is well-formed). */
function expiryOf(token: string): number | undefined {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof payload.exp === 'number' ? payload.exp : undefined;
  } catch {
    return undefined;
  }
}
