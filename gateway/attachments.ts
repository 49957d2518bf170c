/**
 * Attachment routes of the write API (issue #16):
 *  - POST   /v1/collections/{c}/items/{id}/attachments  → 201 + a presigned PUT to the object store
 *  - GET    /v1/collections/{c}/items/{id}/attachments/{attachmentId}[?thumbnail] → 302 to a short-lived signed URL
 * (DELETE of an attachment is a write like the others: see `detach` in app.ts.)
 *
 * The bytes never pass through the gateway. Nothing is created for a refused request; an upload
 * URL that is never used expires, and so does its reservation of the tenant's upload quota.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import {
  type AttachmentMeta,
  AttachmentRequestSchema,
  ATTACHMENT_ID_PATTERN,
  ObjectKeys,
  type UploadMetadata,
  attachRequestId,
} from '../core/attachments';
import { CollectionName, type ItemDocument, ItemId } from '../core/contracts';
import { BadRequestError, NotFoundError, PayloadTooLargeError, ProblemError, ServiceUnavailableError, UnprocessableError } from '../core/errors';
import type { ObjectStore } from '../core/object-store';
import type { DownloadUrlSigner } from './download-urls';
import type { IdempotencyStore } from './idempotency';

/** How the gateway finds an item's current document: the read model (hot copy, then durable copy). */
export interface ItemLookup {
  getItem(tenant: string, collection: string, id: string): Promise<{ json: string | null } | undefined>;
}

export interface AttachmentSettings {
  store: ObjectStore;
  items: ItemLookup;
  /** Per-object limit (MAX_ATTACHMENT_BYTES). */
  maxBytes: number;
  /** Per-tenant quota of bytes under unexpired upload URLs (ATTACHMENT_TENANT_PENDING_BYTES). */
  tenantPendingBytes: number;
  uploadUrlSeconds: number;
  downloadUrlSeconds: number;
  /** Signs the URL a GET of an attachment redirects to: S3 presigned (local) or CloudFront signed (deployed). */
  downloads: DownloadUrlSigner;
  /** Reservations of the upload quota (Redis; in process for a single node). */
  quota: UploadQuota;
  /**
   * Asks the attachment worker to remove the bytes of a deleted item or attachment once the
   * DELETE is committed (a purge job on the work queue, worker/handler.ts).
   */
  purge?(job: { tenant: string; collection: string; id: string; attachmentId?: string; requestId: string }): Promise<void>;
}

export interface UploadQuota {
  /** Reserves `size` bytes until `expiresAt` (ms); false if the tenant's quota would be exceeded. Same id twice: one reservation. */
  reserve(tenant: string, attachmentId: string, size: number, expiresAt: number, limit: number): Promise<boolean>;
}

/**
 * A reservation lasts as long as its upload URL (then the bytes have landed or never will).
 * Reservations in one sorted set per tenant (score: expiry in ms, member: `<attachmentId>:<size>`),
 * checked and added in one Lua script so racing requests cannot both pass.
 */
export class RedisUploadQuota implements UploadQuota {
  constructor(private readonly redis: Redis, private readonly prefix: string) {}
  private key(tenant: string) {
    return `${this.prefix}attquota:${tenant}`;
  }
  async reserve(tenant: string, attachmentId: string, size: number, expiresAt: number, limit: number): Promise<boolean> {
    const ok = await this.redis.eval(RESERVE, 1, this.key(tenant), Date.now(), expiresAt, `${attachmentId}:${size}`, size, limit, attachmentId);
    return ok === 1;
  }
}

const RESERVE = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local total = 0
for _, m in ipairs(members) do
  local id, size = string.match(m, '^(.*):(%d+)$')
  if id == ARGV[6] then return 1 end
  total = total + tonumber(size)
