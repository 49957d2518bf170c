/**
 * dynalite opens its on-disk LevelDB with the options the local stack asks for (DYNALITE_LEVELDB,
 * DYNALITE_CACHE_MB; tuneDynaliteStore in scripts/local-stack.ts), which dynalite itself has no way
 * to pass. Checked on LevelDB's behaviour, through the AWS SDK against the real emulator on disk:
 * a store with LevelDB's 4 MB write buffer flushes a 6 MB burst of writes to a table file (.ldb),
 * one opened with the stack's 32 MB buffer keeps it in its log. The cache size and table file size
 * travel in the same options object. With LOCAL_DYNAMODB_NICE the emulator runs in a process of its
 * own at a lower CPU priority: every thread of it, LevelDB's compaction thread included, which is
 * also put in the idle scheduling class (LOCAL_DYNAMODB_COMPACTION).
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import type { Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { createDynamo } from '../core/aws';
import { ensureTable, requestsTableDefinition } from '../core/read-store';
import { threadsOf } from './helpers/scheduling';
import { dynaliteStoreOptionsOf, dynamoEmulator, localEnv, startEmulators, type DynaliteStoreOptions } from '../scripts/local-stack';

const listen = (server: Server) =>
  new Promise<string>((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as { port: number }).port}`)));
const close = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));
const MB = 2 ** 20;
const table = 'store-test';

let root: string;
beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'dynalite-store-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Opens an emulator on `dir` with `store`, runs `work` against it, closes it (LevelDB finishes its compactions on close). */
async function withEmulator(dir: string, store: DynaliteStoreOptions, work: (dynamo: ReturnType<typeof createDynamo>) => Promise<void>): Promise<void> {
  const server = dynamoEmulator(dir, store);
  const dynamo = createDynamo({ region: 'us-east-1', endpoint: await listen(server) });
  try {
    await ensureTable(dynamo, requestsTableDefinition(table));
    await work(dynamo);
  } finally {
    dynamo.destroy();
    await close(server);
  }
}

/** 20 rows of 300 KB: 6 MB, more than LevelDB's default write buffer (4 MB), less than the stack's (32 MB). */
async function burst(dynamo: ReturnType<typeof createDynamo>): Promise<void> {
  for (let i = 0; i < 20; i++) {
    await dynamo.send(new PutItemCommand({ TableName: table, Item: { pk: { S: `row-${i}` }, doc: { S: String(i).padEnd(300_000, 'x') } } }));
  }
}

const tableFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.ldb'));

describe("dynalite's LevelDB options", () => {
  test('the stack opens it tuned by default: a 64 MB block cache, a 32 MB write buffer, 8 MB table files', () => {
    expect(dynaliteStoreOptionsOf(localEnv({}))).toEqual({ cacheSize: 64 * MB, writeBufferSize: 32 * MB, maxFileSize: 8 * MB });
    expect(dynaliteStoreOptionsOf(localEnv({ DYNALITE_CACHE_MB: '256' })).cacheSize).toBe(256 * MB);
    expect(dynaliteStoreOptionsOf(localEnv({ DYNALITE_LEVELDB: 'default' }))).toEqual({});
    expect(() => localEnv({ DYNALITE_LEVELDB: 'big' })).toThrow(/DYNALITE_LEVELDB/);
  });

  test("with LevelDB's defaults, a 6 MB burst overflows the 4 MB write buffer into a table file", async () => {
    const dir = path.join(root, 'default');
    await withEmulator(dir, dynaliteStoreOptionsOf(localEnv({ DYNALITE_LEVELDB: 'default' })), burst);
    expect(tableFiles(dir).length).toBeGreaterThan(0);
  });

  test("with the stack's options the same burst stays in the 32 MB write buffer: the options reach the LevelDB dynalite opens", async () => {
    const dir = path.join(root, 'tuned');
    await withEmulator(dir, dynaliteStoreOptionsOf(localEnv({})), burst);
    expect(tableFiles(dir)).toEqual([]);
  });

  test('a tuned store reopens with its data (tuned or not)', async () => {
    const dir = path.join(root, 'tuned');
    for (const store of [dynaliteStoreOptionsOf(localEnv({})), {}]) {
      await withEmulator(dir, store, async (dynamo) => {
        const out = await dynamo.send(new GetItemCommand({ TableName: table, Key: { pk: { S: 'row-19' } }, ConsistentRead: true }));
        expect(out.Item?.doc?.S).toHaveLength(300_000);
      });
    }
  });
});

