/**
 * `npm run bench -- --target ...`: the load scenarios driven over the public API against a running
 * stack (here the real local one, standing in for a deployment), not servers the bench starts.
 * A short, tiny-load run: it proves the mode works end to end, it is not a measurement.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startStack, type Stack } from './helpers/stack';

const ROOT = path.resolve(__dirname, '..');

let stack: Stack;
let out: string;

beforeAll(async () => {
  stack = await startStack('bench_target');
  out = mkdtempSync(path.join(os.tmpdir(), 'ackstream-bench-target-test-'));
});

afterAll(async () => {
  rmSync(out, { recursive: true, force: true });
  await stack?.close();
});

function bench(args: string[]): Promise<{ code: number | null; text: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench', 'run.ts'), ...args], {
      cwd: ROOT,
      env: { ...process.env, TOKEN: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.stderr.on('data', (d: Buffer) => (text += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, text }));
  });
}

const target = () => `gateway=${stack.gatewayUrl},read=${stack.readUrl},acks=${stack.ackUrl}`;

interface Report {
  target: { gateway: string };
  failures: Array<{ scenario: string; error: string }>;
  skipped: Array<{ scenario: string; reason: string }>;
  results: Array<{ scenario: string; figures: Array<{ name: string; value: number; unit: string }> }>;
}

test('every public-API scenario runs against the target and reports real figures; the local-only ones say they are skipped', async () => {
  const token = await stack.token({ tenant: 'bench-t', sub: 'bench' });
  const dir = path.join(out, 'ok');
  const { code, text } = await bench(['--target', target(), '--token', token, '--quick', '--seconds', '2', '--out', dir]);
  expect(text).not.toMatch(/failed:/);
  expect(code).toBe(0);
  expect(text).toMatch(/\[bench\] pipeline: skipped in target mode: needs local internals/);
  expect(text).toMatch(/\[bench\] replay: skipped in target mode: needs direct access to the event log/);

  const report = JSON.parse(readFileSync(path.join(dir, readdirSync(dir).find((f) => f.endsWith('-target.json'))!), 'utf8')) as Report;
  expect(report.target.gateway).toBe(stack.gatewayUrl);
  expect(report.failures).toEqual([]);
  expect(report.skipped.map((s) => s.scenario).sort()).toEqual(['attachments', 'pipeline', 'replay', 'system', 'system-growth']);
  const fig = (scenario: string, name: RegExp) => report.results.find((r) => r.scenario === scenario)?.figures.find((f) => name.test(f.name));
  expect(report.results.map((r) => r.scenario)).toEqual(['writes', 'acks', 'reads', 'mixed']);
  expect(fig('writes', /^accepted writes/)!.value).toBeGreaterThan(0);
  expect(fig('writes', /^non-202/)!.value).toBe(0);
  expect(fig('reads', /^item reads/)!.value).toBeGreaterThan(0);
  expect(fig('reads', /^read errors/)!.value).toBe(0);
  expect(fig('acks', /^committed writes/)!.value).toBeGreaterThan(0);
  expect(fig('acks', /^rejected \+ failed/)!.value).toBe(0);
  expect(fig('mixed', /^reads/)!.value).toBeGreaterThan(0);
  expect(fig('mixed', /^writes committed/)!.value).toBeGreaterThan(0);

  // The writes went through the deployment's own pipeline: committed in its database.
  const { rows } = await stack.pg.query("SELECT count(*)::int AS n FROM items WHERE tenant = 'bench-t' AND collection = 'bench'");
  expect(rows[0].n).toBeGreaterThan(0);
}, 120_000);

test('a token the target refuses gives no figures: the scenario fails with why, exit 1', async () => {
  const { signToken } = await import('../core/auth');
  const foreign = await signToken('not-this-deployments-secret-0123456789', { tenant: 'bench-t', sub: 'bench' });
  const { code, text } = await bench(['--target', target(), '--token', foreign, 'writes', '--quick', '--seconds', '1', '--out', path.join(out, 'bad')]);
  expect(code).toBe(1);
  expect(text).toMatch(/writes failed: no successful writes \(202\) .*"401":.*check the gateway URL and the token/);
});

test('a malformed --target is a usage error', async () => {
  const { code, text } = await bench(['--target', `gateway=${stack.gatewayUrl},read=${stack.readUrl}`, '--token', 'x']);
  expect(code).toBe(2);
  expect(text).toMatch(/acks=<url> is missing/);
});
