/**
 * Where a read API request's CPU goes, part by part: `npx tsx bench/read-path.ts [rounds] [seconds]`.
 *
 * Each mode is one server process built from the read API's own parts, from nothing up to the
 * real hot path; wrk sends every mode the same Zipf item GETs (40 k items, 64 connections, the
 * token in a header) and the server's CPU per request is read from /proc. The modes run in turns,
 * `rounds` times, and the medians are printed: on shared cores a single run says little.
 *
 *   floor       the reads bench's contract floor: bare node:http that splits the path, reads the two
 *               headers, sends the contract's item headers and one constant 1 KB body
 *   server      read-model/server.ts with a reader and a token check that cost nothing
 *   token       + the real verified-token cache (CachingTokenVerifier)
 *   lookup      + the real near cache (40 k entries) looked up through the reader, constant body sent
 *   near        + each item's own body sent (what the read API does on a near-cache hit)
 *
 * Redis and DynamoDB are not involved: every request is a near-cache hit. What a miss costs is in
 * the reads scenario (Redis reads per request) and in docs/PERFORMANCE.md.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { signToken, TokenVerifier } from '../core/auth';
import { RedisKeys } from '../core/keys';
import { createLogger } from '../core/log';
import { answerOf, type ItemAnswer } from '../core/read-store';
import { NearCache } from '../read-model/near-cache';
import { ReadModelReader } from '../read-model/reader';
import { createReadServer } from '../read-model/server';
import { type DurableStore, RedisHotStore } from '../core/read-store';
import { CachingTokenVerifier } from '../core/token-cache';
import { freePort, stopChild, waitForPort } from '../scripts/local-stack';
import { CONTRACT_FLOOR_SERVER, loadWrk, processCpuSeconds, wrkAvailable, zipfSample } from './scenarios/reads';

const MODES = ['floor', 'server', 'token', 'lookup', 'near'] as const;
type Mode = (typeof MODES)[number];
const ITEMS = 40_000;
const BODY = Buffer.alloc(1024, 'x');

/** The server side: one mode, on PORT (run as a child of this file). */
function serve(mode: Exclude<Mode, 'floor'>, port: number, secret: string): void {
  const log = createLogger('warn', {});
  const constant = answerOf(1, BODY);
  const principal = { tenant: 'bench', sub: 'bench', roles: [] };
  const verifier = mode === 'server'
    ? { peekHeader: () => principal, verifyHeader: () => Promise.resolve(principal) }
    : new CachingTokenVerifier(new TokenVerifier(secret), 10_000);
  let peekItem: (tenant: string, collection: string, id: string) => ItemAnswer | undefined = () => constant;
  if (mode === 'lookup' || mode === 'near') {
    // The near cache filled as reads fill it (each body copied into its own buffer), and switched on
    // without Redis: the connection is never opened.
    const near = new NearCache({ maxEntries: 50_000, maxBytes: 64 * 1024 * 1024 });
    near.resume();
    const hot = new RedisHotStore(new Redis({ lazyConnect: true }), 'read-path:', undefined, near);
    const keys = new RedisKeys('read-path:');
    const body = Buffer.alloc(1100, 'y');
    for (let i = 0; i < ITEMS; i++) {
      const key = keys.item('bench', 'items', `i${i}`);
      near.endFill(key, near.beginFill(key), answerOf(1, body));
    }
    // Every request here is a near-cache hit: the durable copy is never asked.
    const unused = new Proxy({}, { get: () => () => Promise.reject(new Error('not used by this harness')) }) as DurableStore;
    const real = new ReadModelReader(hot, unused, log, { breakerThreshold: 3, breakerOpenMs: 1000 });
    peekItem = mode === 'near' ? (t, c, i) => real.peekItem(t, c, i) : (t, c, i) => (real.peekItem(t, c, i) ? constant : undefined);
  }
  const reader = { peekItem, getItem: (t: string, c: string, i: string) => Promise.resolve(peekItem(t, c, i)) } as unknown as ReadModelReader;
  createReadServer({ reader, verifier, log }).listen(port, '127.0.0.1');
}

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 3);
  const seconds = Number(process.argv[3] ?? 5);
  if (!wrkAvailable()) throw new Error('wrk is needed (apt-get install wrk)');
  const secret = randomBytes(32).toString('base64url');
  const token = await signToken(secret, { tenant: 'bench', sub: 'bench', ttlSeconds: 3600 });
  const paths = Array.from(zipfSample(ITEMS, 1, 100_000), (i) => `/v1/collections/items/items/i${i}`);
  const ctx = { quick: false, progress: () => undefined, log: () => undefined };
  const results = new Map<Mode, Array<{ rps: number; cpuUs: number }>>();
  for (let r = 1; r <= rounds; r++) {
    for (const mode of MODES) {
      const port = await freePort();
      // The floor is the reads bench's own contract floor, run the same way (plain node -e).
      const args = mode === 'floor' ? ['-e', CONTRACT_FLOOR_SERVER] : ['--import', 'tsx', __filename];
      const child: ChildProcess = spawn(process.execPath, args, {
        env: { ...process.env, PORT: String(port), READ_PATH_MODE: mode, READ_PATH_PORT: String(port), READ_PATH_SECRET: secret },
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      try {
        await waitForPort(port, () => child.exitCode !== null, 30_000);
        const headers = { authorization: `Bearer ${token}` };
        await loadWrk(ctx, 'warm-up', `http://127.0.0.1:${port}`, 2, paths, headers);
        const cpu0 = processCpuSeconds(child.pid);
        const run = await loadWrk(ctx, mode, `http://127.0.0.1:${port}`, seconds, paths, headers);
        const cpuUs = ((processCpuSeconds(child.pid) - cpu0) * 1e6) / Math.max(1, run.total);
        if (run.non2xx || run.errors) throw new Error(`${mode}: ${run.non2xx} non-2xx, ${run.errors} errors`);
        (results.get(mode) ?? results.set(mode, []).get(mode)!).push({ rps: run.rps, cpuUs });
        process.stderr.write(`round ${r}/${rounds} ${mode.padEnd(7)} ${Math.round(run.rps)} req/s, ${cpuUs.toFixed(1)} µs CPU per request\n`);
      } finally {
        await stopChild(child);
      }
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const floorCpu = median(results.get('floor')!.map((x) => x.cpuUs));
  console.log(`\nmedians of ${rounds} rounds, ${seconds} s each (server CPU per request; + over the floor):`);
  for (const mode of MODES) {
    const v = results.get(mode)!;
    const cpu = median(v.map((x) => x.cpuUs));
    console.log(`${mode.padEnd(7)} ${String(Math.round(median(v.map((x) => x.rps)))).padStart(6)} req/s  ${cpu.toFixed(1).padStart(5)} µs  +${(cpu - floorCpu).toFixed(1)} µs`);
  }
}

if (process.env.READ_PATH_MODE) {
  serve(process.env.READ_PATH_MODE as Exclude<Mode, 'floor'>, Number(process.env.READ_PATH_PORT), process.env.READ_PATH_SECRET!);
} else {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
