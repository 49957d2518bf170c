/**
 * docs/CONFIGURATION.md is generated from the configuration schemas (scripts/config-docs.ts):
 * it must match what the schemas say now, and no service code may read the environment around them.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { CONFIGURATION_MD, configurationMarkdown } from '../scripts/config-docs';

const ROOT = path.resolve(__dirname, '..');

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) return name === 'node_modules' || name === 'static' ? [] : tsFiles(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

test('docs/CONFIGURATION.md is what `npm run docs:config` generates from the schemas', () => {
  // On failure: run `npm run docs:config` and commit docs/CONFIGURATION.md.
  expect(readFileSync(CONFIGURATION_MD, 'utf8')).toBe(configurationMarkdown());
});

test('every documented schema variable appears in the generated document, each under its entry point', () => {
  const md = configurationMarkdown();
  for (const name of ['GATEWAY_PORT', 'PG_POOL_SIZE', 'RESUME_PAGE_SIZE', 'REPLAY_PAGE_SIZE', 'READ_NEAR_CACHE_MAX_BYTES', 'DB_SECRET_ARN', 'ACKSTREAM_DATA_DIR']) {
    expect(md).toContain(`| \`${name}\` |`);
  }
});

test('service code reads the environment only through a schema (loadConfig)', () => {
  const dirs = ['core', 'gateway', 'processors', 'ack-service', 'read-model', 'scripts', 'client'];
  const raw: string[] = [];
  for (const file of dirs.flatMap((d) => tsFiles(path.join(ROOT, d)))) {
    readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
      // Allowed: handing the whole environment to a schema (loadConfig(X, process.env)), to a child process, or as a default parameter.
      if (/process\.env\.[A-Z_]|process\.env\[/.test(line)) raw.push(`${path.relative(ROOT, file)}:${i + 1}: ${line.trim()}`);
    });
  }
  expect(raw).toEqual([]);
});
