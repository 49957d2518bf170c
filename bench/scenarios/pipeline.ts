/**
 * pipeline: records/s from the stream to committed state in PostgreSQL + final ack (the commit
 * consumer), records/s into the read model (the projection consumer), and the commit →
 * `committed` ack latency at a steady 1,000 writes/s.
 *
 * Baselines in the same run: raw multi-row INSERT rate into PostgreSQL, raw conditional PutItem
 * rate into the DynamoDB emulator (what a version-guarded item projection costs), and the event
 * store's own commit rate (executeBatch on 500-command batches, no stream, no projection).
 * Everything runs on 127.0.0.1: Kinesis and DynamoDB emulators each in a child process (as the
 * real services run elsewhere), SQS in its own child, the machine's PostgreSQL (own database)
 * and Redis (own prefix), the processors in this process. Run: `npx tsx bench/scenarios/pipeline.ts [--quick]`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { procStat } from '../proc-stat';
import path from 'node:path';
import { PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { Redis } from 'ioredis';
import { Pool } from 'pg';
import type { Ack, Command } from '../../core/contracts';
import { createDocumentClient, createDynamo, createKinesis, createSqs } from '../../core/aws';
import { loadConfig } from '../../core/config';
import { partitionKey } from '../../core/keys';
import { RedisAckLog } from '../../core/redis-ack-log';
import { PgCommandStore } from '../../processors/command-store';
import { ProcessorsConfig, startProcessors } from '../../processors/main';
import { mapLimit } from '../../core/map-limit';
import { freePort, provision, ROOT, startEmulators, stopChild } from '../../scripts/local-stack';
import { createTestDatabase, dropTestDatabase, REDIS_URL, uniqueName } from '../../tests/helpers/stack';
import type { BenchContext, Figure, Percentiles, ScenarioResult } from '../types';
import { deleteKeysByPrefix } from '../../core/redis';

const PRINCIPALS = 50;
const ITEMS = 5_000;

function cmd(i: number): Command {
  const p = i % PRINCIPALS;
  return {
    v: 1, requestId: randomUUID(), kind: 'put', tenant: 'bench', principal: `user${p}`, collection: 'notes',
    id: `n${i % ITEMS}`, data: { i, title: `note ${i}`, body: 'x'.repeat(200) }, receivedAt: new Date().toISOString(),
  };
}

function percentiles(xs: number[]): Percentiles {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: s.at(-1) ?? 0, mean: s.reduce((a, b) => a + b, 0) / Math.max(s.length, 1) };
}

/**
 * CPU time (clock ticks) so far of the processes on this machine, grouped: the given pids by name,
 * PostgreSQL and Redis by command name, the rest as `other`; plus the machine's busy and total
 * ticks. Linux only (/proc); undefined elsewhere. Says which process a drain's CPU went to.
 */
function cpuTicks(pids: Record<string, number | undefined>): Record<string, number> | undefined {
  if (!existsSync('/proc/stat')) return undefined;
  const out: Record<string, number> = { PostgreSQL: 0, Redis: 0, other: 0 };
  const named = new Map(Object.entries(pids).filter(([, v]) => v !== undefined).map(([k, v]) => [v!, k]));
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const s = procStat(d);
    if (!s) continue; // exited meanwhile
    const k = named.get(Number(d)) ?? (s.comm.startsWith('postgres') ? 'PostgreSQL' : s.comm.startsWith('redis') ? 'Redis' : 'other');
    out[k] = (out[k] ?? 0) + s.utime + s.stime;
  }
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = cpu.reduce((a, b) => a + b, 0);
  out['machine busy'] = total - cpu[3]! - cpu[4]!;
  out['machine total'] = total;
  return out;
}

/** kinesalite or dynalite in a child process, in memory. */
async function emulatorChild(kind: 'kinesis' | 'dynamodb'): Promise<{ endpoint: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts/emulator-child.ts'), kind, String(port), 'memory'], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`${kind} emulator exited ${c}`)));
  });
  return { endpoint: `http://127.0.0.1:${port}`, child };
}

