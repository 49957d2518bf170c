/**
 * The local stack keeps its emulators' data bounded the way AWS keeps the deployed data bounded
 * (scripts/local-retention.ts): records past the stream's retention leave kinesalite, request rows
 * past their TTL leave dynalite. Against the real emulators (in process), through the AWS SDK.
 */
import type { Server } from 'node:net';
import { createRequire } from 'node:module';
import { DeleteTableCommand, GetItemCommand, PutItemCommand, QueryCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import { CreateStreamCommand, GetRecordsCommand, GetShardIteratorCommand, ListShardsCommand, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { createDynamo, createKinesis } from '../core/aws';
import { ensureTable, itemsTableDefinition, requestsTableDefinition } from '../core/read-store';
import { dynamoEmulator, kinesisEmulator } from '../scripts/local-stack';
import { StreamTrimmer, TtlSweeper } from '../scripts/local-retention';

const listen = (server: Server) =>
  new Promise<string>((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as { port: number }).port}`)));
const close = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));

const HOUR = 3600_000;

describe('stream retention on kinesalite', () => {
  let server: Server;
  let kinesis: ReturnType<typeof createKinesis>;
  const stream = 'retention-test';

  beforeAll(async () => {
    server = kinesisEmulator();
    kinesis = createKinesis({ region: 'us-east-1', endpoint: await listen(server) });
    await kinesis.send(new CreateStreamCommand({ StreamName: stream, ShardCount: 1 }));
    await new Promise((r) => setTimeout(r, 100));
  });
  afterAll(async () => {
    jest.restoreAllMocks();
    kinesis.destroy();
    await close(server);
  });

  async function put(n: number, tag: string): Promise<void> {
    for (let from = 0; from < n; from += 500) {
      await kinesis.send(new PutRecordsCommand({
        StreamName: stream,
        Records: Array.from({ length: Math.min(500, n - from) }, (_, i) => ({ PartitionKey: 'k', Data: Buffer.from(`${tag}-${from + i}`) })),
      }));
    }
  }

  async function everything(): Promise<string[]> {
    const shardId = (await kinesis.send(new ListShardsCommand({ StreamName: stream }))).Shards![0]!.ShardId!;
    const it = (await kinesis.send(new GetShardIteratorCommand({ StreamName: stream, ShardId: shardId, ShardIteratorType: 'TRIM_HORIZON' }))).ShardIterator;
    const page = await kinesis.send(new GetRecordsCommand({ ShardIterator: it, Limit: 10_000 }));
    return page.Records!.map((r) => Buffer.from(r.Data!).toString());
  }

  test('removes the records older than the retention period and keeps the ones within it', async () => {
    const realNow = Date.now();
    await put(2_500, 'old'); // more than one trimming page (pageSize 1,000)
    // 25 h later (kinesalite and the trimmer read Date.now): the stream's retention is 24 h.
    const clock = jest.spyOn(Date, 'now').mockReturnValue(realNow + 25 * HOUR);
    await put(3, 'new');
    const trimmer = new StreamTrimmer(kinesis, { stream, intervalMs: 60_000, pageSize: 1_000 });
    const { shards } = await trimmer.trim();
    expect(shards).toBe(1);
    await new Promise((r) => setTimeout(r, 200)); // kinesalite deletes what it read past retention asynchronously
    // Back to the real time: the "old" records would be within retention again, had they been kept.
    clock.mockRestore();
    expect(await everything()).toEqual(['new-0', 'new-1', 'new-2']);
  });

  test('a trim with nothing past retention reads one record per shard and keeps everything', async () => {
    const before = await everything();
    const trimmer = new StreamTrimmer(kinesis, { stream, intervalMs: 60_000 });
    expect(await trimmer.trim()).toEqual({ shards: 1, trimmingCalls: 0 });
    expect(await everything()).toEqual(before);
  });
});

describe('TTL of the requests table on dynalite', () => {
  let server: Server;
  let dynamo: ReturnType<typeof createDynamo>;
  let endpoint: string;
  const table = 'ttl-test-requests';

  beforeAll(async () => {
    server = dynamoEmulator();
    endpoint = await listen(server);
    dynamo = createDynamo({ region: 'us-east-1', endpoint });
    await ensureTable(dynamo, requestsTableDefinition(table));
  });
  afterAll(async () => {
    await dynamo.send(new DeleteTableCommand({ TableName: table })).catch(() => undefined);
    dynamo.destroy();
    await close(server);
  });

  const row = (pk: string, expiresAt?: number) =>
    dynamo.send(new PutItemCommand({ TableName: table, Item: { pk: { S: pk }, doc: { S: '{}' }, ...(expiresAt === undefined ? {} : { expiresAt: { N: String(expiresAt) } }) } }));
  /** A client for the sweeper, counted: every Scan it sends is a page (the times it sent them). */
  const countedScans = () => {
    const scans: number[] = [];
    const counted = createDynamo({ region: 'us-east-1', endpoint });
    const send = counted.send.bind(counted);
    counted.send = ((cmd: unknown, ...rest: unknown[]) => {
      if (cmd instanceof ScanCommand) scans.push(Date.now());
      return (send as (...a: unknown[]) => unknown)(cmd, ...rest);
    }) as typeof counted.send;
    return { counted, scans };
  };
  const exists = async (pk: string) => (await dynamo.send(new GetItemCommand({ TableName: table, Key: { pk: { S: pk } }, ConsistentRead: true }))).Item !== undefined;

  test('deletes the rows whose expiresAt has passed, keeps the others and the rows without it, at one page per call', async () => {
    const now = 1_800_000_000;
    for (let i = 0; i < 30; i++) await row(`t#expired-${i}`, now - 1 - i);
    for (let i = 0; i < 5; i++) await row(`t#live-${i}`, now + 3600);
    await row('#projected#shardId-000000000000'); // a projection watermark: no TTL attribute
    const sweeper = new TtlSweeper(dynamo, { table, pageSize: 10, pageIntervalMs: 1_000, nowSeconds: () => now });
    let deleted = 0;
    let pages = 0;
    for (;;) {
      const page = await sweeper.sweepPage();
      expect(page.scanned).toBeLessThanOrEqual(10);
      deleted += page.deleted;
      pages++;
      if (page.done) break;
    }
    expect(deleted).toBe(30);
    expect(pages).toBeGreaterThanOrEqual(4);
    expect(await exists('t#expired-0')).toBe(false);
    expect(await exists('t#expired-29')).toBe(false);
    for (let i = 0; i < 5; i++) expect(await exists(`t#live-${i}`)).toBe(true);
    expect(await exists('#projected#shardId-000000000000')).toBe(true);
  });
  test('after a pass over the whole table, the sweeper rests passIntervalMs before the next (an idle stack is not kept awake)', async () => {
    const { counted, scans } = countedScans();
    // The table holds a few rows: one page is a whole pass.
    const sweeper = new TtlSweeper(counted, { table, pageSize: 1_000, pageIntervalMs: 20, passIntervalMs: 60_000 });
    sweeper.start();
    await new Promise((r) => setTimeout(r, 400));
    await sweeper.stop();
    counted.destroy();
    // One pass (one page), then the rest: not one page every 20 ms (~20 pages).
    expect(scans.length).toBe(1);
  });
  test('a pass tells when a row can next be past its TTL: after the earliest expiresAt still ahead, or at its start plus the least TTL a new row gets', async () => {
    const now = 1_800_000_000;
    await row('t#soon', now + 500);
    await row('t#later', now + 9_000);
    const pass = async (sweeper: TtlSweeper) => {
      for (;;) {
        const page = await sweeper.sweepPage();
        if (page.done) return page;
      }
    };
    // The second after the earliest TTL the pass kept (`expiresAt < now` is expired).
    expect((await pass(new TtlSweeper(dynamo, { table, pageSize: 2, pageIntervalMs: 1_000, nowSeconds: () => now }))).nextPassAt).toBe(now + 501);
    // A row written after the pass began gets at least minTtlSeconds: it bounds the rest too.
    expect((await pass(new TtlSweeper(dynamo, { table, pageSize: 2, pageIntervalMs: 1_000, minTtlSeconds: 100, nowSeconds: () => now }))).nextPassAt).toBe(now + 100);
    // Past that moment the row has expired and the next pass deletes it.
    await pass(new TtlSweeper(dynamo, { table, pageSize: 2, pageIntervalMs: 1_000, nowSeconds: () => now + 501 }));
    expect(await exists('t#soon')).toBe(false);
    expect(await exists('t#later')).toBe(true);
  });
  test('a running sweeper rests until the earliest expiresAt it saw, not a pass every passIntervalMs, and then deletes that row', async () => {
    const { counted, scans } = countedScans();
    const due = Math.floor(Date.now() / 1000) + 2;
    await row('t#due', due);
    const sweeper = new TtlSweeper(counted, { table, pageSize: 1_000, pageIntervalMs: 20, passIntervalMs: 20 });
    sweeper.start();
    const t0 = Date.now();
    while (await exists('t#due')) {
      expect(Date.now() - t0).toBeLessThan(6_000);
      await new Promise((r) => setTimeout(r, 100));
    }
    await sweeper.stop();
    counted.destroy();
    // Deleted once its second had passed; in between the sweeper rested: one pass before, one at
    // that moment (not a pass every 20 ms: ~100).
    expect(Date.now()).toBeGreaterThan((due + 1) * 1000 - 50);
    expect(scans.length).toBeLessThanOrEqual(3);
  });
});

