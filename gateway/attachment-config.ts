/**
 * The gateway's attachment settings (issue #16): read once with the rest of its config. Attachments
 * are on when ATTACHMENTS_BUCKET is set.
 */
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { DEFAULT_MAX_ATTACHMENT_BYTES, HARD_MAX_ATTACHMENT_BYTES } from '../core/attachments';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { createDocumentClient, createDynamo, createSqs } from '../core/aws';
import { optionalUrl, positiveInt } from '../core/config';
import { createS3, S3ObjectStore } from '../core/object-store';
import { DynamoDurableStore, type HotStore } from '../core/read-store';
import { type AttachmentSettings, type ItemLookup, MemoryUploadQuota, RedisUploadQuota } from './attachments';
import { DownloadUrlEnv, downloadUrlSigner } from './download-urls';

export const AttachmentEnv = z.object({
  /** The attachments bucket; unset: attachments are off (their routes answer 404). */
  ATTACHMENTS_BUCKET: z.string().optional(),
  /** Object store endpoint (fauxqs locally); unset on AWS. */
  S3_ENDPOINT: optionalUrl,
  /** The object store address as clients reach it, for presigned URLs (defaults to S3_ENDPOINT). */
  S3_PUBLIC_ENDPOINT: optionalUrl,
  /** Largest attachment, in bytes (the declared size at POST, the real size in the worker). */
  MAX_ATTACHMENT_BYTES: positiveInt(DEFAULT_MAX_ATTACHMENT_BYTES)
    .pipe(z.number().max(HARD_MAX_ATTACHMENT_BYTES, `MAX_ATTACHMENT_BYTES may be at most ${HARD_MAX_ATTACHMENT_BYTES}`)),
  /** Bytes a tenant may have under unexpired upload URLs at once. */
  ATTACHMENT_TENANT_PENDING_BYTES: positiveInt(200 * 1024 * 1024),
  /** Lifetime of a presigned upload URL (and of its quota reservation), in seconds. */
  ATTACHMENT_UPLOAD_URL_S: positiveInt(900),
  /** Lifetime of the signed URL a GET of an attachment redirects to, in seconds. */
  ATTACHMENT_DOWNLOAD_URL_S: positiveInt(60),
  /** The attachment worker's queue: DELETEs send it purge jobs. */
  WORK_QUEUE_URL: z.string().optional(),
  /** The durable copy, asked when the hot copy has no entry for the item (it may have been evicted). */
  ITEMS_TABLE: z.string().default('ackstream-items'),
  /** The durable copy's requests table (the lookup's store needs it; the gateway reads only items). */
  REQUESTS_TABLE: z.string().default('ackstream-requests'),
}).merge(DownloadUrlEnv);
export type AttachmentEnv = z.infer<typeof AttachmentEnv>;

export function attachmentSettings(
  config: AttachmentEnv & { AWS_REGION: string; DYNAMODB_ENDPOINT?: string | undefined; SQS_ENDPOINT?: string | undefined; REDIS_PREFIX: string },
  hot: HotStore,
  redis: Redis | undefined,
): { settings: AttachmentSettings; close(): void } | undefined {
  if (!config.ATTACHMENTS_BUCKET) return undefined;
  const s3 = createS3({ region: config.AWS_REGION, endpoint: config.S3_ENDPOINT });
  const dynamo = createDynamo({ region: config.AWS_REGION, endpoint: config.DYNAMODB_ENDPOINT });
  const durable = new DynamoDurableStore(createDocumentClient(dynamo), config.ITEMS_TABLE, config.REQUESTS_TABLE);
  const items: ItemLookup = {
    async getItem(tenant, collection, id) {
      return (await hot.getItem(tenant, collection, id)) ?? durable.getItem(tenant, collection, id);
    },
  };
  const sqs = config.WORK_QUEUE_URL ? createSqs({ region: config.AWS_REGION, endpoint: config.SQS_ENDPOINT }) : undefined;
  const queueUrl = config.WORK_QUEUE_URL;
  const store = new S3ObjectStore(s3, { region: config.AWS_REGION, bucket: config.ATTACHMENTS_BUCKET, endpoint: config.S3_ENDPOINT, publicEndpoint: config.S3_PUBLIC_ENDPOINT });
  return {
    settings: {
      ...(sqs && queueUrl ? {
        async purge(job: { tenant: string; collection: string; id: string; attachmentId?: string; requestId: string }) {
          await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify({ type: 'purge', ...job }), DelaySeconds: 1 }));
        },
      } : {}),
      store,
      downloads: downloadUrlSigner(config, store),
      items,
      maxBytes: config.MAX_ATTACHMENT_BYTES,
      tenantPendingBytes: config.ATTACHMENT_TENANT_PENDING_BYTES,
      uploadUrlSeconds: config.ATTACHMENT_UPLOAD_URL_S,
      downloadUrlSeconds: config.ATTACHMENT_DOWNLOAD_URL_S,
      quota: redis ? new RedisUploadQuota(redis, config.REDIS_PREFIX) : new MemoryUploadQuota(),
    },
    close() {
      s3.destroy();
      dynamo.destroy();
      sqs?.destroy();
    },
  };
}
