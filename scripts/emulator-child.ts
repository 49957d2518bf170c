/**
 * One AWS emulator of the local stack (scripts/local-stack.ts) in its own process, so a fault test can `kill -9` and restart it:
 * `node --import tsx emulator-child.ts kinesis|dynamodb <port> <dataDir> [nice]`. Data persists in dataDir
 * (`memory`: kept in memory only, as `npm start`'s in-process emulators do without a data dir).
 */
import { mkdirSync, readdirSync } from 'node:fs';
import type { Server } from 'node:net';
import os from 'node:os';
import { dynamoEmulator, idleLaterThreads, kinesisEmulator, localEnv } from './local-stack';

/**
 * `[nice]` (1–19, LOCAL_DYNAMODB_NICE): this process at a lower CPU priority. A niceness is
 * per thread on Linux and a new thread takes its creator's: Node's own threads exist already, so
 * each one present is set (here and once listening, when libuv's thread pool is up); threads
 * started later (LevelDB's compaction thread) inherit it, or go to the idle scheduling class
 * (LOCAL_DYNAMODB_COMPACTION; idleLaterThreads).
 */
const nice = Number(process.argv[5] ?? 0);
const lowerPriority = () => {
  if (!(nice > 0)) return;
  const threads = process.platform === 'linux' ? readdirSync('/proc/self/task').map(Number) : [0];
  for (const tid of threads) {
    try {
      os.setPriority(tid, nice);
    } catch {
      // a thread that just ended
    }
  }
};
lowerPriority();

const [kind, portArg, dir] = process.argv.slice(2);
if ((kind !== 'kinesis' && kind !== 'dynamodb') || !portArg || !dir) {
  process.stderr.write('usage: emulator-child.ts kinesis|dynamodb <port> <dataDir>\n');
  process.exit(2);
}
if (dir !== 'memory') mkdirSync(dir, { recursive: true });
let server: Server | undefined;
void (async () => {
  // LevelDB's compactions on spare CPU, as `npm start` runs them (LOCAL_DYNAMODB_COMPACTION,
  // LOCAL_KINESIS_COMPACTION); set before the store opens: a grown store may compact as it opens.
  const env = localEnv();
  if (kind === 'dynamodb' ? nice > 0 && env.LOCAL_DYNAMODB_COMPACTION === 'idle' : env.LOCAL_KINESIS_COMPACTION === 'idle') await idleLaterThreads();
  server = kind === 'kinesis' ? kinesisEmulator(dir === 'memory' ? undefined : dir) : dynamoEmulator(dir === 'memory' ? undefined : dir);
  server.listen(Number(portArg), '127.0.0.1', () => {
    lowerPriority();
    process.stdout.write(`${kind} listening\n`);
  });
})();
process.on('SIGTERM', () => {
  if (!server) process.exit(0);
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref(); // idle keep-alive sockets must not hold it
});

// Ctrl-C reaches the whole process group: `npm start` stops its emulators itself, after the
// services (which may still checkpoint through them). Should that parent die, so does this.
process.on('SIGINT', () => undefined);
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(0);
}, 2000).unref();