export async function run(ctx: BenchContext): Promise<ScenarioResult> {
  const N = ctx.quick ? 3_000 : 30_000;
  const latencySeconds = ctx.quick ? 4 : 15;
  const name = uniqueName('bench_pipeline');
  // SQS (fauxqs) is already a child; Kinesis and DynamoDB go to children too, so the processors
  // have this process's event loop to themselves.
  const emulators = await startEmulators();
  const [kinChild, dynChild] = await Promise.all([emulatorChild('kinesis'), emulatorChild('dynamodb')]);
  const children: ChildProcess[] = [kinChild.child, dynChild.child];
  emulators.kinesisEndpoint = kinChild.endpoint;
  emulators.dynamoEndpoint = dynChild.endpoint;
  const databaseUrl = await createTestDatabase(name);
  const prefix = `bench:${name}:`;
  const redis = new Redis(REDIS_URL);
  const kinesis = createKinesis({ region: 'us-east-1', endpoint: emulators.kinesisEndpoint });
  const dynamo = createDynamo({ region: 'us-east-1', endpoint: emulators.dynamoEndpoint });
  const sqs = createSqs({ region: 'us-east-1', endpoint: emulators.sqsEndpoint });
  const pool = new Pool({ connectionString: databaseUrl, max: 4 });
  const env: NodeJS.ProcessEnv = {
    DATABASE_URL: databaseUrl, REDIS_URL, REDIS_PREFIX: prefix, AWS_REGION: 'us-east-1',
    KINESIS_ENDPOINT: emulators.kinesisEndpoint, DYNAMODB_ENDPOINT: emulators.dynamoEndpoint, SQS_ENDPOINT: emulators.sqsEndpoint,
    KINESIS_STREAM: `${name}-commands`, ITEMS_TABLE: `${name}-items`, REQUESTS_TABLE: `${name}-requests`,
    LOG_LEVEL: 'silent', PROCESSORS_METRICS_PORT: '0', POLL_INTERVAL_MS: '10', BATCH_SIZE: '500',
  };
  const figures: Figure[] = [];
  const baseline: Figure[] = [];
  const notes: string[] = [];
  const series: ScenarioResult['series'] = [];
  try {
    const { dlqUrl } = await provision({
      kinesis, dynamo, sqs, stream: env.KINESIS_STREAM!, shardCount: 2, itemsTable: env.ITEMS_TABLE!,
      requestsTable: env.REQUESTS_TABLE!, dlqName: `${name}-dlq`, databaseUrl,
    });
    if (dlqUrl) env.DLQ_URL = dlqUrl;
    const config = loadConfig(ProcessorsConfig, env);

    // Baseline 1: raw multi-row INSERT into PostgreSQL (500 rows per statement, one tx each).
    await pool.query('CREATE TABLE bench_raw (id text PRIMARY KEY, data jsonb)');
    const rawRows = ctx.quick ? 20_000 : 100_000;
    let t = performance.now();
    for (let i = 0; i < rawRows; i += 500) {
      const ids = Array.from({ length: 500 }, (_, j) => `r${i + j}`);
      await pool.query('INSERT INTO bench_raw SELECT * FROM unnest($1::text[], $2::jsonb[])', [ids, ids.map((id) => JSON.stringify(cmd(0).data))]);
      ctx.progress(i + 500, rawRows, 'baseline: multi-row INSERT');
    }
    baseline.push({ name: 'PostgreSQL multi-row INSERT (500/statement)', value: Math.round(rawRows / ((performance.now() - t) / 1000)), unit: 'rows/s' });

    // Baseline 2: conditional PutItem into the DynamoDB emulator, 16 in flight (the item projection's write).
    const doc = createDocumentClient(dynamo);
    const puts = ctx.quick ? 1_000 : 4_000;
    t = performance.now();
    let done = 0;
    await mapLimit(Array.from({ length: puts }, (_, i) => i), 16, async (i) => {
      await doc.send(new PutCommand({
        TableName: env.ITEMS_TABLE!, Item: { pk: 'raw#c', id: `r${i}`, version: 1, doc: '{}' },
        ConditionExpression: 'attribute_not_exists(version) OR version < :v', ExpressionAttributeValues: { ':v': 1 },
      }));
      if (++done % 200 === 0) ctx.progress(done, puts, 'baseline: PutItem');
    });
    baseline.push({ name: 'DynamoDB emulator conditional PutItem (16 in flight)', value: Math.round(puts / ((performance.now() - t) / 1000)), unit: 'items/s' });

    // Baseline 3: the event store alone (decide + event + state + request, one tx per 500 commands).
    const store = new PgCommandStore(pool);
    const storeN = ctx.quick ? 5_000 : 20_000;
    t = performance.now();
    for (let i = 0; i < storeN; i += 500) {
      const res = await store.executeBatch(Array.from({ length: 500 }, (_, j) => ({ cmd: { ...cmd(i + j), tenant: 'store' } })));
      if (res.failure) throw res.failure.error;
      ctx.progress(i + 500, storeN, 'baseline: event store commit');
    }
    baseline.push({ name: 'event store commit (executeBatch, 500/tx)', value: Math.round(storeN / ((performance.now() - t) / 1000)), unit: 'records/s' });

    // Throughput: N records waiting in the stream, then the processors start and drain them.
    const cmds = Array.from({ length: N }, (_, i) => cmd(i));
    const lastSeq = new Map<string, bigint>();
    const putAll = async (batch: Command[]) => {
      const out = await kinesis.send(new PutRecordsCommand({
        StreamName: env.KINESIS_STREAM!,
        Records: batch.map((c) => ({ PartitionKey: partitionKey(c.tenant, c.collection, c.id), Data: Buffer.from(JSON.stringify(c)) })),
      }));
      if (out.FailedRecordCount) throw new Error(`PutRecords failed ${out.FailedRecordCount} records`);
      for (const r of out.Records ?? []) {
        const seq = BigInt(r.SequenceNumber!);
        if (seq > (lastSeq.get(r.ShardId!) ?? 0n)) lastSeq.set(r.ShardId!, seq);
      }
    };
    for (let i = 0; i < N; i += 500) {
      await putAll(cmds.slice(i, i + 500));
      ctx.progress(i + 500, N, 'loading the stream');
    }
    /** Records the projection consumer has finished: all of them once its checkpoints reach the last sequence numbers. */
    const projectionCaughtUp = async (): Promise<boolean> => {
      const cps = await pool.query<{ shard_id: string; sequence_number: string }>(
        "SELECT shard_id, sequence_number FROM checkpoints WHERE consumer = 'projections'",
      );
      const at = new Map(cps.rows.map((r) => [r.shard_id, BigInt(r.sequence_number)]));
      return [...lastSeq].every(([shard, seq]) => (at.get(shard) ?? 0n) >= seq);
    };
    const acks = new RedisAckLog(redis, prefix);
    let finals = 0;
    const latencies: number[] = [];
    let measuring = false;
    const unsubscribe = await acks.subscribe((_route, ack: Ack) => {
      if (ack.stage === 'queued') return;
      finals++;
      if (measuring) latencies.push(Date.now() - Date.parse(ack.at));
    });
    // Phase A: the commit consumer alone drains the backlog (in AWS the two consumers are two
    // Lambda functions on their own compute; here they would share two cores with everything else).
    const cpuPids = { 'this process (commit consumer)': process.pid, 'Kinesis emulator': kinChild.child.pid, 'DynamoDB emulator': dynChild.child.pid };
    const cpuBefore = cpuTicks(cpuPids);
    const start = performance.now();
    const processors = await startProcessors(loadConfig(ProcessorsConfig, { ...env, CONSUMERS: 'commit' }));
    let committedAt = 0;
    let ackedAt = 0;
    const committedSeries: Array<[number, number]> = [];
    for (;;) {
      const n = Number((await pool.query(`SELECT count(*) FROM requests WHERE tenant = 'bench'`)).rows[0].count);
      const s = (performance.now() - start) / 1000;
      committedSeries.push([s, n]);
      if (n >= N && !committedAt) committedAt = performance.now();
      if (finals >= N && !ackedAt) ackedAt = performance.now();
      ctx.progress(Math.min(finals, N), N, `commit consumer: ${n} committed, ${finals} acked`);
      if (committedAt && ackedAt) break;
      if (s > 600) throw new Error(`drain timed out: ${n} committed, ${finals} acked`);
      await new Promise((r) => setTimeout(r, 100));
    }
    figures.push({ name: 'stream → committed in PostgreSQL (commit consumer)', value: Math.round(N / ((committedAt - start) / 1000)), unit: 'records/s' });
    figures.push({ name: 'stream → committed + final ack published', value: Math.round(N / ((ackedAt - start) / 1000)), unit: 'records/s' });
    series.push({ name: 'committed requests', unit: 'requests', points: committedSeries });
    const cpuAfter = cpuTicks(cpuPids);
    if (cpuBefore && cpuAfter) {
      // Where the CPU of the drain went, per record committed (clock ticks are 10 ms each).
      const d = (k: string) => (cpuAfter[k] ?? 0) - (cpuBefore[k] ?? 0);
      figures.push({ name: 'machine CPU busy during the drain (all cores)', value: Math.round((100 * d('machine busy')) / d('machine total')), unit: '%' });
      for (const k of ['this process (commit consumer)', 'PostgreSQL', 'Kinesis emulator', 'Redis', 'other']) {
        figures.push({ name: `CPU per record committed: ${k}`, value: Math.round((d(k) * 10_000) / N), unit: 'µs' });
      }
    }

    // Phase B: the projection consumer, in its own process, projects the same records.
    const pStartAt = performance.now();
    const projectionChild = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'processors/main.ts')], {
      cwd: ROOT, env: { ...process.env, ...env, CONSUMERS: 'projection', LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(projectionChild);
    projectionChild.stdout!.resume();
    for (;;) {
      if (await projectionCaughtUp()) break;
      if (projectionChild.exitCode !== null) throw new Error(`projection consumer exited ${projectionChild.exitCode}`);
      if (performance.now() - pStartAt > 600_000) throw new Error('projection timed out');
      ctx.progress(0, 1, 'projection consumer: catching up');
      await new Promise((r) => setTimeout(r, 100));
    }
    figures.push({ name: 'stream → projected into DynamoDB + Redis (projection consumer, incl. its start)', value: Math.round(N / ((performance.now() - pStartAt) / 1000)), unit: 'records/s' });

    // Latency at a steady 1,000 writes/s: decision time (in the commit's transaction) → ack received.
    // Twice: with the projection consumer beside it on these two cores (it cannot keep up with
    // 1,000/s on the emulator, so it never idles), and with the commit consumer alone (as in AWS,
    // where the projection function has compute of its own).
    let offset = N;
    const steady = async (label: string) => {
      latencies.length = 0;
      measuring = true;
      const total = 1000 * latencySeconds;
      const lStart = performance.now();
      let sent = 0;
      while (sent < total) {
        const due = Math.min(total, Math.floor(((performance.now() - lStart) / 1000) * 1000) + 10);
        if (due > sent) {
          const batch = Array.from({ length: due - sent }, (_, j) => cmd(offset + sent + j));
          sent = due;
          await putAll(batch);
          ctx.progress(sent, total, `steady 1,000 writes/s (${label})`);
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      offset += total;
      const deadline = Date.now() + 30_000;
      while (latencies.length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      measuring = false;
      figures.push({ name: `commit → committed ack at 1,000 writes/s, ${label}`, value: percentiles(latencies).p99, unit: 'ms (p99)', latency: percentiles(latencies) });
      figures.push({ name: `writes acked at 1,000 writes/s, ${label}`, value: latencies.length, unit: `of ${total}` });
    };
    await steady('projection consumer running beside');
    const pDeadline = Date.now() + 120_000;
    const pStart = performance.now();
    while (!(await projectionCaughtUp()) && Date.now() < pDeadline) await new Promise((r) => setTimeout(r, 100));
    figures.push({ name: 'projection lag after that steady phase (time to catch up)', value: Math.round(performance.now() - pStart), unit: 'ms' });
    await stopChild(projectionChild);
    await steady('commit consumer alone');

    await unsubscribe();
    await processors.close();
    await acks.close();

    const commitRate = figures[0]!.value;
    notes.push(
      'Latency is measured from the decision time stamped inside the commit transaction (ack `at`) to the ack arriving on the Redis pub/sub channel: it includes COMMIT, the fast-path projection (Redis; DynamoDB only under light traffic) and the ack append.',
      'The commit consumer runs in this process, the projection consumer in a child process (as the two Lambda functions in AWS). Throughputs are measured one consumer at a time (the commit consumer drains the backlog, then the projection consumer projects it); the projection consumer is bounded by the DynamoDB emulator (its own child process).',
      'The processors, the three emulators and this driver share a 2-core machine also used by other engineers: numbers are noisy.',
    );
    return {
      scenario: 'pipeline',
      figures,
      baseline: { name: 'raw stores and the event store alone', figures: baseline },
      ratios: [
        { name: 'stream→PG commit / event store alone', value: +(commitRate / baseline[2]!.value).toFixed(2) },
        { name: 'projection / DynamoDB emulator PutItem', value: +(figures.find((f) => f.name.startsWith('stream → projected'))!.value / baseline[1]!.value).toFixed(2) },
      ],
      series,
      notes,
    };
  } finally {
    await pool.end().catch(() => undefined);
    kinesis.destroy();
    dynamo.destroy();
    sqs.destroy();
    await emulators.close();
    await Promise.all(children.map((c) => stopChild(c)));
    await dropTestDatabase(name).catch(() => undefined);
    await deleteKeysByPrefix(redis, prefix).catch(() => undefined);
    redis.disconnect();
  }
}

if (require.main === module) {
  const quick = process.argv.includes('--quick');
  run({
    quick,
    progress: (d, t, l) => process.stderr.write(`\r\x1b[K${l ?? ''} ${d}/${t}`),
    log: (line) => process.stderr.write(`\n${line}\n`),
  }).then(
    (r) => {
      process.stderr.write('\n');
      process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`\n${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
