/**
 * How the operator CLIs (`npm run dlq`, `npm run replay`) find the stack they act on.
 *
 * `npm start` resolves its settings at start-up (DATABASE_URL or the embedded PostgreSQL, the
 * emulators' endpoints, the queue URL, Redis…) and writes what it gave the services to
 * `<data dir>/local-stack.json` (mode 600: it holds the database URL), removing it when it stops.
 * A CLI run with no DATABASE_URL in its environment reads that file; any variable the environment
 * does set still wins over the file's. With DATABASE_URL set, the environment alone is used (a
 * deployed stack): a local file never mixes into it.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../core/errors';

export const LOCAL_SETTINGS_NAME = 'local-stack.json';

/** The variables the services got from `npm start` that the operator CLIs need too. */
export const SHARED_KEYS = [
  'DATABASE_URL', 'REDIS_URL', 'REDIS_PREFIX', 'AWS_REGION',
  'KINESIS_ENDPOINT', 'DYNAMODB_ENDPOINT', 'SQS_ENDPOINT', 'DLQ_URL',
  'KINESIS_STREAM', 'ITEMS_TABLE', 'REQUESTS_TABLE',
] as const;

export interface LocalSettings {
  /** The `npm start` process; a file whose process is gone is stale (a `kill -9`, a crash). */
  pid: number;
  startedAt: string;
  /** True when no Redis was found: acks and the hot read model live inside the `npm start` process. */
  singleNode: boolean;
  env: Record<string, string>;
}

export const localSettingsFile = (dataDir: string) => path.join(dataDir, LOCAL_SETTINGS_NAME);

/** Written by `npm start` once the stack is provisioned. */
export function writeLocalSettings(dataDir: string, serviceEnv: NodeJS.ProcessEnv, singleNode: boolean): string {
  const env: Record<string, string> = {};
  for (const k of SHARED_KEYS) if (serviceEnv[k] !== undefined) env[k] = serviceEnv[k]!;
  const settings: LocalSettings = { pid: process.pid, startedAt: new Date().toISOString(), singleNode, env };
  const file = localSettingsFile(dataDir);
  writeFileSync(file, `${JSON.stringify(settings, null, 2)}\n`, { mode: 0o600 });
  return file;
}

/** Removed by `npm start` when it stops, and only if it is still its own file. */
export function removeLocalSettings(dataDir: string): void {
  const file = localSettingsFile(dataDir);
  try {
    const s = JSON.parse(readFileSync(file, 'utf8')) as LocalSettings;
    if (s.pid === process.pid) rmSync(file, { force: true });
  } catch {
    // absent or unreadable: nothing of ours to remove
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // running, as another user
  }
}

const HOW = 'start the local stack with `npm start` (in another terminal), or set DATABASE_URL and the rest of the processors\' settings for a deployed stack (docs/RUNBOOK.md)';

/**
 * The environment an operator CLI runs with: `env` itself when it sets DATABASE_URL; else the
 * running local stack's settings under `env`'s own variables. Fails with one line saying what to do.
 */
export function operatorEnv(env: NodeJS.ProcessEnv, dataDir: string): NodeJS.ProcessEnv & { ACKSTREAM_SINGLE_NODE?: string } {
  if (env.DATABASE_URL) return env;
  const file = localSettingsFile(dataDir);
  if (!existsSync(file)) throw new ConfigError(`No DATABASE_URL in the environment and no running local stack (${file} not found): ${HOW}.`);
  let s: LocalSettings;
  try {
    s = JSON.parse(readFileSync(file, 'utf8')) as LocalSettings;
  } catch (err) {
    throw new ConfigError(`${file} is unreadable (${(err as Error).message}): ${HOW}.`);
  }
  if (!alive(s.pid)) throw new ConfigError(`The local stack that wrote ${file} (pid ${s.pid}, started ${s.startedAt}) is no longer running: ${HOW}.`);
  const defined = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined));
  return { ...s.env, ...(s.singleNode ? { ACKSTREAM_SINGLE_NODE: '1' } : {}), ...defined };
}
