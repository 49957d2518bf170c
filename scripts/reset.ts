/** `npm run reset`: wipes the local data directory (emulator data, embedded PostgreSQL, Redis dump, local secret). */
import { existsSync, rmSync } from 'node:fs';
import { DATA_DIR } from './local-stack';

if (existsSync(DATA_DIR)) {
  rmSync(DATA_DIR, { recursive: true, force: true });
  process.stdout.write(`removed ${DATA_DIR}\n`);
} else {
  process.stdout.write(`nothing to remove (${DATA_DIR} does not exist)\n`);
}
