/**
 * The write floor of the `system` scenario (bench/scenarios/system.ts): the least any write API
 * can do on this machine for the same guarantees, on the same parts of the running stack, driven
 * by the same load generator at the same rates.
 *
 * - `202` floor: a bare `node:http` server that answers 202 only after the stream accepted the
 *   record: the writes that arrive in one event-loop turn go in one PutRecords call (the gateway's
 *   own signed-HTTP sender, core/kinesis-http.ts, its cheapest path) to the stack's Kinesis
 *   emulator, on a stream of its own so the stack's processors never read it.
 * - final-ack floor: a bare consumer reads that stream (GetRecords on each shard, again at once
 *   while records come, every POLL_INTERVAL_MS (20 ms, the runner's default) when empty, no
 *   backoff), commits each batch with one INSERT into the stack's PostgreSQL, and only then
 *   sends `committed` on the WebSocket of the write's principal (`queued` when the stream
 *   accepted it), in the ack service's message shape, so the load generator measures it as it
 *   measures the stack.
 *
 * Left out on purpose (what the stack adds on top of the floor): authentication, validation,
 * idempotency, rate limits, the per-request log line, the decision (versions, conditions), the
 * event log and current state, Redis (hot copy, ack log and pub/sub), DynamoDB and checkpoints.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CreateStreamCommand, DescribeStreamSummaryCommand, ListShardsCommand, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { SignatureV4 } from '@smithy/signature-v4';
import { Pool } from 'pg';
import { WebSocket, WebSocketServer } from 'ws';
import { createKinesis } from '../core/aws';
import { HttpKinesisClient, NodeSha256 } from '../core/kinesis-http';

const FLOOR_STREAM = 'bench-floor';
const POLL_INTERVAL_MS = 20;
const CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };


/** Signed Kinesis JSON calls (GetShardIterator, GetRecords) over a keep-alive agent: the consumer's cheapest path. */
class KinesisCalls {
  private readonly url: URL;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  private readonly signer: SignatureV4;

  constructor(endpoint: string, region: string) {
    this.url = new URL(endpoint);
    this.signer = new SignatureV4({ credentials: CREDENTIALS, region, service: 'kinesis', sha256: NodeSha256, uriEscapePath: true });
  }

