/**
 * `npm run smoke` (scripts/smoke.ts) as an operator runs it after a deploy: a child process given
 * the three URLs and a token, here pointed at the real local stack. It must pass on a healthy
 * stack and exit non-zero, naming the step and the deviation, when something is off.
 */
import { spawn } from 'node:child_process';
import { createServer, request, type Server } from 'node:http';
import { connect } from 'node:net';
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

/**
 * One host in front of the three services, routed as the AWS load balancer's listener rules do
 * (infra/lib/ackstream-stack.ts): writes to the gateway, GETs of items and requests to the read API,
 * /v1/acks to the ack service, anything else (/healthz included) 404 from the balancer itself.
 */
function loadBalancer(): Promise<{ url: string; server: Server }> {
  const pick = (method: string, url: string): string | undefined => {
    const p = url.split('?')[0]!;
    if (p === '/v1/acks' || p.startsWith('/v1/acks/')) return stack.ackUrl.replace(/^ws/, 'http');
    if (p.startsWith('/v1/collections/') && ['PUT', 'PATCH', 'DELETE'].includes(method)) return stack.gatewayUrl;
    if ((p.startsWith('/v1/collections/') || p.startsWith('/v1/requests/')) && ['GET', 'HEAD'].includes(method)) return stack.readUrl;
    return undefined;
  };
  const server = createServer((req, res) => {
    const to = pick(req.method!, req.url!);
    if (!to) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found');
      return;
    }
    const up = request(`${to}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode!, r.headers);
      r.pipe(res);
    });
    req.pipe(up);
  });
  server.on('upgrade', (req, socket, head) => {
    const to = pick('GET', req.url!);
    if (!to?.startsWith(stack.ackUrl.replace(/^ws/, 'http'))) return socket.end('HTTP/1.1 404 Not Found\r\n\r\n');
    const u = new URL(to);
    const upstream = connect(Number(u.port), u.hostname, () => {
      upstream.write(`${req.method} ${req.url} HTTP/1.1\r\n${Object.entries(req.headers).map(([k, v]) => `${k}: ${String(v)}`).join('\r\n')}\r\n\r\n`);
      upstream.write(head);
      socket.pipe(upstream).pipe(socket);
    });
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ url: `127.0.0.1:${(server.address() as { port: number }).port}`, server })));
}

test('one host routed like the AWS load balancer (no public /healthz): the health steps are skipped, the item life passes', async () => {
  const lb = await loadBalancer();
  try {
    const { code, out } = await smoke(['--gateway', `http://${lb.url}`, '--read', `http://${lb.url}`, '--acks', `ws://${lb.url}`, '--token', token]);
    expect(out).toMatch(/skip +gateway GET \/healthz → 200 .*not routed publicly here \(404\)/);
    expect(out).toMatch(/ok +DELETE committed ack \(WebSocket\) .*version 3/);
    expect(out).toMatch(/smoke: PASS/);
    expect(code).toBe(0);
  } finally {
    lb.server.closeAllConnections();
    lb.server.close();
  }
});
