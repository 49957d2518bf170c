/**
 * kinesalite opens its on-disk LevelDB (leveldown) with the options the local stack asks for
 * (KINESALITE_LEVELDB, KINESALITE_CACHE_MB; tuneKinesaliteStore in scripts/local-stack.ts), which
 * kinesalite itself has no way to pass. Checked on LevelDB's behaviour, through the AWS SDK against
 * the real emulator on disk: a store with LevelDB's 4 MB write buffer flushes a 6 MB burst of
 * records to a table file (.ldb), one opened with the tuned 32 MB buffer keeps it in its log.
 * The cache size and table file size travel in the same options object.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import type { Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { CreateStreamCommand, GetRecordsCommand, GetShardIteratorCommand, ListShardsCommand, PutRecordCommand } from '@aws-sdk/client-kinesis';
import { createKinesis } from '../core/aws';
import { kinesaliteStoreOptionsOf, kinesisEmulator, localEnv, type KinesaliteStoreOptions } from '../scripts/local-stack';

const listen = (server: Server) =>
  new Promise<string>((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as { port: number }).port}`)));
const close = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));
const MB = 2 ** 20;
const stream = 'store-test';

let root: string;
beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'kinesalite-store-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Opens an emulator on `dir` with `store`, runs `work` against it, closes it. */
async function withEmulator(dir: string, store: KinesaliteStoreOptions, work: (kinesis: ReturnType<typeof createKinesis>) => Promise<void>): Promise<void> {
  const server = kinesisEmulator(dir, store);
  const kinesis = createKinesis({ region: 'us-east-1', endpoint: await listen(server) });
  try {
    await work(kinesis);
  } finally {
    kinesis.destroy();
    await close(server);
  }
}

/** 20 records of 300 KB (about 400 KB each as kinesalite stores them, base64 in JSON): 8 MB, more than LevelDB's default write buffer (4 MB), less than the stack's (32 MB). */
async function burst(kinesis: ReturnType<typeof createKinesis>): Promise<void> {
  await kinesis.send(new CreateStreamCommand({ StreamName: stream, ShardCount: 1 }));
  await new Promise((r) => setTimeout(r, 100));
  for (let i = 0; i < 20; i++) {
    await kinesis.send(new PutRecordCommand({ StreamName: stream, PartitionKey: 'k', Data: Buffer.from(String(i).padEnd(300_000, 'x')) }));
  }
}

const tableFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.ldb'));

describe("kinesalite's LevelDB options", () => {
  test("the stack opens it with LevelDB's defaults unless asked; tuned: a 32 MB block cache, a 32 MB write buffer, 8 MB table files", () => {
    expect(kinesaliteStoreOptionsOf(localEnv({}))).toEqual({});
    expect(kinesaliteStoreOptionsOf(localEnv({ KINESALITE_LEVELDB: 'tuned' }))).toEqual({ cacheSize: 32 * MB, writeBufferSize: 32 * MB, maxFileSize: 8 * MB });
    expect(kinesaliteStoreOptionsOf(localEnv({ KINESALITE_LEVELDB: 'tuned', KINESALITE_CACHE_MB: '128' })).cacheSize).toBe(128 * MB);
    expect(kinesaliteStoreOptionsOf(localEnv({ KINESALITE_LEVELDB: 'default' }))).toEqual({});
    expect(() => localEnv({ KINESALITE_LEVELDB: 'big' })).toThrow(/KINESALITE_LEVELDB/);
  });

  test("with LevelDB's defaults, an 8 MB burst overflows the 4 MB write buffer into a table file", async () => {
    const dir = path.join(root, 'default');
    await withEmulator(dir, kinesaliteStoreOptionsOf(localEnv({ KINESALITE_LEVELDB: 'default' })), burst);
    expect(tableFiles(dir).length).toBeGreaterThan(0);
  });

  test("with the tuned options the same burst stays in the 32 MB write buffer: the options reach the LevelDB kinesalite opens", async () => {
    const dir = path.join(root, 'tuned');
    await withEmulator(dir, kinesaliteStoreOptionsOf(localEnv({ KINESALITE_LEVELDB: 'tuned' })), burst);
    expect(tableFiles(dir)).toEqual([]);
  });

  test('a tuned store reopens with its records (tuned or not)', async () => {
    const dir = path.join(root, 'tuned');
    for (const store of [kinesaliteStoreOptionsOf(localEnv({ KINESALITE_LEVELDB: 'tuned' })), {}]) {
      await withEmulator(dir, store, async (kinesis) => {
        const shardId = (await kinesis.send(new ListShardsCommand({ StreamName: stream }))).Shards![0]!.ShardId!;
        const it = (await kinesis.send(new GetShardIteratorCommand({ StreamName: stream, ShardId: shardId, ShardIteratorType: 'TRIM_HORIZON' }))).ShardIterator;
        const page = await kinesis.send(new GetRecordsCommand({ ShardIterator: it, Limit: 100 }));
        expect(page.Records).toHaveLength(20);
        expect(Buffer.from(page.Records![19]!.Data!).toString()).toHaveLength(300_000);
      });
    }
  });
});
