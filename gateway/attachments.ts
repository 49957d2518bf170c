/**
 * Attachment routes of the write API (issue #16):
 *  - POST   /v1/collections/{c}/items/{id}/attachments  → 201 + a presigned PUT to the object store
 *  - GET    /v1/collections/{c}/items/{id}/attachments/{attachmentId}[?thumbnail] → 302 to a short-lived signed URL
 * (DELETE of an attachment is a write like the others: see `detach` in app.ts.)
 *
 * The bytes never pass through the gateway. Nothing is created for a refused request. Every upload
 * URL handed out reserves its size in the tenant's quota and has an expiry check on the work queue,
 * so its attachment is always decided (committed, or rejected: `upload_expired` when nothing came)
 * and the decision releases the reservation.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Pool } from 'pg';
import { z } from 'zod';
import {
  type AttachmentMeta,
  AttachmentRequestSchema,
  ATTACHMENT_ID_PATTERN,
  ObjectKeys,
  type UploadMetadata,
  attachRequestId,
  type ExpiryJob,
  MAX_EXPIRY_DELAY_S,
} from '../core/attachments';
import { CollectionName, type ItemDocument, ItemId } from '../core/contracts';
import {
  AttachmentQuotaError, BadRequestError, ConflictError, NotFoundError, PayloadTooLargeError, ProblemError, ServiceUnavailableError, UnprocessableError,
} from '../core/errors';
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
  /** Per-tenant quota of stored bytes: committed attachments plus pending uploads (ATTACHMENT_TENANT_QUOTA_BYTES). */
  tenantQuotaBytes: number;
  uploadUrlSeconds: number;
  /** How long after an upload URL expired its expiry check runs (ATTACHMENT_EXPIRY_GRACE_S). */
  expiryGraceSeconds: number;
  downloadUrlSeconds: number;
  /** Signs the URL a GET of an attachment redirects to: S3 presigned (local) or CloudFront signed (deployed). */
  downloads: DownloadUrlSigner;
  /** The tenant's stored bytes and upload reservations, in PostgreSQL. */
  quota: UploadQuota;
  /** Puts an upload's expiry check on the work queue, delayed by `delaySeconds` (≤ 900). */
  scheduleExpiry(job: ExpiryJob, delaySeconds: number): Promise<void>;
  /**
   * Asks the attachment worker to remove the bytes of a deleted item or attachment once the
   * DELETE is committed (a purge job on the work queue, worker/handler.ts).
   */
  purge?(job: { tenant: string; collection: string; id: string; attachmentId?: string; requestId: string }): Promise<void>;
}

export type Reservation =
  /** Reserved now. */
  | { kind: 'reserved'; expiresAt: number }
  /** Reserved before (an Idempotency-Key replay): the same upload window. */
  | { kind: 'existing'; expiresAt: number }
  /** The attachment's request is decided already (a replay after the outcome). */
  | { kind: 'decided'; status: string }
  | { kind: 'over'; committedBytes: number; reservedBytes: number };

export interface UploadQuota {
  /**
   * Reserves `size` bytes of the tenant's quota for an upload until its attach request is decided
   * (the commit transaction releases it); `over` if committed + reserved + size would exceed `limit`.
   */
  reserve(r: { tenant: string; attachmentId: string; size: number; expiresAt: number; limit: number }): Promise<Reservation>;
  /** Undoes a reservation whose upload URL was never handed out. */
  release(attachmentId: string): Promise<void>;
}

/**
 * The quota where the truth is: the committed bytes per tenant are changed by the processors' commit
 * transaction (processors/command-store/pg/event-log.ts, QuotaChanges), and the reservations live
 * next to them. A reservation holds the tenant's usage row (an upsert locks it), so parallel POSTs
 * of one tenant check and reserve one after another and cannot overshoot the quota together.
 * A reservation whose request is never decided (its expiry check lost in the DLQ) stops counting a
 * day after its URL expired.
 */
export class PgUploadQuota implements UploadQuota {
  constructor(private readonly pool: Pool) {}

