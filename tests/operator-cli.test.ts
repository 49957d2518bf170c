/**
 * The operator CLIs as a new user runs them: with `npm start` running, `npm run dlq -- list` and
 * `npm run replay -- status` in another terminal find the stack by themselves (the settings file
 * `npm start` writes), the environment wins when it sets DATABASE_URL, and once the stack stopped
 * they say so in one line. The dead-letter queue also holds the event source mapping's on-failure
 * records (AWS's shape: no `kind`, a shard and a sequence range): list shows them, redrive re-reads
 * the range from the stream and processes it, discard deletes the letter.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PutRecordCommand } from '@aws-sdk/client-kinesis';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { Redis } from 'ioredis';
import { createKinesis, createSqs } from '../core/aws';
import { deleteKeysByPrefix } from '../core/redis';
import { partitionKey } from '../core/keys';
import type { Command } from '../core/contracts';
import type { OnFailureRecord } from '../processors/on-failure';
import { SqsDeadLetterQueue } from '../processors/parking';
import { runDlq } from '../scripts/dlq';
import { freePort, ROOT } from '../scripts/local-stack';
import { operatorEnv, SHARED_KEYS } from '../scripts/local-settings';
import { command, finalAckOf, requestRow } from './helpers/processors';
import { createTestDatabase, dropTestDatabase, REDIS_URL, startStack, type Stack, uniqueName } from './helpers/stack';

jest.setTimeout(180_000);

/** An on-failure record exactly as the event source mapping writes it (docs: kinesis-on-failure-destination). */
function onFailureRecord(stream: string, shardId: string, start: string, end: string, batchSize: number): OnFailureRecord {
  return {
    requestContext: {
      requestId: 'c9b8fa9f-5a7f-4b2e-af9c-0c604cde93a5',
      functionArn: 'arn:aws:lambda:us-east-1:123456789012:function:ackstream-ProcessorFn',
      condition: 'RetryAttemptsExhausted',
      approximateInvokeCount: 4,
    },
    responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
    version: '1.0',
    timestamp: new Date().toISOString(),
    KinesisBatchInfo: {
      shardId,
      startSequenceNumber: start,
      endSequenceNumber: end,
      approximateArrivalOfFirstRecord: new Date().toISOString(),
      approximateArrivalOfLastRecord: new Date().toISOString(),
      batchSize,
      streamArn: `arn:aws:kinesis:us-east-1:123456789012:stream/${stream}`,
    },
  };
}

interface Run { code: number | null; out: string; err: string }

/** Runs a CLI the way `npm run` does (a fresh node process), with exactly this environment. */
function runCli(script: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, script), ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
    child.on('exit', (code) => resolve({ code, out, err }));
  });
}

/** The caller's environment without any of the stack's settings: what a second terminal has. */
function bareEnv(dataDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ACKSTREAM_DATA_DIR: dataDir, LOG_LEVEL: 'warn' };
  for (const k of SHARED_KEYS) delete env[k];
  delete env.AUTH_SECRET;
  return env;
}

