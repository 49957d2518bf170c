/**
 * The gateway's attachment settings (issue #16): read once with the rest of its config. Attachments
 * are on when ATTACHMENTS_BUCKET is set.
 */
import { z } from 'zod';
import { DEFAULT_MAX_ATTACHMENT_BYTES, HARD_MAX_ATTACHMENT_BYTES, MAX_EXPIRY_DELAY_S } from '../core/attachments';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { createDocumentClient, createDynamo, createSqs } from '../core/aws';
import { optionalUrl, positiveInt } from '../core/config';
import { DbConnectionEnv, hasDbConnection, openDbPool } from '../core/db-credentials';
import { createS3, S3ObjectStore } from '../core/object-store';
import { DynamoDurableStore, type HotStore } from '../core/read-store';
import { type AttachmentSettings, type ItemLookup, PgUploadQuota } from './attachments';
import { DownloadUrlEnv, downloadUrlSigner } from './download-urls';

/** The longest grace period, and so the longest URL lifetime that fits SQS's 900 s delay with it. */
const MAX_GRACE_S = 60;

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
  /**
   * Bytes of attachments a tenant may store: its committed attachments (PostgreSQL, changed in the
   * commit transaction) plus the declared sizes of its pending uploads. Beyond it a POST is a 409.
   */
  ATTACHMENT_TENANT_QUOTA_BYTES: positiveInt(5 * 1024 * 1024 * 1024),
  /**
   * Lifetime of a presigned upload URL, in seconds. At most 840: the upload's expiry check is a
   * delayed SQS message (at most 900 s) due this long plus ATTACHMENT_EXPIRY_GRACE_S after the POST.
   */
  ATTACHMENT_UPLOAD_URL_S: positiveInt(600)
    .pipe(z.number().max(MAX_EXPIRY_DELAY_S - MAX_GRACE_S, `ATTACHMENT_UPLOAD_URL_S may be at most ${MAX_EXPIRY_DELAY_S - MAX_GRACE_S}`)),
  /**
   * Seconds after an upload URL expired before its expiry check decides the attachment: time for an
   * upload that started in time to finish and be noticed. An upload landing later is rejected
   * (upload_expired) and deleted.
   */
  ATTACHMENT_EXPIRY_GRACE_S: positiveInt(MAX_GRACE_S).pipe(z.number().max(MAX_GRACE_S, `ATTACHMENT_EXPIRY_GRACE_S may be at most ${MAX_GRACE_S}`)),
  /** Lifetime of the signed URL a GET of an attachment redirects to, in seconds. */
  ATTACHMENT_DOWNLOAD_URL_S: positiveInt(60),
  /** The attachment worker's queue (required with ATTACHMENTS_BUCKET): POSTs send it expiry checks, DELETEs purge jobs. */
  WORK_QUEUE_URL: z.string().optional(),
  /** PostgreSQL connections of the gateway's quota checks. */
  ATTACHMENT_PG_POOL_SIZE: positiveInt(4),
  /** The durable copy, asked when the hot copy has no entry for the item (it may have been evicted). */
  ITEMS_TABLE: z.string().default('ackstream-items'),
  /** The durable copy's requests table (the lookup's store needs it; the gateway reads only items). */
  REQUESTS_TABLE: z.string().default('ackstream-requests'),
})
  // PostgreSQL, the processors' database (required with ATTACHMENTS_BUCKET): the tenants' attachment
  // quota is checked and reserved there, next to the committed bytes it counts.
  .merge(DbConnectionEnv)
  .merge(DownloadUrlEnv);
export type AttachmentEnv = z.infer<typeof AttachmentEnv>;

export function attachmentSettings(
  config: AttachmentEnv & { AWS_REGION: string; DYNAMODB_ENDPOINT?: string | undefined; SQS_ENDPOINT?: string | undefined },
  hot: HotStore,
): { settings: AttachmentSettings; close(): Promise<void> } | undefined {
  if (!config.ATTACHMENTS_BUCKET) return undefined;
  const queueUrl = config.WORK_QUEUE_URL;
  if (!queueUrl) throw new Error('WORK_QUEUE_URL is required with ATTACHMENTS_BUCKET (every upload URL has its expiry check on the work queue)');
  if (!hasDbConnection(config)) {
    throw new Error('DATABASE_URL (or DB_SECRET_ARN and DB_HOST) is required with ATTACHMENTS_BUCKET (the tenants\' attachment quota is kept in PostgreSQL)');
  }
  const pool = openDbPool(config, { region: config.AWS_REGION, max: config.ATTACHMENT_PG_POOL_SIZE });
  pool.on('error', () => undefined); // an idle client's lost connection: the pool replaces it
  const s3 = createS3({ region: config.AWS_REGION, endpoint: config.S3_ENDPOINT });
  const dynamo = createDynamo({ region: config.AWS_REGION, endpoint: config.DYNAMODB_ENDPOINT });
  const durable = new DynamoDurableStore(createDocumentClient(dynamo), config.ITEMS_TABLE, config.REQUESTS_TABLE);
  const items: ItemLookup = {
    async getItem(tenant, collection, id) {
      return (await hot.getItem(tenant, collection, id)) ?? durable.getItem(tenant, collection, id);
    },
  };
  const sqs = createSqs({ region: config.AWS_REGION, endpoint: config.SQS_ENDPOINT });
  const store = new S3ObjectStore(s3, { region: config.AWS_REGION, bucket: config.ATTACHMENTS_BUCKET, endpoint: config.S3_ENDPOINT, publicEndpoint: config.S3_PUBLIC_ENDPOINT });
  return {
    settings: {
      async purge(job: { tenant: string; collection: string; id: string; attachmentId?: string; requestId: string }) {
        await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify({ type: 'purge', ...job }), DelaySeconds: 1 }));
      },
      async scheduleExpiry(job, delaySeconds) {
        await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(job), DelaySeconds: delaySeconds }));
      },
      store,
      downloads: downloadUrlSigner(config, store),
      items,
      maxBytes: config.MAX_ATTACHMENT_BYTES,
      tenantQuotaBytes: config.ATTACHMENT_TENANT_QUOTA_BYTES,
      uploadUrlSeconds: config.ATTACHMENT_UPLOAD_URL_S,
      expiryGraceSeconds: config.ATTACHMENT_EXPIRY_GRACE_S,
      downloadUrlSeconds: config.ATTACHMENT_DOWNLOAD_URL_S,
      quota: new PgUploadQuota(pool),
    },
    async close() {
      s3.destroy();
      dynamo.destroy();
      sqs.destroy();
      await pool.end();
    },
  };
}
