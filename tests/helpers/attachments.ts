/**
 * A stack with attachments on (issue #16): the usual stack, plus the bucket and the work queue on
 * fauxqs, the local notification bridge, and the attachment worker as a real child process (the
 * same entry point `npm start` runs), so a test can kill it mid-object.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { PutRecordCommand } from '@aws-sdk/client-kinesis';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { createKinesis, createSqs } from '../../core/aws';
import type { Command } from '../../core/contracts';
import { partitionKey } from '../../core/keys';
import { createLogger } from '../../core/log';
import { createS3, S3ObjectStore } from '../../core/object-store';
import { NotificationBridge, provisionAttachments } from '../../scripts/attachment-stack';
import { ROOT, stopChild } from '../../scripts/local-stack';
import { startStack, type Stack, type StackOptions } from './stack';

export interface AttachmentStack extends Stack {
  bucket: string;
  workQueueUrl: string;
  workDlqUrl: string;
  s3: S3Client;
  sqs: SQSClient;
  store: S3ObjectStore;
  /** Starts a worker process; resolves once it polls. `exitAt` makes it SIGKILL itself at that step. */
  startWorker(opts?: { exitAt?: 'inspected' | 'kept' | 'queued' }): Promise<ChildProcess>;
  stopWorker(): Promise<void>;
  /** Puts a command straight on the stream (as the worker does), bypassing the gateway. */
  putCommand(cmd: Command): Promise<void>;
  /** Puts an object the way S3 would have stored a signed upload (fauxqs enforces no signatures). */
  putRaw(key: string, body: Buffer, contentType: string, metadata: Record<string, string>): Promise<void>;
}

export async function startAttachmentStack(label: string, opts: StackOptions & { maxBytes?: number; quotaBytes?: number; uploadUrlSeconds?: number; graceSeconds?: number } = {}): Promise<AttachmentStack> {
  const stack = await startStack(label, { ...opts, services: ['processors', 'read-model', 'ack-service'] });
  const endpoint = stack.emulators.sqsEndpoint; // fauxqs serves S3 on its SQS port
  const s3 = createS3({ region: 'us-east-1', endpoint });
  const sqs = createSqs({ region: 'us-east-1', endpoint });
  const bucket = `att-${stack.name.replace(/_/g, '-')}`;
  const kinesis = createKinesis({ region: 'us-east-1', endpoint: stack.emulators.kinesisEndpoint });
  const queues = await provisionAttachments(s3, sqs, { bucket, queueName: `${stack.name}-work`, visibilityTimeoutSeconds: 1, maxReceiveCount: 5 });
  Object.assign(stack.env, {
    ATTACHMENTS_BUCKET: bucket,
    S3_ENDPOINT: endpoint,
    WORK_QUEUE_URL: queues.workQueueUrl,
    MAX_ATTACHMENT_BYTES: String(opts.maxBytes ?? 1024 * 1024),
    ATTACHMENT_TENANT_QUOTA_BYTES: String(opts.quotaBytes ?? 100 * (opts.maxBytes ?? 1024 * 1024)),
    // Short upload windows, so the expiry checks of the tests' uploads run within the tests.
    ATTACHMENT_UPLOAD_URL_S: String(opts.uploadUrlSeconds ?? 600),
    ATTACHMENT_EXPIRY_GRACE_S: String(opts.graceSeconds ?? 60),
  });
  await stack.startService('gateway');
  const bridge = new NotificationBridge(s3, sqs, {
    bucket, queueUrl: queues.workQueueUrl, region: 'us-east-1', intervalMs: 100, log: createLogger('silent', {}),
  });
  bridge.start();

  let worker: ChildProcess | undefined;
  const out: AttachmentStack = Object.assign(stack, {
    bucket, s3, sqs, ...queues,
    store: new S3ObjectStore(s3, { region: 'us-east-1', bucket, endpoint }),
    async startWorker(o: { exitAt?: 'inspected' | 'kept' | 'queued' } = {}) {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'worker/main.ts')], {
        cwd: ROOT,
        env: { ...process.env, ...stack.env, LOG_LEVEL: 'info', ...(o.exitAt ? { ATTACHMENT_WORKER_EXIT_AT: o.exitAt } : {}) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      worker = child;
      await new Promise<void>((resolve, reject) => {
        const lines = createInterface({ input: child.stdout! });
        const errs: string[] = [];
        createInterface({ input: child.stderr! }).on('line', (l) => errs.push(l));
        lines.on('line', (l) => {
          if (l.includes('attachment worker running')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`worker exited (${code}) before it ran: ${errs.join('\n')}`)));
      });
      return child;
    },
    async stopWorker() {
      if (worker) await stopChild(worker);
      worker = undefined;
    },
    async putCommand(cmd: Command) {
      await kinesis.send(new PutRecordCommand({
        StreamName: stack.env.KINESIS_STREAM!, PartitionKey: partitionKey(cmd.tenant, cmd.collection, cmd.id), Data: Buffer.from(JSON.stringify(cmd)),
      }));
    },
    async putRaw(key: string, body: Buffer, contentType: string, metadata: Record<string, string>) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType, Metadata: metadata }));
    },
  });
  const close = stack.close.bind(stack);
  out.close = async () => {
    await out.stopWorker();
    await bridge.stop();
    s3.destroy();
    sqs.destroy();
    kinesis.destroy();
    await close();
  };
  return out;
}
