/**
 * `npm run acks` (scripts/acks.ts): tails the caller's acks with the project's client, as a child
 * process against the real stack; and the start banner prints only commands that run as printed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { startStack, type Stack } from './helpers/stack';

const ROOT = path.resolve(__dirname, '..');

let stack: Stack;
const children: ChildProcess[] = [];

beforeAll(async () => {
  stack = await startStack('acks_tail');
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await stack?.close();
});

/** Starts the tail; `lines` collects stdout, `err` stderr; `next(re)` waits for a line matching re. */
function tail(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts', 'acks.ts'), ...args], {
    cwd: ROOT,
    env: { ...process.env, TOKEN: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const seen: string[] = [];
  const waiters: Array<{ re: RegExp; resolve: (l: string) => void }> = [];
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on('line', (l) => {
      seen.push(l);
      for (const w of [...waiters]) {
        if (w.re.test(l)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(l);
        }
      }
    });
  }
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const next = (re: RegExp, ms = 20_000) =>
    new Promise<string>((resolve, reject) => {
      const hit = seen.find((l) => re.test(l));
      if (hit) return resolve(hit);
      const t = setTimeout(() => reject(new Error(`no line matching ${re} within ${ms} ms; got:\n${seen.join('\n')}`)), ms);
      waiters.push({ re, resolve: (l) => (clearTimeout(t), resolve(l)) });
    });
  return { child, seen, next, exited };
}

async function put(token: string, id: string): Promise<string> {
  const res = await fetch(`${stack.gatewayUrl}/v1/collections/notes/items/${id}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ title: id }),
  });
  expect(res.status).toBe(202);
  return ((await res.json()) as { requestId: string }).requestId;
}

test('with no token given it tails the local dev principal (demo/dev): queued then committed, one line each', async () => {
  // AUTH_SECRET is how the local stack's secret reaches the CLI (npm start keeps it under .data/).
  const t = tail(['--acks', stack.ackUrl], { AUTH_SECRET: stack.env.AUTH_SECRET! });
  await t.next(/^acks: connected to .* as the local dev token \(tenant "demo", sub "dev"\)/);
  const requestId = await put(await stack.token({ tenant: 'demo', sub: 'dev' }), 'tail-1');
  // Another principal's write is not in this tail.
  await put(await stack.token({ tenant: 'demo', sub: 'someone-else' }), 'tail-other');
  const queued = await t.next(new RegExp(`queued +notes/tail-1 .*\\(request ${requestId}\\)`));
  const committed = await t.next(new RegExp(`committed +notes/tail-1 +version 1 .*\\(request ${requestId}\\)`));
  expect(t.seen.indexOf(queued)).toBeLessThan(t.seen.indexOf(committed));
  expect(t.seen.join('\n')).not.toMatch(/tail-other/);
  t.child.kill('SIGINT');
  expect(await t.exited).toBe(0);
});

test('--json prints each ack as the WebSocket carries it; --after replays from a cursor', async () => {
  const token = await stack.token({ tenant: 'demo', sub: 'json-tail' });
  const requestId = await put(token, 'tail-2');
  // Started after the write: --after 0 replays the principal's history from the start.
  const t = tail(['--acks', stack.ackUrl, '--token', token, '--json', '--after', '0']);
  const line = await t.next(/"stage":"committed"/);
  expect(JSON.parse(line)).toMatchObject({ type: 'ack', stage: 'committed', requestId, collection: 'notes', id: 'tail-2', version: 1 });
  t.child.kill('SIGINT');
  expect(await t.exited).toBe(0);
});

test('a token the ack service refuses: one line saying what to do, exit 1, no retry loop', async () => {
  const t = tail(['--acks', stack.ackUrl, '--token', 'not-a-jwt']);
  expect(await t.exited).toBe(1);
  const errors = t.seen.filter((l) => l.startsWith('acks:'));
  expect(errors).toHaveLength(1);
  expect(errors[0]).toMatch(/refused the given token \(401\); pass --token <jwt>/);
});

test('the start banner prints only commands that run as printed (npm scripts that exist, no npx install prompt)', () => {
  const start = readFileSync(path.join(ROOT, 'scripts', 'start.ts'), 'utf8');
  const banner = start.slice(start.indexOf('Ackstream is running.'), start.indexOf('Ctrl-C stops everything.'));
  const scripts = Object.keys((JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts);
  const npmRuns = [...banner.matchAll(/npm run ([a-z:-]+)/g)].map((m) => m[1]!);
  expect(npmRuns).toContain('acks');
  for (const name of npmRuns) expect(scripts).toContain(name);
  // `npx <pkg>` for a package that is not installed stops to ask for confirmation; `npx -y` does not.
  for (const m of banner.matchAll(/npx (\S+)/g)) expect(m[1]).toBe('-y');
});
