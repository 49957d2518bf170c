/** The verified-token cache (core/token-cache.ts) over the real verifier, with a counting wrapper and an injected clock. */
import { type Principal, signToken, TokenVerifier } from '../../core/auth';
import { CachingTokenVerifier } from '../../core/token-cache';

const SECRET = 'unit-test-secret-unit-test-secret-0123';

class CountingVerifier extends TokenVerifier {
  calls = 0;
  override async verify(token: string): Promise<Principal> {
    this.calls++;
    return super.verify(token);
  }
}

const token = (sub: string, ttlSeconds = 3600) => signToken(SECRET, { tenant: 'acme', sub, ttlSeconds });

test('a verified token is answered from the cache, synchronously, without verifying it again', async () => {
  const inner = new CountingVerifier(SECRET);
  const cache = new CachingTokenVerifier(inner);
  const t = await token('alice');
  expect(cache.peekHeader(`Bearer ${t}`)).toBeUndefined();
  await expect(cache.verifyHeader(`Bearer ${t}`)).resolves.toEqual({ tenant: 'acme', sub: 'alice', roles: [] });
  expect(cache.peekHeader(`Bearer ${t}`)).toEqual({ tenant: 'acme', sub: 'alice', roles: [] });
  await cache.verifyHeader(`Bearer ${t}`);
  expect(inner.calls).toBe(1);
});

test('an entry is not used at or after its exp', async () => {
  let now = Date.now();
  const inner = new CountingVerifier(SECRET);
  const cache = new CachingTokenVerifier(inner, 100, () => now);
  const t = await token('bob', 60);
  await cache.verifyHeader(`Bearer ${t}`);
  now += 61_000;
  expect(cache.peekHeader(`Bearer ${t}`)).toBeUndefined();
});

test('a token that fails verification is never cached; another spelling of the header is not looked up', async () => {
  const inner = new CountingVerifier(SECRET);
  const cache = new CachingTokenVerifier(inner);
  const forged = `${(await token('carol')).slice(0, -2)}xx`;
  await expect(cache.verifyHeader(`Bearer ${forged}`)).rejects.toMatchObject({ status: 401 });
  await expect(cache.verifyHeader(`Bearer ${forged}`)).rejects.toMatchObject({ status: 401 });
  expect(inner.calls).toBe(2);
  expect(cache.size).toBe(0);
  const t = await token('carol');
  await cache.verifyHeader(`Bearer ${t}`);
  expect(cache.peekHeader(`bearer ${t}`)).toBeUndefined();
  expect(cache.peekHeader(`Bearer  ${t}`)).toBeUndefined();
});

test('bounded: beyond maxEntries the oldest unused entry goes, a recently used one stays', async () => {
  const cache = new CachingTokenVerifier(new TokenVerifier(SECRET), 2);
  const [a, b, c] = await Promise.all([token('a'), token('b'), token('c')]);
  await cache.verifyHeader(`Bearer ${a}`);
  await cache.verifyHeader(`Bearer ${b}`);
  expect(cache.peekHeader(`Bearer ${a}`)).toBeDefined(); // a is used: it survives the next eviction
  await cache.verifyHeader(`Bearer ${c}`);
  expect(cache.size).toBe(2);
  expect(cache.peekHeader(`Bearer ${a}`)).toBeDefined();
  expect(cache.peekHeader(`Bearer ${b}`)).toBeUndefined();
  expect(cache.peekHeader(`Bearer ${c}`)).toBeDefined();
});