describe('dynalite closes what it reads with', () => {
  let server: Server;
  let dynamo: ReturnType<typeof createDynamo>;

  beforeAll(async () => {
    server = dynamoEmulator();
    dynamo = createDynamo({ region: 'us-east-1', endpoint: await listen(server) });
    await ensureTable(dynamo, itemsTableDefinition('iter-items'));
    for (let i = 0; i < 30; i++) {
      await dynamo.send(new PutItemCommand({ TableName: 'iter-items', Item: { pk: { S: 't#c' }, id: { S: `i${i}` }, updatedAtId: { S: `2026-12-04T00:00:${String(i).padStart(2, '0')}#i${i}` }, doc: { S: '{}' } } }));
    }
  });
  afterAll(async () => {
    dynamo.destroy();
    await close(server);
  });

  // An iterator left open holds its LevelDB version: the files compaction replaced are never deleted
  // and the data directory grows with every write (docs/PERFORMANCE.md, "Data growth").
  test('every Query and Scan closes its LevelDB iterator, whether it read to the end or stopped at its Limit', async () => {
    // The abstract-level of dynalite's in-memory store (memory-level), as dynalite loads it.
    const fromDynalite = createRequire(require.resolve('dynalite'));
    const { AbstractIterator } = createRequire(fromDynalite.resolve('memory-level'))('abstract-level') as { AbstractIterator: { prototype: object } };
    const closes = jest.spyOn(Object.getPrototypeOf(AbstractIterator.prototype) as { close(): Promise<void> }, 'close');
    await dynamo.send(new QueryCommand({ TableName: 'iter-items', IndexName: 'byUpdatedAt', KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': { S: 't#c' } }, ScanIndexForward: false, Limit: 5 }));
    await dynamo.send(new QueryCommand({ TableName: 'iter-items', KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': { S: 't#c' } } }));
    await dynamo.send(new ScanCommand({ TableName: 'iter-items', Limit: 10 }));
    await dynamo.send(new ScanCommand({ TableName: 'iter-items' }));
    await new Promise((r) => setTimeout(r, 50));
    expect(closes.mock.calls.length).toBeGreaterThanOrEqual(4);
    closes.mockRestore();
  });
});