  async call<T>(target: string, input: unknown): Promise<T> {
    const body = JSON.stringify(input);
    const signed = await this.signer.sign({
      method: 'POST', protocol: this.url.protocol, hostname: this.url.hostname, port: Number(this.url.port), path: '/', query: {}, body,
      headers: { host: this.url.host, 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': `Kinesis_20131202.${target}`, 'content-length': String(Buffer.byteLength(body)) },
    });
    return new Promise((resolve, reject) => {
      const req = http.request({ agent: this.agent, hostname: this.url.hostname, port: this.url.port, method: 'POST', path: '/', headers: signed.headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if ((res.statusCode ?? 0) >= 400) reject(new Error(`${target}: ${res.statusCode} ${text.slice(0, 200)}`));
          else resolve(JSON.parse(text) as T);
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  destroy() {
    this.agent.destroy();
  }
}

export interface WriteFloor {
  /** Where the load generator PUTs (any path; answers 202 `{"requestId"}`). */
  url: string;
  /** Where it opens its ack WebSockets (`/v1/acks`, one per principal, told apart by their Authorization header). */
  ackUrl: string;
  /**
   * Its consumer polls only between consume() and pause(): while the stack is measured, a floor
   * polling the same Kinesis emulator every 20 ms would take the emulator's time from the stack.
   */
  consume(): Promise<void>;
  /** Stops polling (after the records read so far are committed and acked). */
  pause(): Promise<void>;
  close(): Promise<void>;
}

interface GetRecordsOut {
  Records: Array<{ Data: string }>;
  NextShardIterator?: string;
}

interface FloorRecord {
  requestId: string;
  principal: string;
  body: unknown;
}

interface Pending {
  requestId: string;
  principal: string;
  data: Buffer;
  res: ServerResponse;
}

/** Starts the floor against the stack's Kinesis emulator and PostgreSQL (a stream and a table of its own). */
export async function startWriteFloor(opts: { kinesisEndpoint: string; region: string; databaseUrl: string; shards: number }): Promise<WriteFloor> {
  // Setup through the SDK (not measured): the stream, its shards, the table.
  const admin = createKinesis({ region: opts.region, endpoint: opts.kinesisEndpoint });
  try {
    await admin.send(new CreateStreamCommand({ StreamName: FLOOR_STREAM, ShardCount: opts.shards }));
  } catch (err) {
    if ((err as Error).name !== 'ResourceInUseException') throw err;
  }
  for (let i = 0; i < 200; i++) {
    const d = await admin.send(new DescribeStreamSummaryCommand({ StreamName: FLOOR_STREAM }));
    if (d.StreamDescriptionSummary?.StreamStatus === 'ACTIVE') break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const shardIds = ((await admin.send(new ListShardsCommand({ StreamName: FLOOR_STREAM }))).Shards ?? []).map((s) => s.ShardId!);
  admin.destroy();
  const pool = new Pool({ connectionString: opts.databaseUrl, max: shardIds.length + 1 });
  await pool.query('CREATE TABLE IF NOT EXISTS bench_floor (request_id uuid PRIMARY KEY, body jsonb NOT NULL, committed_at timestamptz NOT NULL DEFAULT now())');

  const sockets = new Map<string, WebSocket>();
  const ack = (principal: string, requestId: string, stage: 'queued' | 'committed') =>
    sockets.get(principal)?.send(JSON.stringify({ type: 'ack', requestId, stage }));

  // PutRecords: the writes of one event-loop turn in one call.
  const sender = new HttpKinesisClient({ endpoint: opts.kinesisEndpoint, region: opts.region, credentials: CREDENTIALS, maxSockets: 16 });
  let batch: Pending[] = [];
  const flush = () => {
    const out = batch;
    batch = [];
    for (let i = 0; i < out.length; i += 500) {
      const part = out.slice(i, i + 500);
      sender.send(new PutRecordsCommand({ StreamName: FLOOR_STREAM, Records: part.map((p) => ({ Data: p.data, PartitionKey: p.requestId })) }))
        .then((r) => {
          part.forEach((p, j) => {
            if (r.Records?.[j]?.ErrorCode) return void p.res.writeHead(503).end();
            p.res.writeHead(202, { 'content-type': 'application/json' }).end(`{"requestId":"${p.requestId}"}`);
            ack(p.principal, p.requestId, 'queued');
          });
        })
        .catch(() => part.forEach((p) => p.res.writeHead(503).end()));
    }
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const requestId = randomUUID();
      const principal = req.headers.authorization ?? '';
      const body = Buffer.concat(chunks).toString('utf8');
      if (batch.length === 0) setImmediate(flush);
      batch.push({ requestId, principal, res, data: Buffer.from(`{"requestId":"${requestId}","principal":${JSON.stringify(principal)},"body":${body}}`) });
    });
  });
  const wss = new WebSocketServer({ server, path: '/v1/acks' });
  wss.on('connection', (ws, req) => {
    const principal = req.headers.authorization ?? '';
    sockets.set(principal, ws);
    ws.on('close', () => sockets.get(principal) === ws && sockets.delete(principal));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;

  // The consumer: one loop per shard, from the stream's end when consume() is called.
  const calls = new KinesisCalls(opts.kinesisEndpoint, opts.region);
  let stopping = false;
  let failure: unknown;
  let loops: Array<Promise<void>> = [];
  const consumeShard = async (first: string) => {
    let iterator: string | undefined = first;
    try {
      while (!stopping && iterator) {
        const out: GetRecordsOut = await calls.call<GetRecordsOut>('GetRecords', { ShardIterator: iterator, Limit: 500 });
        iterator = out.NextShardIterator;
        if (out.Records.length === 0) {
          await new Promise((r) => setTimeout(r, POLL_INTERVAL_MS));
          continue;
        }
        const writes = out.Records.map((r: { Data: string }) => JSON.parse(Buffer.from(r.Data, 'base64').toString('utf8')) as FloorRecord);
        const params: string[] = [];
        const values = writes.map((w: FloorRecord, i: number) => {
          params.push(w.requestId, JSON.stringify(w.body));
          return `($${2 * i + 1}, $${2 * i + 2})`;
        });
        // One statement, its own transaction: committed when it returns. A redelivery is ignored.
        await pool.query(`INSERT INTO bench_floor (request_id, body) VALUES ${values.join(',')} ON CONFLICT (request_id) DO NOTHING`, params);
        for (const w of writes) ack(w.principal, w.requestId, 'committed');
      }
    } catch (err) {
      // Reported by close(); the writes it did not commit show up as lost in the level's figures.
      failure ??= err;
    }
  };
  const pause = async () => {
    stopping = true;
    await Promise.all(loops);
    loops = [];
  };

  return {
    url: `http://127.0.0.1:${port}`,
    ackUrl: `ws://127.0.0.1:${port}`,
    async consume() {
      await pause();
      stopping = false;
      // LATEST: nothing is written to the floor's stream while it is paused (only its levels write).
      const iterators = await Promise.all(shardIds.map(async (ShardId) =>
        (await calls.call<{ ShardIterator: string }>('GetShardIterator', { StreamName: FLOOR_STREAM, ShardId, ShardIteratorType: 'LATEST' })).ShardIterator));
      loops = iterators.map(consumeShard);
    },
    pause,
    async close() {
      await pause();
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      sender.destroy();
      calls.destroy();
      await pool.end();
      if (failure) throw new Error(`write floor consumer failed: ${(failure as Error).message}`);
    },
  };
}
