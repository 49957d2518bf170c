/**
 * Operator tool for parked records: `npm run dlq -- list | redrive [id…] | discard [id…]`
 * (an id is a request id, or a batch letter's `<shardId>/<startSequenceNumber>`).
 *
 * - list: parked records in PostgreSQL, in the order they will be replayed, and the letters in the
 *   SQS DLQ: ours (poison/malformed) and the event source mapping's on-failure records (`batch`);
 * - redrive: replays parked writes item by item in their original order, then projects and acks them;
 *   an item whose write still fails stays parked from that write on. A batch letter's range is
 *   re-read from the stream and fed through the processors' handler (processors/on-failure.ts);
 * - discard: drops parked writes; each is recorded `rejected` (`item_parked`) and its client gets that
 *   ack. A batch letter is only deleted: its range is not read.
 * Uses the processors' configuration (DATABASE_URL, DLQ_URL, SQS/DynamoDB/Kinesis endpoints, Redis):
 * the environment's when it sets DATABASE_URL, else the running `npm start`'s (scripts/local-settings.ts).
 */
import type { AckLog } from '../core/ack-log';
import { createDocumentClient, createDynamo, createKinesis, createSqs } from '../core/aws';
import { loadConfig, runMain } from '../core/config';
import { createLogger } from '../core/log';
import { createProgress } from '../core/progress';
import { RedisHotStore } from '../core/read-store';
import { closeRedis, createRedis } from '../core/redis';
import { RedisAckLog } from '../core/redis-ack-log';
import { createParkingLot, createPool, redriveHandler, redrivePublisher } from '../processors/composition';
import { ProcessorsConfig } from '../processors/config';
import { batchId, describeBatch, type OnFailureRecord, redriveBatch } from '../processors/on-failure';
import { LogDeadLetterQueue, SqsDeadLetterQueue } from '../processors/parking';
import { DATA_DIR } from './local-stack';
import { operatorEnv } from './local-settings';

const USAGE = 'usage: npm run dlq -- list | redrive [id…] | discard [id…]   (id: a request id, or a batch letter\'s <shardId>/<startSequenceNumber>)';

export interface DlqOutput {
  line(text: string): void;
  progress(done: number, total: number, label: string): void;
}

export const consoleOutput = (): DlqOutput => {
  const bar = createProgress({ label: 'dlq', out: process.stdout, intervalMs: process.stdout.isTTY ? undefined : 0 });
  return {
    line: (t) => process.stdout.write(`${t}\n`),
    progress: (done, total, label) => (done === total ? bar.finish(done, total, label) : bar.update(done, total, label)),
  };
};

