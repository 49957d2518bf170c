/** Versioned schema migrations (node-pg-migrate), run at start-up by the processors and the local stack. */
import path from 'node:path';
import { runner } from 'node-pg-migrate';

export const MIGRATIONS_DIR = path.join(__dirname, 'migrations');

/** Applies what is missing; returns the names of the migrations this call ran (none: already current). */
export async function migrate(databaseUrl: string, log: (msg: string) => void = () => undefined): Promise<string[]> {
  const ran = await runner({
    databaseUrl,
    dir: MIGRATIONS_DIR,
    direction: 'up',
    migrationsTable: 'pgmigrations',
    count: Infinity,
    log,
    noLock: false,
    checkOrder: true,
  });
  return ran.map((m) => m.name);
}
