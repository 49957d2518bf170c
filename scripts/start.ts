/**
 * `npm start`: the whole system on one machine, no Docker, no cloud account. Starts the AWS
 * emulators, PostgreSQL and Redis (or uses DATABASE_URL / REDIS_URL), provisions them, runs each
 * service as its own process, and prints how to use it. Ctrl-C stops everything it started.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { MemoryAckLog } from '../core/ack-log';
import { signToken } from '../core/auth';
import { createDynamo, createKinesis, createSqs } from '../core/aws';
import { loadConfig } from '../core/config';
import { createLogger } from '../core/log';
import type { RunningService } from '../core/service';
import { AckConfig, startAckService } from '../ack-service/main';
import { GatewayConfig, startGateway } from '../gateway/main';
import { ProcessorsConfig, startProcessors } from '../processors/main';
import { ReadConfig, startReadModel } from '../read-model/main';
import { MemoryHotStore } from '../core/read-store';
import { createS3 } from '../core/object-store';
import { startWorker } from '../worker/main';
import { WorkerConfig } from '../worker/composition';
import { NotificationBridge, provisionAttachments } from './attachment-stack';
import { StreamTrimmer, TtlSweeper } from './local-retention';
import { DATA_DIR, ensurePostgres, ensureRedis, idleLaterThreads, localAuthSecret, localEnv, provision, ROOT, startEmulators, stopChild } from './local-stack';
import { removeLocalSettings, writeLocalSettings } from './local-settings';
import { prefixLines } from './prefix-lines';

const SERVICES = [
  { name: 'gateway', entry: 'gateway/main.ts' },
  { name: 'processors', entry: 'processors/main.ts' },
  { name: 'read-model', entry: 'read-model/main.ts' },
  { name: 'ack-service', entry: 'ack-service/main.ts' },
  { name: 'worker', entry: 'worker/main.ts' },
] as const;

const say = (msg: string) => process.stdout.write(`[ackstream] ${msg}\n`);

/** Everything started so far, stopped in reverse order on Ctrl-C, on a crash or on a failed start. */
const stops: Array<() => Promise<void>> = [];
let shuttingDown = false;
async function shutdown(code: number) {
  if (shuttingDown) return;
  shuttingDown = true;
  say('stopping…');
  for (const stop of stops.reverse()) await stop().catch(() => undefined);
  say('stopped; nothing left running.');
  process.exit(code);
}

