/**
 * Attachments (issue #16): the binary half of an item. The bytes go straight to the object store
 * through a presigned PUT; a worker checks them and puts an `attach` command on the stream, so the
 * metadata is committed, projected and acked like any other write of the item.
 *
 * Shared by the gateway, the worker and the processors: limits, the object-key layout (tenant
 * first, like every other key), the metadata the item document lists, and the rejection codes.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';

/** Default per-object limit; the deployment sets MAX_ATTACHMENT_BYTES (at most HARD_MAX_ATTACHMENT_BYTES). */
export const DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024;
/** A single presigned PUT takes up to 5 GiB; we stay far below so one worker invocation can hash it. */
export const HARD_MAX_ATTACHMENT_BYTES = 100 * 1024 * 1024;
/** Attachments per item: the item document lists them all, and it must stay small. */
export const MAX_ATTACHMENTS_PER_ITEM = 50;

/** The content types an attachment may have (what the worker can recognise by magic numbers). */
export const ALLOWED_CONTENT_TYPES = [
  'image/png',
  'image/jpeg',
  'image/gif',
  'image/webp',
  'application/pdf',
  'application/zip',
] as const;
export type AllowedContentType = (typeof ALLOWED_CONTENT_TYPES)[number];
/** Images get a thumbnail. */
export const IMAGE_TYPES: ReadonlySet<string> = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);

/** A file name: no path separators or control characters, no leading dot, at most 255 characters. */
export const ATTACHMENT_NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9 _.()+,=@-]{0,254}$/;
export const ATTACHMENT_ID_PATTERN = /^[a-f0-9]{32}$/;

export const AttachmentRequestSchema = z.object({
  name: z.string().regex(ATTACHMENT_NAME_PATTERN, 'must match ^[A-Za-z0-9_][A-Za-z0-9 _.()+,=@-]{0,254}$'),
  contentType: z.enum(ALLOWED_CONTENT_TYPES, { message: `must be one of ${ALLOWED_CONTENT_TYPES.join(', ')}` }),
  size: z.number().int('must be an integer').positive('must be positive'),
  sha256: z.string().regex(/^[a-f0-9]{64}$/, 'must be 64 lowercase hex digits').optional(),
}).strict();
export type AttachmentRequest = z.infer<typeof AttachmentRequestSchema>;

export interface Thumbnail {
  contentType: 'image/webp';
  width: number;
  height: number;
  size: number;
}

/** One attachment as the item document lists it. `version` is the item version that added it. */
export const AttachmentMetaSchema = z.object({
  attachmentId: z.string().regex(ATTACHMENT_ID_PATTERN),
  name: z.string().regex(ATTACHMENT_NAME_PATTERN),
  contentType: z.string(),
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[a-f0-9]{64}$/),
  version: z.number().int().positive().optional(),
  addedAt: z.string().optional(),
  thumbnail: z.object({
    contentType: z.literal('image/webp'), width: z.number().int(), height: z.number().int(), size: z.number().int(),
  }).optional(),
});
export type AttachmentMeta = z.infer<typeof AttachmentMetaSchema>;

/**
 * Where an item's attachments live in its state: a reserved top-level key of the state's data,
 * which the projection lifts out into the document's `attachments` (so users never see it in
 * `data`, and PUT/PATCH bodies may not carry it).
 */
export const ATTACHMENTS_STATE_KEY = '@attachments';

/** Why the worker refused an upload (the `reason.code` of the `rejected` ack). */
export const AttachmentRejectionCode = z.enum([
  'attachment_size_mismatch',
  'attachment_sha256_mismatch',
  'attachment_type_mismatch',
  'attachment_too_large',
  'upload_expired',
]);
export type AttachmentRejectionCode = z.infer<typeof AttachmentRejectionCode>;

/**
 * Object keys. Uploads land under `uploads/`; the worker copies a checked upload to `objects/` (so
 * the bytes a committed attachment names can no longer be overwritten through its upload URL) and
 * its thumbnail to `thumbnails/`. All three start with the tenant and the item, so an item's bytes
 * are one prefix per kind.
 */
export const ObjectKeys = {
  upload: (tenant: string, collection: string, id: string, attachmentId: string) =>
    `uploads/${tenant}/${collection}/${id}/${attachmentId}`,
  object: (tenant: string, collection: string, id: string, attachmentId: string) =>
    `objects/${tenant}/${collection}/${id}/${attachmentId}`,
  thumbnail: (tenant: string, collection: string, id: string, attachmentId: string) =>
    `thumbnails/${tenant}/${collection}/${id}/${attachmentId}.webp`,
  itemPrefixes: (tenant: string, collection: string, id: string) =>
    ['uploads', 'objects', 'thumbnails'].map((p) => `${p}/${tenant}/${collection}/${id}/`),
};

export interface UploadKey {
  tenant: string;
  collection: string;
  id: string;
  attachmentId: string;
}

const UPLOAD_KEY = /^uploads\/([A-Za-z0-9_.-]{1,64})\/([A-Za-z0-9_.-]{1,128})\/([A-Za-z0-9_.-]{1,128})\/([a-f0-9]{32})$/;

/** The parts of an upload key, or undefined for any other key (which the worker then ignores). */
export function parseUploadKey(key: string): UploadKey | undefined {
  const m = UPLOAD_KEY.exec(key);
  return m ? { tenant: m[1]!, collection: m[2]!, id: m[3]!, attachmentId: m[4]! } : undefined;
}

/**
 * The request id of an attachment's `attach` command: derived from the attachment id, so a worker
 * that handles the same upload twice (killed and restarted, or a redelivered notification) puts
 * the same request id, which the processors commit once.
 */
export const attachRequestId = (attachmentId: string) => `att-${attachmentId}`;

/**
 * What the gateway signs into the upload (S3 user metadata, `x-amz-meta-*`): the worker reads it
 * back from the object, and a client cannot change it without breaking the signature.
 */
export interface UploadMetadata {
  principal: string;
  name: string;
  contenttype: string;
  size: string;
  sha256?: string;
  expires: string;
}

export const sha256Hex = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/**
 * The expiry check of one upload URL: the gateway puts it on the work queue when it hands the URL
 * out, delayed (SQS DelaySeconds ≤ 900) until the URL has expired plus a grace period for an upload
 * that started in time. The worker then decides the attachment if nothing else has: it processes
 * the upload if it is there, and otherwise puts `rejected` / `upload_expired` on the item's stream
 * under the attachment's request id, so the outcome is one and in order with the item's writes.
 */
export const ExpiryJobSchema = z.object({
  type: z.literal('expire'),
  tenant: z.string(),
  principal: z.string(),
  collection: z.string(),
  id: z.string(),
  attachmentId: z.string().regex(ATTACHMENT_ID_PATTERN),
  name: z.string(),
  /** When the upload URL expired (ISO 8601). */
  expiresAt: z.string(),
  /** When the check is due: expiresAt + the grace period (ISO 8601). */
  dueAt: z.string(),
});
export type ExpiryJob = z.infer<typeof ExpiryJobSchema>;

/** SQS delays a message at most 15 minutes: the upload URL's lifetime plus the grace period must fit. */
export const MAX_EXPIRY_DELAY_S = 900;
