/**
 * dynalite opens its on-disk LevelDB with the options the local stack asks for (DYNALITE_LEVELDB,
 * DYNALITE_CACHE_MB; tuneDynaliteStore in scripts/local-stack.ts), which dynalite itself has no way
 * to pass. Checked on LevelDB's behaviour, through the AWS SDK against the real emulator on disk:
 * a store with LevelDB's 4 MB write buffer flushes a 6 MB burst of writes to a table file (.ldb),
 * one opened with the stack's 32 MB buffer keeps it in its log. The cache size and table file size
 * travel in the same options object.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import type { Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { createDynamo } from '../core/aws';
import { ensureTable, requestsTableDefinition } from '../core/read-store';
import { dynaliteStoreOptionsOf, dynamoEmulator, localEnv, type DynaliteStoreOptions } from '../scripts/local-stack';

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