async function main() {
  process.on('SIGINT', () => void shutdown(0));
  process.on('SIGTERM', () => void shutdown(0));

  const env = localEnv();
  const inherited = process.env;
  const ports = { gateway: env.GATEWAY_PORT, read: env.READ_PORT, ack: env.ACK_PORT };
  const secret = localAuthSecret();
  say(`data directory: ${DATA_DIR} (npm run reset wipes it)`);

  // The threads this process starts from here on are the in-process emulators' LevelDB compaction
  // threads (Kinesis; DynamoDB too with LOCAL_DYNAMODB_NICE=0): on spare CPU only.
  if (env.LOCAL_KINESIS_COMPACTION === 'idle') {
    const stopIdling = await idleLaterThreads();
    stops.push(async () => stopIdling());
  }
  const emulators = await startEmulators({
    dataDir: DATA_DIR,
    kinesisPort: env.KINESIS_PORT,
    dynamoPort: env.DYNAMODB_PORT,
    sqsPort: env.SQS_PORT,
    // In the orchestrator's process: in processes of their own they made the final ack slower on
    // two cores (docs/PERFORMANCE.md, the A/B under "System") and idled no better.
    processes: false,
    dynamoNice: env.LOCAL_DYNAMODB_NICE,
  });
  stops.push(() => emulators.close());
  say(`emulators: Kinesis ${emulators.kinesisEndpoint}, DynamoDB ${emulators.dynamoEndpoint}, SQS ${emulators.sqsEndpoint}`);

  const pg = await ensurePostgres();
  stops.push(() => pg.stop());
  say(`PostgreSQL: ${pg.description}`);
  const redis = await ensureRedis();
  if (redis) {
    stops.push(() => redis.stop());
    say(`Redis: ${redis.description}`);
  } else {
    say('Redis: none configured (REDIS_URL) and no redis-server on the PATH: running single-node, with the Redis-backed parts in-process.');
  }

  const region = env.AWS_REGION;
  const names = { KINESIS_STREAM: env.KINESIS_STREAM, ITEMS_TABLE: env.ITEMS_TABLE, REQUESTS_TABLE: env.REQUESTS_TABLE };
  const kinesis = createKinesis({ region, endpoint: emulators.kinesisEndpoint });
  const dynamo = createDynamo({ region, endpoint: emulators.dynamoEndpoint });
  const sqs = createSqs({ region, endpoint: emulators.sqsEndpoint });
  const { dlqUrl } = await provision({
    kinesis, dynamo, sqs,
    stream: names.KINESIS_STREAM,
    shardCount: env.SHARD_COUNT,
    itemsTable: names.ITEMS_TABLE,
    requestsTable: names.REQUESTS_TABLE,
    dlqName: 'ackstream-dlq',
    databaseUrl: pg.url,
  });
  // Attachments: a bucket on fauxqs (S3 on the SQS port), the work queue + DLQ, and the bridge that
  // stands in for S3 bucket notifications (fauxqs has none): see scripts/attachment-stack.ts.
  const s3 = createS3({ region, endpoint: emulators.sqsEndpoint });
  const bucket = env.ATTACHMENTS_BUCKET;
  const { workQueueUrl } = await provisionAttachments(s3, sqs, { bucket, queueName: 'ackstream-work' });
  const bridge = new NotificationBridge(s3, createSqs({ region, endpoint: emulators.sqsEndpoint }), {
    bucket, queueUrl: workQueueUrl, region, intervalMs: 250, idleIntervalMs: 2000, log: createLogger('warn', { service: 'notification-bridge' }),
  });
  bridge.start();
  stops.push(() => bridge.stop());
  // What AWS does by itself to bound the deployed stores, done here for the emulators (scripts/local-retention.ts):
  // records past the stream's retention leave kinesalite, request rows past their TTL leave dynalite.
  const retentionLog = createLogger('warn', { service: 'local-retention' });
  const trimmer = new StreamTrimmer(kinesis, { stream: names.KINESIS_STREAM, intervalMs: 60_000, log: retentionLog });
  const sweeper = new TtlSweeper(dynamo, { table: names.REQUESTS_TABLE, pageIntervalMs: 5_000, passIntervalMs: 10 * 60_000, log: retentionLog });
  trimmer.start();
  sweeper.start();
  stops.push(async () => {
    await Promise.all([trimmer.stop(), sweeper.stop()]);
    kinesis.destroy();
    dynamo.destroy();
  });
  sqs.destroy();
  say('stream, tables, queues, bucket and database schema are in place');
  say(`attachments: bucket ${bucket} on ${emulators.sqsEndpoint}; fauxqs has no bucket notifications, so a local bridge turns new uploads into S3 events on ${workQueueUrl}`);

  const serviceEnv: NodeJS.ProcessEnv = {
    ...inherited,
    ...names,
    AUTH_SECRET: secret,
    AWS_REGION: region,
    DATABASE_URL: pg.url,
    KINESIS_ENDPOINT: emulators.kinesisEndpoint,
    DYNAMODB_ENDPOINT: emulators.dynamoEndpoint,
    SQS_ENDPOINT: emulators.sqsEndpoint,
    ...(dlqUrl ? { DLQ_URL: dlqUrl } : {}),
    ATTACHMENTS_BUCKET: bucket,
    S3_ENDPOINT: emulators.sqsEndpoint,
    WORK_QUEUE_URL: workQueueUrl,
    GATEWAY_PORT: String(ports.gateway),
    READ_PORT: String(ports.read),
    ACK_PORT: String(ports.ack),
    LOG_LEVEL: env.LOG_LEVEL,
    STREAM_CLIENT: env.STREAM_CLIENT,
    STREAM_READ_CLIENT: env.STREAM_READ_CLIENT,
    PROCESSORS_METRICS_PORT: String(env.PROCESSORS_METRICS_PORT),
    IDLE_POLL_MAX_MS: String(env.IDLE_POLL_MAX_MS),
    CHECKPOINT_INTERVAL_MS: String(env.CHECKPOINT_INTERVAL_MS),
    DURABLE_INLINE_BUDGET_MS: String(env.DURABLE_INLINE_BUDGET_MS),
    CONSOLE_GATEWAY_URL: env.CONSOLE_GATEWAY_URL ?? `http://127.0.0.1:${ports.gateway}`,
    CONSOLE_METRICS_URLS:
      env.CONSOLE_METRICS_URLS ??
      [ports.gateway, ports.read, ports.ack, env.PROCESSORS_METRICS_PORT].map((p) => `http://127.0.0.1:${p}/metrics`).join(','),
    ...(redis ? { REDIS_URL: redis.url } : {}),
  };

  if (redis) {
    for (const svc of SERVICES) {
      const child = spawnService(svc.name, svc.entry, serviceEnv, (code) => {
        if (!shuttingDown) {
          say(`${svc.name} exited unexpectedly (${code}); stopping everything.`);
          void shutdown(1);
        }
      });
      stops.push(() => stopChild(child));
    }
    await Promise.all([
      waitHealthy(`http://127.0.0.1:${ports.gateway}/healthz`),
      waitHealthy(`http://127.0.0.1:${ports.read}/healthz`),
      waitHealthy(`http://127.0.0.1:${ports.ack}/healthz`),
    ]);
  } else {
    // Single node: one process, the Redis-backed ack log and hot store kept in memory.
    const acks = new MemoryAckLog();
    const hot = new MemoryHotStore();
    const log = (service: string) => createLogger((serviceEnv.LOG_LEVEL as 'info') ?? 'info', { service });
    const started: RunningService[] = [
      await startProcessors(loadConfig(ProcessorsConfig, serviceEnv), { acks, hot, log: log('processors') }),
      await startReadModel(loadConfig(ReadConfig, serviceEnv), { hot, log: log('read-model') }),
      await startAckService(loadConfig(AckConfig, serviceEnv), { acks, log: log('ack-service') }),
      await startGateway(loadConfig(GatewayConfig, serviceEnv), { acks, hot, log: log('gateway') }),
      await startWorker(loadConfig(WorkerConfig, serviceEnv)),
    ];
    for (const s of started) stops.push(() => s.close());
  }

  // The operator CLIs (npm run dlq / replay) read what the services got from here (scripts/local-settings.ts).
  const settingsFile = writeLocalSettings(DATA_DIR, serviceEnv, !redis);
  stops.push(async () => removeLocalSettings(DATA_DIR));

  const token = await signToken(secret, { tenant: 'demo', sub: 'dev', roles: ['operator'], ttlSeconds: 30 * 24 * 3600 });
  const g = `http://127.0.0.1:${ports.gateway}`;
  const r = `http://127.0.0.1:${ports.read}`;
  const a = `ws://127.0.0.1:${ports.ack}`;
  process.stdout.write(`
────────────────────────────────────────────────────────────────────────────
 Ackstream is running.
   write API (gateway)   ${g}
   read API              ${r}
   acks (WebSocket)      ${a}/v1/acks
   operator console      http://127.0.0.1:${ports.ack}/console#token=<the dev token below>
   metrics (Prometheus)  /metrics on each service; processors on :${serviceEnv.PROCESSORS_METRICS_PORT}
   operator CLIs         npm run dlq -- list · npm run replay -- status (settings from ${settingsFile})
 Dev token (tenant "demo", sub "dev", valid 30 days; more: npm run token -- --tenant T --sub S):
   export TOKEN=${token}

 1. watch your acks:   npm run acks${ports.ack === 3002 ? '' : ` -- --acks ${a}`}   (another terminal; uses $TOKEN, else the dev token)
 2. write an item:     curl -i -X PUT ${g}/v1/collections/notes/items/n1 \\
                         -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
                         -d '{"title":"hello","done":false}'
    patch it:          curl -i -X PATCH ${g}/v1/collections/notes/items/n1 \\
                         -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/merge-patch+json' \\
                         -d '{"done":true}'
 3. read it back:      curl -s ${r}/v1/collections/notes/items/n1 -H "Authorization: Bearer $TOKEN"
    list:              curl -s "${r}/v1/collections/notes/items?limit=10" -H "Authorization: Bearer $TOKEN"
    request status:    curl -s ${r}/v1/requests/<requestId> -H "Authorization: Bearer $TOKEN"
 4. attach a file (PNG, JPEG, GIF, WebP, PDF or ZIP; straight to the object store, checked by the worker):
    U=$(curl -s -X POST ${g}/v1/collections/notes/items/n1/attachments \\
        -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
        -d "{\\"name\\":\\"photo.png\\",\\"contentType\\":\\"image/png\\",\\"size\\":$(wc -c < photo.png)}")
    curl -i -X PUT --data-binary @photo.png $(echo "$U" | node -pe 'const u = JSON.parse(require("fs").readFileSync(0)).upload;
        Object.entries(u.headers).map(([k, v]) => "-H " + k + ":" + v).join(" ") + " " + u.url')
    then: the ack on the WebSocket, the item lists it, GET ${g}/v1/collections/notes/items/n1/attachments/<attachmentId> → 302
 Ctrl-C stops everything.
────────────────────────────────────────────────────────────────────────────
`);
}

function spawnService(name: string, entry: string, env: NodeJS.ProcessEnv, onExit: (code: number | null) => void): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, entry)], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const prefix = `[${name}] `.padEnd(14);
  for (const stream of [child.stdout!, child.stderr!]) prefixLines(stream, prefix, process.stdout);
  child.on('exit', (code) => onExit(code));
  return child;
}

async function waitHealthy(url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not become healthy within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`[ackstream] failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  void shutdown(1);
});
