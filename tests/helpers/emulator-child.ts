/**
 * One AWS emulator in its own process, so a fault test can `kill -9` and restart it:
 * `node --import tsx emulator-child.ts kinesis|dynamodb <port> <dataDir>`. Data persists in dataDir
 * (`memory`: kept in memory only, as `npm start`'s in-process emulators do without a data dir).
 */
import { mkdirSync } from 'node:fs';
import type { Server } from 'node:net';

const [kind, portArg, dir] = process.argv.slice(2);
if ((kind !== 'kinesis' && kind !== 'dynamodb') || !portArg || !dir) {
  process.stderr.write('usage: emulator-child.ts kinesis|dynamodb <port> <dataDir>\n');
  process.exit(2);
}
const persist = dir === 'memory' ? {} : { path: dir };
if (dir !== 'memory') mkdirSync(dir, { recursive: true });
/* eslint-disable @typescript-eslint/no-require-imports */
const server: Server =
  kind === 'kinesis'
    ? (require('kinesalite') as (o: object) => Server)({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100, ...persist })
    : (require('dynalite') as (o: object) => Server)({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0, ...persist });
server.listen(Number(portArg), '127.0.0.1', () => process.stdout.write(`${kind} listening\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
