/**
 * The writes bench's stream floor: the least any gateway must do per write in this system, where a
 * write is answered only once the stream accepted it. express 5, its JSON body parser, and the
 * gateway's own micro-batched PutRecords (BatchingCommandStream with its defaults, AWS SDK client,
 * kinesalite behind it) — and nothing else: no auth, validation, idempotency, rate limit, `queued`
 * ack, request status or log line. If this floor is itself far below the do-nothing ceiling, the
 * gap is the stream's (and the emulator's CPU on the same cores), not the gateway's own work.
 *
 * Run by bench/scenarios/writes.ts: `node --import tsx bench/servers/stream-floor.ts` with PORT,
 * KINESIS_ENDPOINT and KINESIS_STREAM.
 */
import { randomUUID } from 'node:crypto';
import express from 'express';
import { createKinesis } from '../../core/aws';
import { BatchingCommandStream } from '../../gateway/batching-stream';

const kinesis = createKinesis({ region: 'us-east-1', endpoint: process.env.KINESIS_ENDPOINT! });
const stream = new BatchingCommandStream(kinesis, process.env.KINESIS_STREAM!);
const app = express();
app.disable('x-powered-by');
app.disable('etag');
app.use(express.json({ limit: '64kb' }));
app.put('/v1/collections/:collection/items/:id', (req, res, next) => {
  const requestId = randomUUID();
  stream
    .put({
      v: 1, requestId, kind: 'put', tenant: 'bench', principal: 'bench',
      collection: req.params.collection!, id: req.params.id!, data: req.body as Record<string, unknown>,
      receivedAt: new Date().toISOString(),
    })
    .then((pos) => res.status(202).json({ requestId, status: 'queued', ...pos }), next);
});
const server = app.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => {
  server.close();
  void stream.close().then(() => process.exit(0));
});