  async reserve(r: { tenant: string; attachmentId: string; size: number; expiresAt: number; limit: number }): Promise<Reservation> {
    const client = await this.pool.connect();
    let failed: Error | undefined;
    try {
      await client.query('BEGIN');
      const usage = await client.query<{ committed_bytes: string }>(
        `INSERT INTO attachment_usage (tenant) VALUES ($1)
         ON CONFLICT (tenant) DO UPDATE SET tenant = EXCLUDED.tenant RETURNING committed_bytes`,
        [r.tenant],
      );
      const known = await client.query<{ expires_at: Date | null; status: string | null; reserved: string }>(
        `SELECT (SELECT expires_at FROM attachment_reservations WHERE attachment_id = $2) AS expires_at,
                (SELECT status FROM requests WHERE request_id = $3) AS status,
                (SELECT coalesce(sum(bytes), 0) FROM attachment_reservations
                  WHERE tenant = $1 AND expires_at > now() - interval '1 day') AS reserved`,
        [r.tenant, r.attachmentId, attachRequestId(r.attachmentId)],
      );
      const row = known.rows[0]!;
      let out: Reservation;
      const committedBytes = Number(usage.rows[0]!.committed_bytes);
      const reservedBytes = Number(row.reserved);
      if (row.status) out = { kind: 'decided', status: row.status };
      else if (row.expires_at) out = { kind: 'existing', expiresAt: row.expires_at.getTime() };
      else if (committedBytes + reservedBytes + r.size > r.limit) out = { kind: 'over', committedBytes, reservedBytes };
      else {
        await client.query(
          'INSERT INTO attachment_reservations (attachment_id, tenant, bytes, expires_at) VALUES ($1, $2, $3, $4)',
          [r.attachmentId, r.tenant, r.size, new Date(r.expiresAt)],
        );
        out = { kind: 'reserved', expiresAt: r.expiresAt };
      }
      await client.query('COMMIT');
      return out;
    } catch (err) {
      failed = err as Error;
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release(failed);
    }
  }

  async release(attachmentId: string): Promise<void> {
    await this.pool.query('DELETE FROM attachment_reservations WHERE attachment_id = $1', [attachmentId]);
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

  const reservation = await guard(() => s.quota.reserve({
    tenant: who.tenant, attachmentId, size: req.size, expiresAt: Date.now() + s.uploadUrlSeconds * 1000, limit: s.tenantQuotaBytes,
  }));
  const requestId = attachRequestId(attachmentId);
  if (reservation.kind === 'over') {
    throw new AttachmentQuotaError(
      `Tenant ${who.tenant} stores ${reservation.committedBytes} bytes of attachments and has ${reservation.reservedBytes} bytes of uploads pending; ` +
        `${req.size} more would exceed its quota of ${s.tenantQuotaBytes} bytes. Remove attachments (or wait for pending uploads to be decided) and retry.`,
      { quotaBytes: s.tenantQuotaBytes, committedBytes: reservation.committedBytes, reservedBytes: reservation.reservedBytes, requestedBytes: req.size },
    );
  }
  if (reservation.kind === 'decided') {
    throw new ConflictError(`Attachment ${attachmentId} was already ${reservation.status} (request ${requestId}); use a new Idempotency-Key for a new attachment.`,
      { requestId });
  }
  const expiresAt = reservation.expiresAt;
  const seconds = Math.floor((expiresAt - Date.now()) / 1000);
  if (seconds < 1) {
    throw new ConflictError(`The upload URL of attachment ${attachmentId} expired at ${new Date(expiresAt).toISOString()}; its outcome is request ${requestId}.`,
      { requestId });
  }
  if (reservation.kind === 'reserved') {
    const grace = s.expiryGraceSeconds;
    const job: ExpiryJob = {
      type: 'expire', tenant: who.tenant, principal: who.principal, collection: params.collection, id: params.id, attachmentId, name: req.name,
      expiresAt: new Date(expiresAt).toISOString(), dueAt: new Date(expiresAt + grace * 1000).toISOString(),
    };
    try {
      await s.scheduleExpiry(job, Math.min(MAX_EXPIRY_DELAY_S, Math.ceil((expiresAt - Date.now()) / 1000) + grace));
    } catch (err) {
      // Without its expiry check an upload URL could leave the attachment undecided (and its bytes reserved) forever: hand none out.
      await s.quota.release(attachmentId).catch(() => undefined);
      throw new ServiceUnavailableError(`The work queue is unavailable (${(err as Error).message}); nothing was created.`, 1);
    }
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
