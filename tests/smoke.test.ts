/**
 * `npm run smoke` (scripts/smoke.ts) as an operator runs it after a deploy: a child process given
 * the three URLs and a token, here pointed at the real local stack. It must pass on a healthy
 * stack and exit non-zero, naming the step and the deviation, when something is off.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { startStack, type Stack } from './helpers/stack';

const ROOT = path.resolve(__dirname, '..');

let stack: Stack;
let token: string;

beforeAll(async () => {
  stack = await startStack('smoke');
  token = await stack.token({ tenant: 'smoke-t', sub: 'deployer' });
});

afterAll(async () => {
  await stack?.close();
});

function smoke(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts', 'smoke.ts'), ...args], {
      cwd: ROOT,
      env: { ...process.env, TOKEN: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, out }));
  });
}

const urls = () => ['--gateway', stack.gatewayUrl, '--read', stack.readUrl, '--acks', stack.ackUrl];

test('a healthy stack passes every step of an item life, each printed with its time, exit 0', async () => {
  const { code, out } = await smoke([...urls(), '--token', token]);
  expect(out).toMatch(/smoke: PASS, \d+ steps/);
  expect(code).toBe(0);
  for (const step of [
    /ok +gateway GET \/healthz → 200 +[\d.]+ ms/,
    /ok +ack WebSocket opens/,
    /ok +PUT \/v1\/collections\/smoke\/items\/smoke-[^ ]+ → 202 .*requestId/,
    /ok +PUT queued ack \(WebSocket\) .*cursor \d+/,
    /ok +PUT committed ack \(WebSocket\) .*version 1/,
    /ok +GET .*\?minVersion=1 → 200 v1 .*ETag "1"/,
    /ok +GET \/v1\/requests\/\{requestId\} → 200 committed/,
    /ok +PATCH committed ack \(WebSocket\) .*version 2/,
    /ok +GET .*\?minVersion=2 → 200 v2 .*ETag "2"/,
    /ok +DELETE committed ack \(WebSocket\) .*version 3/,
    /ok +GET .*\?minVersion=3 → 404/,
  ]) {
    expect(out).toMatch(step);
  }
  expect(out).not.toMatch(/FAIL/);
});

test('a read URL pointing at the wrong service is a deviation: exit 1, the failing step and why', async () => {
  const { code, out } = await smoke(['--gateway', stack.gatewayUrl, '--read', stack.gatewayUrl, '--acks', stack.ackUrl, '--token', token]);
  expect(code).toBe(1);
  // The gateway has /healthz too, so the run gets as far as the first read.
  expect(out).toMatch(/FAIL +GET \/v1\/collections\/smoke\/items\/[^ ]+\?minVersion=1 → 200 v1 .*expected 200, got 404.*is --read the read API/);
  expect(out).toMatch(/smoke: FAIL after/);
  expect(out).not.toMatch(/PASS/);
});

test('a token the deployment does not accept: exit 1 at the ack WebSocket, saying to check the token', async () => {
  const { signToken } = await import('../core/auth');
  const foreign = await signToken('another-deployments-secret-0123456789abcdef', { tenant: 'smoke-t', sub: 'deployer' });
  const { code, out } = await smoke([...urls(), '--token', foreign]);
  expect(code).toBe(1);
  expect(out).toMatch(/FAIL +ack WebSocket opens .*401.*token/);
});

test('missing flags are a usage error (exit 2), not a run', async () => {
  const { code, out } = await smoke(['--gateway', 'http://127.0.0.1:1']);
  expect(code).toBe(2);
  expect(out).toMatch(/missing --read, --acks, --token/);
});
