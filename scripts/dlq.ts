/**
 * Operator tool for parked records: `npm run dlq -- list | redrive [requestId…] | discard [requestId…]`.
 *
 * - list: parked records in PostgreSQL, in the order they will be replayed, and the letters in the SQS DLQ;
 * - redrive: replays parked writes item by item in their original order, then projects and acks them;
 *   an item whose write still fails stays parked from that write on;
 * - discard: drops parked writes; each is recorded `rejected` (`item_parked`) and its client gets that ack.
 * Uses the processors' configuration (DATABASE_URL, DLQ_URL, SQS/DynamoDB endpoints, Redis).
 */
import type { AckLog } from '../core/ack-log';
import { createDocumentClient, createDynamo, createSqs } from '../core/aws';
import { loadConfig, runMain } from '../core/config';
import { createLogger } from '../core/log';
import { createProgress } from '../core/progress';
import { RedisHotStore } from '../core/read-store';
import { closeRedis, createRedis } from '../core/redis';
import { RedisAckLog } from '../core/redis-ack-log';
import { createParkingLot, createPool, redrivePublisher } from '../processors/composition';
import { ProcessorsConfig } from '../processors/config';
import { LogDeadLetterQueue, SqsDeadLetterQueue } from '../processors/parking';

const USAGE = 'usage: npm run dlq -- list | redrive [requestId…] | discard [requestId…]';

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
  const config = loadConfig(ProcessorsConfig, env);
  const log = createLogger(config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL, { service: 'dlq' });
  // The CLI's pool keeps its own small size (PG_POOL_DEFAULTS.cli), whatever PG_POOL_SIZE the processors use.
  const pool = createPool(config.DATABASE_URL, 'cli', undefined, log);
  const sqs = config.DLQ_URL ? createSqs({ region: config.AWS_REGION, endpoint: config.SQS_ENDPOINT }) : undefined;
  const queue = sqs ? new SqsDeadLetterQueue(sqs, config.DLQ_URL!) : undefined;
  const parking = createParkingLot(pool, config, queue ?? new LogDeadLetterQueue(log), log);
  const redis = command === 'list' ? undefined : createRedis(config.REDIS_URL, config.REDIS_AUTH_TOKEN);
  const dynamo = createDynamo({ region: config.AWS_REGION, endpoint: config.DYNAMODB_ENDPOINT });
  try {
    if (command === 'list') {
      const rows = await parking.list();
      out.line(rows.length === 0 ? 'No parked records.' : `${rows.length} parked record(s), in replay order:`);
      for (const r of rows) {
        out.line(`  #${r.id} ${r.kind.padEnd(6)} ${r.tenant}/${r.collection}/${r.itemId} request ${r.requestId} attempts ${r.attempts} parked ${r.parkedAt}`);
        if (r.error) out.line(`      ${r.error}`);
      }
      if (queue) {
        const letters = await queue.peek();
        out.line(`${letters.length} letter(s) in the dead-letter queue${letters.length ? ':' : '.'}`);
        for (const l of letters) out.line(`  ${l.kind.padEnd(9)} ${l.requestId ?? `seq ${l.sequenceNumber}`}: ${l.error}`);
      }
      return 0;
    }
    const acks = acksOverride ?? new RedisAckLog(redis!, config.REDIS_PREFIX);
    const publish = redrivePublisher({ config, doc: createDocumentClient(dynamo), hot: new RedisHotStore(redis!, config.REDIS_PREFIX), acks, log });
    const filter = ids.length ? { requestIds: ids } : {};
    const before = (await parking.list()).filter((r) => !ids.length || ids.includes(r.requestId)).map((r) => r.requestId);
    if (before.length === 0) {
      out.line('Nothing to do: no matching parked records.');
      return 0;
    }
    let code = 0;
    if (command === 'redrive') {
      const res = await parking.redrive(publish, filter, (d, t, label) => out.progress(d, t, label));
      out.line(`Redrive: ${res.applied} applied, ${res.stillParked} still parked.`);
      for (const e of res.errors) out.line(`  ! ${e}`);
      if (res.stillParked > 0) code = 1;
    } else {
      const n = await parking.discard(publish, filter, (d, t, label) => out.progress(d, t, label));
      out.line(`Discard: ${n} parked write(s) dropped; each was acked rejected (item_parked).`);
    }
    if (queue) {
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
    dynamo.destroy();
  }
}

if (require.main === module) {
  runMain(async () => {
    process.exitCode = await runDlq(process.argv.slice(2), process.env, consoleOutput());
  });
}
