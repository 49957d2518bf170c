/**
 * Verifying an HS256 JWT (base64 decode, HMAC, claim checks) is the largest CPU cost of a hot read.
 * A token is immutable, so once verified its principal is valid until its `exp`: a bounded LRU
 * keyed by the exact token string answers repeat requests without re-verifying. Only tokens that
 * passed full verification enter; entries are dropped at `exp`; a forged or altered token is a
 * different string and is verified in full.
 */
import { bearerToken, type Principal, type TokenVerifier } from '../core/auth';

interface Entry {
  principal: Principal;
  expiresAtMs: number;
}

export class CachingTokenVerifier {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly verifier: TokenVerifier,
    private readonly maxEntries = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  async verifyHeader(header: string | undefined): Promise<Principal> {
    const token = bearerToken(header);
    const hit = this.entries.get(token);
    if (hit !== undefined) {
      if (hit.expiresAtMs > this.now()) {
        // Map keeps insertion order: re-inserting makes this the most recently used entry.
        this.entries.delete(token);
        this.entries.set(token, hit);
        return hit.principal;
      }
      this.entries.delete(token);
    }
    const principal = await this.verifier.verify(token);
    const exp = expiryOf(token);
    if (exp !== undefined) {
      if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
      this.entries.set(token, { principal, expiresAtMs: exp * 1000 });
    }
    return principal;
  }

  get size(): number {
    return this.entries.size;
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