end
if total + tonumber(ARGV[4]) > tonumber(ARGV[5]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
`;

export class MemoryUploadQuota implements UploadQuota {
  private readonly byTenant = new Map<string, Map<string, { size: number; expiresAt: number }>>();
  async reserve(tenant: string, attachmentId: string, size: number, expiresAt: number, limit: number): Promise<boolean> {
    const now = Date.now();
    const m = this.byTenant.get(tenant) ?? new Map();
    this.byTenant.set(tenant, m);
    for (const [id, r] of m) if (r.expiresAt <= now) m.delete(id);
    if (m.has(attachmentId)) return true;
    const total = [...m.values()].reduce((s, r) => s + r.size, 0);
    if (total + size > limit) return false;
    m.set(attachmentId, { size, expiresAt });
    return true;
  }
}

export const AttachmentParams = z.object({ collection: CollectionName, id: ItemId });
export const AttachmentIdParams = AttachmentParams.extend({
  attachmentId: z.string().regex(ATTACHMENT_ID_PATTERN, 'must be 32 lowercase hex digits'),
});

export interface UploadAnswer {
  attachmentId: string;
  /** The request id the attachment's `committed`/`rejected` ack will carry. */
  requestId: string;
  upload: { url: string; method: 'PUT'; headers: Record<string, string>; expiresAt: string };
}

/** Validates and answers a POST .../attachments (auth, rate limit and Idempotency-Key parsing are the caller's). */
export async function createUpload(
  s: AttachmentSettings,
  idempotency: IdempotencyStore,
  who: { tenant: string; principal: string; idempotencyKey?: string | undefined },
  params: { collection: string; id: string },
  body: unknown,
): Promise<UploadAnswer> {
  const parsed = AttachmentRequestSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join('.');
    throw new BadRequestError(field ? `Invalid field ${field}: ${issue.message}.` : `Invalid attachment request: ${issue.message}.`);
  }
  const req = parsed.data;
  if (req.size > s.maxBytes) {
    throw new PayloadTooLargeError(`The attachment (${req.size} bytes) exceeds the limit of ${s.maxBytes} bytes per object.`);
  }
  const item = await s.items.getItem(who.tenant, params.collection, params.id);
  if (!item || item.json === null) throw new NotFoundError(`Item ${params.collection}/${params.id} does not exist.`);

  let attachmentId = randomBytes(16).toString('hex');
  if (who.idempotencyKey) {
    // The attachment id plays the request id's part in the claim: the same key and body get the same attachment (and a fresh URL).
    const scope = { tenant: who.tenant, principal: who.principal, key: who.idempotencyKey };
    const fingerprint = createHash('sha256').update(JSON.stringify(['attach', params.collection, params.id, req])).digest('base64url');
    const claim = await guard(() => idempotency.claim(scope, fingerprint, attachmentId));
    if (claim.kind === 'existing' && claim.record.fingerprint !== fingerprint) {
      throw new UnprocessableError(
        `Idempotency-Key "${who.idempotencyKey}" was already used with a different request (request ${claim.record.requestId}); use a new key for a different write.`,
      );
    }
    attachmentId = claim.kind === 'owner' ? claim.requestId : claim.record.requestId;
    if (claim.kind === 'owner') {
      await guard(() => idempotency.complete(scope, { fingerprint, requestId: attachmentId, state: 'done', leaseUntil: 0 }));
    }
  }

  const expiresAt = Date.now() + s.uploadUrlSeconds * 1000;
  const reserved = await guard(() => s.quota.reserve(who.tenant, attachmentId, req.size, expiresAt, s.tenantPendingBytes));
  if (!reserved) {
    throw new PayloadTooLargeError(
      `Tenant ${who.tenant} has more than ${s.tenantPendingBytes} bytes of uploads in flight; wait for them to land or expire.`,
    );
  }
  const metadata: UploadMetadata = {
    principal: who.principal,
    name: req.name,
    contenttype: req.contentType,
    size: String(req.size),
    ...(req.sha256 ? { sha256: req.sha256 } : {}),
    expires: new Date(expiresAt).toISOString(),
  };
  const key = ObjectKeys.upload(who.tenant, params.collection, params.id, attachmentId);
  const upload = await guard(() => s.store.presignPut(key, {
    contentType: req.contentType, contentLength: req.size, metadata: { ...metadata }, expiresInSeconds: s.uploadUrlSeconds,
  }));
  return { attachmentId, requestId: attachRequestId(attachmentId), upload: { ...upload, expiresAt: new Date(expiresAt).toISOString() } };
}

/** A short-lived signed URL (S3 or CDN, as `s.downloads` signs) for one committed attachment (or its thumbnail) of the caller's tenant. */
export async function downloadUrl(
  s: Pick<AttachmentSettings, 'items' | 'downloads' | 'downloadUrlSeconds'>,
  tenant: string,
  params: { collection: string; id: string; attachmentId: string },
  thumbnail: boolean,
): Promise<string> {
  const item = await s.items.getItem(tenant, params.collection, params.id);
  const doc = item?.json ? (JSON.parse(item.json) as ItemDocument) : undefined;
  if (!doc) throw new NotFoundError(`Item ${params.collection}/${params.id} does not exist.`);
  const meta = (doc.attachments as AttachmentMeta[] | undefined)?.find((a) => a.attachmentId === params.attachmentId);
  if (!meta) throw new NotFoundError(`Item ${params.collection}/${params.id} has no attachment ${params.attachmentId}.`);
  if (thumbnail && !meta.thumbnail) throw new NotFoundError(`Attachment ${params.attachmentId} has no thumbnail.`);
  const key = thumbnail
    ? ObjectKeys.thumbnail(tenant, params.collection, params.id, params.attachmentId)
    : ObjectKeys.object(tenant, params.collection, params.id, params.attachmentId);
  return guard(() => s.downloads.sign(key, {
    expiresInSeconds: s.downloadUrlSeconds,
    fileName: thumbnail ? `${meta.name}.webp` : meta.name,
    contentType: thumbnail ? 'image/webp' : meta.contentType,
  }));
}

async function guard<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ProblemError) throw err;
    throw new ServiceUnavailableError(`A backing store is unavailable (${(err as Error).message}); nothing was created.`, 1);
  }
}
