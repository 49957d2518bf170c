/** The attachment worker's parts, built once from its config: for worker/main.ts and worker/lambda.ts. */
import { PutRecordCommand } from '@aws-sdk/client-kinesis';
import { z } from 'zod';
import { DEFAULT_MAX_ATTACHMENT_BYTES, HARD_MAX_ATTACHMENT_BYTES } from '../core/attachments';
import { createDocumentClient, createDynamo, createKinesis } from '../core/aws';
import { AwsEnv, LogEnv, optionalUrl, positiveInt, StreamEnv, TablesEnv } from '../core/config';
import { partitionKey } from '../core/keys';
import type { Logger } from '../core/log';
import { createS3, S3ObjectStore } from '../core/object-store';
import { DynamoDurableStore } from '../core/read-store';
import { createAttachmentWorker, type WorkerDeps } from './handler';
import { fileTypeSniffer, sharpThumbnailer } from './inspect';

export const WorkerConfig = z.object({
  /** The bucket the uploads land in. */
  ATTACHMENTS_BUCKET: z.string().min(1, 'ATTACHMENTS_BUCKET is required'),
  /** Object store endpoint (fauxqs locally); unset on AWS. */
  S3_ENDPOINT: optionalUrl,
  /** Largest attachment the worker accepts, in bytes (larger: rejected, attachment_too_large, never downloaded). */
  MAX_ATTACHMENT_BYTES: positiveInt(DEFAULT_MAX_ATTACHMENT_BYTES).pipe(z.number().max(HARD_MAX_ATTACHMENT_BYTES)),
  /** Local runner only (the Lambda gets its batches from the event source mapping). */
  WORK_QUEUE_URL: z.string().optional(),
  /** Messages per receive of the local runner (the Lambda's batch size is the event source mapping's). */
  WORKER_BATCH_SIZE: positiveInt(10).pipe(z.number().max(10, 'SQS receives at most 10 messages at once')),
  /**
   * Messages of a batch the worker handles at once (the Lambda's and the local runner's). Each may
   * hold an upload in memory: the function needs about this many times MAX_ATTACHMENT_BYTES.
   */
  WORKER_CONCURRENCY: positiveInt(4).pipe(z.number().max(10, 'a batch holds at most 10 messages')),
  /** Tests only: the local worker SIGKILLs itself at this step of its first upload (proves a restart processes it once). */
  ATTACHMENT_WORKER_EXIT_AT: z.enum(['inspected', 'kept', 'queued']).optional(),
}).merge(AwsEnv).merge(StreamEnv).merge(TablesEnv).merge(LogEnv);
export type WorkerConfig = z.infer<typeof WorkerConfig>;

export function composeWorker(config: WorkerConfig, log: Logger, extra: Pick<WorkerDeps, 'step'> = {}) {
  const s3 = createS3({ region: config.AWS_REGION, endpoint: config.S3_ENDPOINT });
  const kinesis = createKinesis({ region: config.AWS_REGION, endpoint: config.KINESIS_ENDPOINT });
  const dynamo = createDynamo({ region: config.AWS_REGION, endpoint: config.DYNAMODB_ENDPOINT });
  const durable = new DynamoDurableStore(createDocumentClient(dynamo), config.ITEMS_TABLE, config.REQUESTS_TABLE);
  const worker = createAttachmentWorker({
    store: new S3ObjectStore(s3, { region: config.AWS_REGION, bucket: config.ATTACHMENTS_BUCKET, endpoint: config.S3_ENDPOINT }),
    async put(cmd) {
      await kinesis.send(new PutRecordCommand({
        StreamName: config.KINESIS_STREAM, PartitionKey: partitionKey(cmd.tenant, cmd.collection, cmd.id), Data: Buffer.from(JSON.stringify(cmd)),
      }));
    },
    readModel: durable,
    sniff: fileTypeSniffer,
    thumbnail: sharpThumbnailer,
    maxBytes: config.MAX_ATTACHMENT_BYTES,
    concurrency: config.WORKER_CONCURRENCY,
    log,
    ...extra,
  });
  return {
    worker,
    close() {
      s3.destroy();
      kinesis.destroy();
      dynamo.destroy();
    },
  };
}
