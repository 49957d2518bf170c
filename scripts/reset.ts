/** `npm run reset`: wipes the local data directory (emulator data, embedded PostgreSQL, Redis dump, local secret). */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { DATA_DIR } from './local-stack';
import { RELOCATED_NOTE } from './local-postgres';

// As root from a private directory, PostgreSQL's data lives elsewhere; .data/ says where.
const note = path.join(DATA_DIR, RELOCATED_NOTE);
if (existsSync(note)) {
  const pgData = readFileSync(note, 'utf8').trim();
  if (pgData && existsSync(pgData)) {
    rmSync(pgData, { recursive: true, force: true });
    process.stdout.write(`removed ${pgData}\n`);
  }
}
if (existsSync(DATA_DIR)) {
  rmSync(DATA_DIR, { recursive: true, force: true });
  process.stdout.write(`removed ${DATA_DIR}\n`);
} else {
  process.stdout.write(`nothing to remove (${DATA_DIR} does not exist)\n`);
}