const threadNiceness = (pid: number) => threadsOf(pid).map((t) => t.nice);

describe('LOCAL_DYNAMODB_NICE: the DynamoDB emulator in a process of its own at a lower CPU priority', () => {
  test('niceness 10 by default (a process of its own); 0 keeps it in the orchestrator beside Kinesis; 1–19 accepted', () => {
    expect(localEnv({}).LOCAL_DYNAMODB_NICE).toBe(10);
    expect(localEnv({ LOCAL_DYNAMODB_NICE: '0' }).LOCAL_DYNAMODB_NICE).toBe(0);
    expect(localEnv({ LOCAL_DYNAMODB_NICE: '10' }).LOCAL_DYNAMODB_NICE).toBe(10);
    expect(() => localEnv({ LOCAL_DYNAMODB_NICE: '20' })).toThrow(/LOCAL_DYNAMODB_NICE/);
  });

  test('LOCAL_DYNAMODB_COMPACTION: idle by default, nice on request', () => {
    expect(localEnv({}).LOCAL_DYNAMODB_COMPACTION).toBe('idle');
    expect(localEnv({ LOCAL_DYNAMODB_COMPACTION: 'nice' }).LOCAL_DYNAMODB_COMPACTION).toBe('nice');
    expect(() => localEnv({ LOCAL_DYNAMODB_COMPACTION: 'fast' })).toThrow(/LOCAL_DYNAMODB_COMPACTION/);
  });

  (process.platform === 'linux' ? test : test.skip)('every thread of that process runs at the niceness, LevelDB compacting in the idle class, and it keeps its data on disk', async () => {
    const dataDir = path.join(root, 'niced');
    const emulators = await startEmulators({ dataDir, dynamoNice: 10 });
    const dynamo = createDynamo({ region: 'us-east-1', endpoint: emulators.dynamoEndpoint });
    try {
      expect(emulators.dynamoPid).toBeGreaterThan(0);
      expect(emulators.dynamoPid).not.toBe(process.pid);
      await ensureTable(dynamo, requestsTableDefinition(table));
      // Past the stack's 32 MB write buffer: LevelDB flushes and compacts in threads it starts now.
      for (let round = 0; round < 8; round++) {
        for (let i = 0; i < 20; i++) {
          await dynamo.send(new PutItemCommand({ TableName: table, Item: { pk: { S: `n${round}-${i}` }, doc: { S: String(i).padEnd(300_000, 'x') } } }));
        }
      }
      const out = await dynamo.send(new GetItemCommand({ TableName: table, Key: { pk: { S: 'n7-19' } }, ConsistentRead: true }));
      expect(out.Item?.doc?.S).toHaveLength(300_000);
      const niceness = threadNiceness(emulators.dynamoPid!);
      expect(niceness.length).toBeGreaterThan(4);
      expect(new Set(niceness)).toEqual(new Set([10]));
      // The thread LevelDB started for its flush and compactions goes into the idle class within a
      // second or so of starting (LOCAL_DYNAMODB_COMPACTION); the threads that serve requests do not.
      let priorities = threadsOf(emulators.dynamoPid!);
      for (let i = 0; i < 40 && !priorities.some((t) => t.idle); i++) {
        await new Promise((r) => setTimeout(r, 100));
        priorities = threadsOf(emulators.dynamoPid!);
      }
      expect(priorities.filter((t) => t.idle).length).toBeGreaterThanOrEqual(1);
      expect(priorities.filter((t) => !t.idle).length).toBeGreaterThan(4);
      expect(tableFiles(path.join(dataDir, 'dynamodb')).length).toBeGreaterThan(0);
    } finally {
      dynamo.destroy();
      await emulators.close();
    }
  });
});