/** Runs one dlq command; returns the process exit code. */
export async function runDlq(argv: string[], env: NodeJS.ProcessEnv, out: DlqOutput, acksOverride?: AckLog): Promise<number> {
  const [command, ...ids] = argv;
  if (!command || !['list', 'redrive', 'discard'].includes(command)) {
    out.line(USAGE);
    return 2;
  }
  if (command !== 'list' && env.ACKSTREAM_SINGLE_NODE) {
    out.line(`${command} publishes acks and read-model updates through Redis, and the local stack runs single-node (no Redis: they live inside the npm start process). Install redis-server, restart npm start, and run it again.`);
    return 2;
  }
  const config = loadConfig(ProcessorsConfig, env);
  const log = createLogger(config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL, { service: 'dlq' });
  // The CLI's pool keeps its own small size (PG_POOL_DEFAULTS.cli), whatever PG_POOL_SIZE the processors use.
  const pool = createPool(config.DATABASE_URL, 'cli', undefined, log);
  const sqs = config.DLQ_URL ? createSqs({ region: config.AWS_REGION, endpoint: config.SQS_ENDPOINT }) : undefined;
  const queue = sqs ? new SqsDeadLetterQueue(sqs, config.DLQ_URL!) : undefined;
  const parking = createParkingLot(pool, config, queue ?? new LogDeadLetterQueue(log), log);
  const redis = command === 'list' ? undefined : createRedis(config.REDIS_URL, config.REDIS_AUTH_TOKEN);
  const dynamo = createDynamo({ region: config.AWS_REGION, endpoint: config.DYNAMODB_ENDPOINT });
  const kinesis = command === 'redrive' ? createKinesis({ region: config.AWS_REGION, endpoint: config.KINESIS_ENDPOINT }) : undefined;
  try {
    if (command === 'list') {
      const rows = await parking.list();
      out.line(rows.length === 0 ? 'No parked records.' : `${rows.length} parked record(s), in replay order:`);
      for (const r of rows) {
        out.line(`  #${r.id} ${r.kind.padEnd(6)} ${r.tenant}/${r.collection}/${r.itemId} request ${r.requestId} attempts ${r.attempts} parked ${r.parkedAt}`);
        if (r.error) out.line(`      ${r.error}`);
      }
      if (queue) {
        const letters = await queue.peekAll();
        out.line(`${letters.length} letter(s) in the dead-letter queue${letters.length ? ':' : '.'}`);
        for (const q of letters) {
          if (q.type === 'record') out.line(`  ${q.letter.kind.padEnd(9)} ${q.letter.requestId ?? `seq ${q.letter.sequenceNumber}`}: ${q.letter.error}`);
          else if (q.type === 'batch') out.line(`  ${describeBatch(q.batch)}`);
          else out.line(`  unknown   ${q.body.slice(0, 160)}`);
        }
        if (letters.some((q) => q.type === 'batch')) {
          out.line('  (batch: an on-failure record of the event source mapping; redrive re-reads its range from the stream, discard deletes the letter only)');
        }
      }
      return 0;
    }
    const acks = acksOverride ?? new RedisAckLog(redis!, config.REDIS_PREFIX);
    const doc = createDocumentClient(dynamo);
    const hot = new RedisHotStore(redis!, config.REDIS_PREFIX);
    const publish = redrivePublisher({ config, doc, hot, acks, log });
    const filter = ids.length ? { requestIds: ids } : {};
    const before = (await parking.list()).filter((r) => !ids.length || ids.includes(r.requestId)).map((r) => r.requestId);
    const batches: OnFailureRecord[] = queue
      ? (await queue.peekAll()).flatMap((q) => (q.type === 'batch' && (!ids.length || ids.includes(batchId(q.batch))) ? [q.batch] : []))
      : [];
    if (before.length === 0 && batches.length === 0) {
      out.line('Nothing to do: no matching parked records or batch letters.');
      return 0;
    }
    let code = 0;
    if (command === 'redrive') {
      if (before.length) {
        const res = await parking.redrive(publish, filter, (d, t, label) => out.progress(d, t, label));
        out.line(`Redrive: ${res.applied} applied, ${res.stillParked} still parked.`);
        for (const e of res.errors) out.line(`  ! ${e}`);
        if (res.stillParked > 0) code = 1;
      }
      // The commit handler (with parking: a record that keeps failing is parked, not retried forever).
      const handler = redriveHandler({ config, pool, doc, hot, acks, parking, log });
      for (const b of batches) {
        const id = batchId(b);
        try {
          const n = await redriveBatch({ kinesis: kinesis!, region: config.AWS_REGION, handler }, b);
          await queue!.removeWhere((q) => q.type === 'batch' && batchId(q.batch) === id);
          out.line(`Redrive: batch ${id}: ${n} record(s) re-read from the stream and processed; letter removed.`);
        } catch (err) {
          out.line(`  ! batch ${id}: ${(err as Error).message}; the letter stays (discard it to give up on the range)`);
          code = 1;
        }
      }
    } else {
      if (before.length) {
        const n = await parking.discard(publish, filter, (d, t, label) => out.progress(d, t, label));
        out.line(`Discard: ${n} parked write(s) dropped; each was acked rejected (item_parked).`);
      }
      if (batches.length) {
        const drop = new Set(batches.map(batchId));
        const n = await queue!.removeWhere((q) => q.type === 'batch' && drop.has(batchId(q.batch)));
        out.line(`Discard: ${n} batch letter(s) deleted; their ranges were not re-read (a write in them that never committed keeps no final ack).`);
      }
    }
    if (queue && before.length) {
      const left = new Set((await parking.list()).map((r) => r.requestId));
      const gone = before.filter((id) => !left.has(id));
      const n = await queue.remove(gone);
      out.line(`Dead-letter queue: ${n} letter(s) removed.`);
    }
    if (!acksOverride) await acks.close();
    return code;
  } finally {
    if (redis) await closeRedis(redis);
    await pool.end();
    sqs?.destroy();
    kinesis?.destroy();
    dynamo.destroy();
  }
}

if (require.main === module) {
  runMain(async () => {
    process.exitCode = await runDlq(process.argv.slice(2), operatorEnv(process.env, DATA_DIR), consoleOutput());
  });
}