describe('with `npm start` running, the operator CLIs find the local stack', () => {
  const name = uniqueName('npmstart');
  const redisPrefix = `test:${name}:`;
  let dataDir: string;
  let start: ChildProcess;
  let startOutput = '';

  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'ackstream-start-'));
    const databaseUrl = await createTestDatabase(name);
    const ports = await Promise.all(Array.from({ length: 7 }, () => freePort()));
    start = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts/start.ts')], {
      cwd: ROOT,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...bareEnv(dataDir),
        DATABASE_URL: databaseUrl, // npm start takes it from here; the CLIs below are not given it
        REDIS_URL,
        REDIS_PREFIX: redisPrefix,
        GATEWAY_PORT: String(ports[0]), READ_PORT: String(ports[1]), ACK_PORT: String(ports[2]),
        PROCESSORS_METRICS_PORT: String(ports[3]),
        KINESIS_PORT: String(ports[4]), DYNAMODB_PORT: String(ports[5]), SQS_PORT: String(ports[6]),
      },
    });
    start.stdout!.setEncoding('utf8').on('data', (c: string) => (startOutput += c));
    start.stderr!.setEncoding('utf8').on('data', (c: string) => (startOutput += c));
    const deadline = Date.now() + 120_000;
    while (!startOutput.includes('Ackstream is running.')) {
      if (start.exitCode !== null || Date.now() > deadline) throw new Error(`npm start did not come up:\n${startOutput}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  afterAll(async () => {
    if (start && start.exitCode === null) {
      const exited = new Promise((r) => start.once('exit', r));
      process.kill(-start.pid!, 'SIGTERM');
      await exited;
    }
    await dropTestDatabase(name);
    const redis = new Redis(REDIS_URL);
    await deleteKeysByPrefix(redis, redisPrefix);
    redis.disconnect();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('dlq list and replay status run with no settings in the environment, and list an on-failure record', async () => {
    const settings = JSON.parse(readFileSync(path.join(dataDir, 'local-stack.json'), 'utf8')) as { env: Record<string, string> };
    expect(settings.env).toMatchObject({ DATABASE_URL: expect.stringContaining(name), REDIS_PREFIX: redisPrefix, DLQ_URL: expect.any(String) });

    const empty = await runCli('scripts/dlq.ts', ['list'], bareEnv(dataDir));
    expect(empty).toMatchObject({ code: 0, err: '' });
    expect(empty.out).toContain('No parked records.');
    expect(empty.out).toContain('0 letter(s) in the dead-letter queue.');

    // What the event source mapping writes when it gives up on a batch in AWS.
    const sqs = createSqs({ region: 'us-east-1', endpoint: settings.env.SQS_ENDPOINT! });
    const letter = onFailureRecord('ackstream-commands', 'shardId-000000000001', '49601189658422359378836298521827638475320189012309704722', '49601189658422359378836298522902373528957594348623495186', 500);
    await sqs.send(new SendMessageCommand({ QueueUrl: settings.env.DLQ_URL!, MessageBody: JSON.stringify(letter) }));
    sqs.destroy();
    const listed = await runCli('scripts/dlq.ts', ['list'], bareEnv(dataDir));
    expect(listed.code).toBe(0);
    expect(listed.out).toContain('1 letter(s) in the dead-letter queue:');
    expect(listed.out).toMatch(/batch\s+shardId-000000000001\/49601189658422359378836298521827638475320189012309704722\.\.49601189658422359378836298522902373528957594348623495186 \(500 record\(s\) of ackstream-commands, RetryAttemptsExhausted after 4 invocation\(s\) of ackstream-ProcessorFn, Unhandled error/);

    const status = await runCli('scripts/replay.ts', ['status'], bareEnv(dataDir));
    expect(status).toMatchObject({ code: 0 });
    expect(status.out).toMatch(/items/);
  });

  test('the environment wins when it sets DATABASE_URL (a deployed stack): the local file is not used', async () => {
    const deployed = await runCli('scripts/dlq.ts', ['list'], { ...bareEnv(dataDir), DATABASE_URL: 'postgres://postgres@127.0.0.1:1/elsewhere' });
    expect(deployed.code).toBe(1);
    expect(deployed.err).toMatch(/ECONNREFUSED|127\.0\.0\.1:1/);
  });

  test('once npm start stopped, its settings file is gone and the CLIs say what to do in one line', async () => {
    const exited = new Promise((r) => start.once('exit', r));
    process.kill(-start.pid!, 'SIGTERM');
    await exited;
    expect(existsSync(path.join(dataDir, 'local-stack.json'))).toBe(false);
    for (const [script, args] of [['scripts/dlq.ts', ['list']], ['scripts/replay.ts', ['status']]] as const) {
      const res = await runCli(script, [...args], bareEnv(dataDir));
      expect(res.code).toBe(1);
      expect(res.err.trim().split('\n')).toEqual([expect.stringMatching(/^No DATABASE_URL in the environment and no running local stack .*npm start/)]);
    }
  });
});

describe('on-failure records of the event source mapping in the dead-letter queue', () => {
  let stack: Stack;
  let dlq: SqsDeadLetterQueue;
  const output = () => {
    const lines: string[] = [];
    return { lines, line: (t: string) => lines.push(t), progress: () => undefined };
  };

  beforeAll(async () => {
    // No processors: the records below stay unprocessed, as after the mapping gave up on them.
    stack = await startStack('onfailure', { services: ['ack-service'], shardCount: 1 });
    dlq = new SqsDeadLetterQueue(createSqs({ region: 'us-east-1', endpoint: stack.emulators.sqsEndpoint }), stack.env.DLQ_URL!);
  });
  afterAll(async () => {
    await stack?.close();
  });

  async function put(cmd: Command): Promise<{ shardId: string; seq: string }> {
    const kinesis = createKinesis({ region: 'us-east-1', endpoint: stack.emulators.kinesisEndpoint });
    try {
      const r = await kinesis.send(new PutRecordCommand({ StreamName: stack.env.KINESIS_STREAM!, PartitionKey: partitionKey(cmd.tenant, cmd.collection, cmd.id), Data: Buffer.from(JSON.stringify(cmd)) }));
      return { shardId: r.ShardId!, seq: r.SequenceNumber! };
    } finally {
      kinesis.destroy();
    }
  }

  async function send(letter: OnFailureRecord) {
    const sqs = createSqs({ region: 'us-east-1', endpoint: stack.emulators.sqsEndpoint });
    await sqs.send(new SendMessageCommand({ QueueUrl: stack.env.DLQ_URL!, MessageBody: JSON.stringify(letter) }));
    sqs.destroy();
  }

  test('redrive re-reads exactly the letter\'s range from the stream, commits and acks it, and removes the letter', async () => {
    const a = command({ kind: 'put', id: 'r1', data: { n: 1 } });
    const b = command({ kind: 'put', id: 'r2', data: { n: 2 } });
    const after = command({ kind: 'put', id: 'r3', data: { n: 3 } });
    const first = await put(a);
    const second = await put(b);
    await put(after);
    await send(onFailureRecord(stack.env.KINESIS_STREAM!, first.shardId, first.seq, second.seq, 2));

    const list = output();
    expect(await runDlq(['list'], stack.env, list)).toBe(0);
    expect(list.lines.join('\n')).toContain(`batch     ${first.shardId}/${first.seq}..${second.seq} (2 record(s) of ${stack.env.KINESIS_STREAM}`);

    const out = output();
    expect(await runDlq(['redrive'], stack.env, out)).toBe(0);
    expect(out.lines).toContain(`Redrive: batch ${first.shardId}/${first.seq}: 2 record(s) re-read from the stream and processed; letter removed.`);
    expect(await requestRow(stack, a.requestId)).toMatchObject({ status: 'committed', version: 1 });
    expect(await requestRow(stack, b.requestId)).toMatchObject({ status: 'committed', version: 1 });
    expect(await requestRow(stack, after.requestId)).toBeUndefined(); // past the range's end
    expect(await finalAckOf(stack, b.requestId)).toMatchObject({ stage: 'committed' });
    expect(await dlq.peekAll()).toEqual([]);
  });

  test('a range the stream no longer holds stays in the queue on redrive (exit 1), and discard deletes just that letter', async () => {
    const gone = onFailureRecord(stack.env.KINESIS_STREAM!, 'shardId-000000000009', '49601189658422359378836298521827638475320189012309704722', '49601189658422359378836298521827638475320189012309704799', 3);
    await send(gone);
    const out = output();
    expect(await runDlq(['redrive'], stack.env, out)).toBe(1);
    expect(out.lines.join('\n')).toMatch(/! batch shardId-000000000009\/\d+: cannot read .* the letter stays/);
    expect(await dlq.peekAll()).toEqual([{ type: 'batch', batch: gone }]);

    await send(onFailureRecord(stack.env.KINESIS_STREAM!, 'shardId-000000000000', '1', '2', 1));
    const discard = output();
    expect(await runDlq(['discard', `shardId-000000000009/${gone.KinesisBatchInfo.startSequenceNumber}`], stack.env, discard)).toBe(0);
    expect(discard.lines).toContain('Discard: 1 batch letter(s) deleted; their ranges were not re-read (a write in them that never committed keeps no final ack).');
    expect((await dlq.peekAll()).map((q) => q.type === 'batch' && q.batch.KinesisBatchInfo.shardId)).toEqual(['shardId-000000000000']);
  });
});

describe('which settings an operator CLI uses', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'ackstream-settings-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const write = (pid: number) => writeFileSync(path.join(dir, 'local-stack.json'), JSON.stringify({
    pid, startedAt: '2026-12-04T00:00:00.000Z', singleNode: false, env: { DATABASE_URL: 'postgres://local/db', REDIS_URL: 'redis://127.0.0.1:63790', LOG_LEVEL: 'info' },
  }));

  test('the running stack\'s file fills what the environment leaves unset; what it sets wins', () => {
    write(process.pid);
    expect(operatorEnv({ LOG_LEVEL: 'warn', REDIS_URL: undefined }, dir)).toEqual({ DATABASE_URL: 'postgres://local/db', REDIS_URL: 'redis://127.0.0.1:63790', LOG_LEVEL: 'warn' });
  });

  test('with DATABASE_URL set, the environment alone is used (a deployed stack), file or not', () => {
    write(process.pid);
    const env = { DATABASE_URL: 'postgres://deployed/db' };
    expect(operatorEnv(env, dir)).toBe(env);
  });

  test('a file left by a stack that is gone (kill -9) is refused in one line', () => {
    write(2 ** 22 + 12345); // above the largest pid Linux can give (2^22): no such process
    expect(() => operatorEnv({}, dir)).toThrow(/^The local stack that wrote .*local-stack\.json \(pid \d+, started 2026-12-04T00:00:00\.000Z\) is no longer running: start the local stack with `npm start`/);
  });
});
