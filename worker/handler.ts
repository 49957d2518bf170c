/**
 * The attachment worker (issue #16): one SQS batch handler, the same for the Lambda (SQS event
 * source with ReportBatchItemFailures) and the local runner (worker/main.ts). A message is
 *  - an S3 event notification (ObjectCreated under `uploads/`): check the upload, keep it under
 *    `objects/` (+ a thumbnail for images), put an `attach` command on the stream (committed or
 *    rejected by the processors, acked like any write of the item), then delete the upload;
 *  - an expiry check (scheduled by the POST, due when the upload URL has expired plus a grace
 *    period): if the attachment is still undecided, process its upload if it is there, else put
 *    `rejected` / `upload_expired` on the stream; once it is decided, settle its bytes. It is the
 *    one step every attachment passes, so it is where nothing may leak: a rejected attachment's
 *    object and thumbnail are deleted (whatever rejected it: the worker's checks, the item deleted
 *    meanwhile, the expiry), as is any upload left under `uploads/`;
 *  - a purge job (after a DELETE of an item or an attachment): remove the bytes the item's current
 *    document no longer lists, once the delete is decided.
 * A message that fails is reported as a batch item failure: SQS retries it, and after the queue's
 * maxReceiveCount moves it to the work queue's DLQ, without holding the others back.
 *
 * Idempotent: the command's request id derives from the attachment id, so a worker killed at any
 * point and run again on the same upload puts the same request, which the processors commit once;
 * and an upload landing late races the expiry check harmlessly: both put the same request id on the
 * item's shard, the first one decides, the other is a redelivery with the same outcome, and the
 * bytes follow the decision (a late object of an expired attachment is deleted).
 */
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { z } from 'zod';
import {
  type AttachmentMeta, attachRequestId, type ExpiryJob, ExpiryJobSchema, ObjectKeys, parseUploadKey, type UploadKey,
} from '../core/attachments';
import { type Command, type ItemDocument, type RequestStatus } from '../core/contracts';
import type { Logger } from '../core/log';
import { mapLimit } from '../core/map-limit';
import type { ObjectStore } from '../core/object-store';
import { declaredOf, inspect, precheck, type Sniffer, type Thumbnailer } from './inspect';

/** Puts one command on the stream (partition key = the item). */
export type PutCommand = (cmd: Command) => Promise<void>;

/** The read model's durable copy, as the purge needs it. */
export interface ReadModelLookup {
  getItem(tenant: string, collection: string, id: string): Promise<{ json: string | null } | undefined>;
  getRequest(tenant: string, requestId: string): Promise<string | undefined>;
}

export interface WorkerDeps {
  store: ObjectStore;
  put: PutCommand;
  readModel: ReadModelLookup;
  sniff: Sniffer;
  thumbnail: Thumbnailer;
  maxBytes: number;
  log: Logger;
  /** Messages of a batch handled at once (default 1). */
  concurrency?: number;
  /** How long an expiry check that put `upload_expired` waits for the decision before leaving it to its retry (default 2 s). */
  decisionWaitMs?: number;
  /** Test hook: called between the worker's steps (a test kills the process at one). */
  step?: (name: 'inspected' | 'kept' | 'queued', key: string) => Promise<void> | void;
}

/** A purge job, as the gateway sends it after a DELETE was queued. */
export const PurgeJobSchema = z.object({
  type: z.literal('purge'),
  tenant: z.string(),
  collection: z.string(),
  id: z.string(),
  attachmentId: z.string().optional(),
  /** The DELETE's request: nothing is removed until it is decided. */
  requestId: z.string(),
});
export type PurgeJob = z.infer<typeof PurgeJobSchema>;

const S3EventSchema = z.object({
  Records: z.array(z.object({
    eventName: z.string(),
    s3: z.object({ bucket: z.object({ name: z.string() }), object: z.object({ key: z.string(), size: z.number().optional(), eTag: z.string().optional() }) }),
  })),
});

/** The decision is not there yet: retry the message later. */
export class NotYetDecidedError extends Error {}

export function createAttachmentWorker(deps: WorkerDeps) {
  async function handleMessage(body: string): Promise<void> {
    const msg: unknown = JSON.parse(body);
    if ((msg as { Event?: string })?.Event === 's3:TestEvent') return; // sent once when a notification is configured
    const purge = PurgeJobSchema.safeParse(msg);
    if (purge.success) return purgeBytes(purge.data);
    const expiry = ExpiryJobSchema.safeParse(msg);
    if (expiry.success) return expire(expiry.data);
    const event = S3EventSchema.parse(msg);
    for (const r of event.Records) {
      if (!r.eventName.startsWith('ObjectCreated:')) continue;
      // S3 URL-encodes keys in notifications (spaces as '+').
      const key = decodeURIComponent(r.s3.object.key.replace(/\+/g, ' '));
      const upload = parseUploadKey(key);
      if (!upload) continue; // objects/ and thumbnails/ are the worker's own writes
      await processUpload(key, upload);
    }
  }

  /** The attachment's outcome as the read model has it (decided by the processors; undefined: not yet). */
  async function decisionOf(u: UploadKey): Promise<'committed' | 'rejected' | undefined> {
    const status = await deps.readModel.getRequest(u.tenant, attachRequestId(u.attachmentId));
    const decided = status ? (JSON.parse(status) as RequestStatus).status : undefined;
    return decided === 'committed' || decided === 'rejected' ? decided : undefined;
  }

  /**
   * The bytes a decided attachment no longer needs: all of a rejected one (object, thumbnail, upload:
   * a request id is decided once, so a rejected attachment can never be committed later), and the
   * leftover upload of a committed one (a second PUT through its URL; the kept object stays).
   */
  async function settle(u: UploadKey, decided: 'committed' | 'rejected'): Promise<void> {
    const keys = [ObjectKeys.upload(u.tenant, u.collection, u.id, u.attachmentId)];
    if (decided === 'rejected') {
      keys.push(ObjectKeys.object(u.tenant, u.collection, u.id, u.attachmentId), ObjectKeys.thumbnail(u.tenant, u.collection, u.id, u.attachmentId));
    }
    await deps.store.delete(keys);
  }

  async function processUpload(key: string, u: UploadKey): Promise<void> {
    const before = await decisionOf(u);
    if (before) {
      // Decided already (expired, or a second PUT through the URL): nothing to check, only bytes to drop.
      await settle(u, before);
      deps.log.info('upload of a decided attachment removed', { key, decided: before });
      return;
    }
    const head = await deps.store.head(key);
    if (!head) return; // done before (the upload is deleted last), or removed
    const declared = declaredOf(head.metadata);
    if (!declared) {
      // Not put through a URL the gateway signed (the signature covers this metadata): nobody to answer.
      deps.log.warn('upload without signed metadata removed', { key });
      await deps.store.delete([key]);
      return;
    }
    const base = {
      v: 1 as const, requestId: attachRequestId(u.attachmentId), kind: 'attach' as const, tenant: u.tenant, principal: declared.principal,
      collection: u.collection, id: u.id, receivedAt: (head.lastModified ?? new Date()).toISOString(),
    };
    let verdict = precheck(declared, { size: head.size, landedAt: head.lastModified?.getTime() ?? Date.now() }, deps.maxBytes);
    let bytes: Buffer | undefined;
    if (!verdict) {
      bytes = await deps.store.get(key, head.etag);
      if (!bytes) return; // replaced or removed since the HEAD: its own notification follows
      verdict = await inspect(u.attachmentId, declared, bytes, deps.sniff, deps.thumbnail);
    }
    await deps.step?.('inspected', key);
    let cmd: Command;
    if (verdict.ok) {
      // Kept under objects/ before the command: a committed attachment's bytes are always there,
      // and can no longer be replaced through the upload URL.
      // An object already kept (a run killed after this step, or a second upload through the same
      // URL) is never replaced: its request id was decided on those bytes.
      const objectKey = ObjectKeys.object(u.tenant, u.collection, u.id, u.attachmentId);
      if (!(await deps.store.head(objectKey))) {
        if (verdict.thumbnail) await deps.store.put(ObjectKeys.thumbnail(u.tenant, u.collection, u.id, u.attachmentId), verdict.thumbnail, 'image/webp');
        await deps.store.copy(key, objectKey, head.etag);
      }
      await deps.step?.('kept', key);
      cmd = { ...base, data: verdict.meta as AttachmentMeta & Record<string, unknown> };
    } else {
      // A refused upload is never kept: only the upload itself is there to delete.
      cmd = { ...base, data: { attachmentId: u.attachmentId, name: declared.name }, reject: { code: verdict.code, message: verdict.message } };
    }
    await deps.put(cmd);
    await deps.step?.('queued', key);
    deps.log.info('attachment checked', { key, requestId: cmd.requestId, outcome: verdict.ok ? 'accepted' : verdict.code });
    await deps.store.delete([key]);
    if (verdict.ok) {
      // The attachment may have been decided while it was checked (rejected by the expiry check, whose
      // settling then ran before the bytes were kept): settle now. Undecided, the expiry check settles it.
      const after = await decisionOf(u);
      if (after === 'rejected') await settle(u, after);
    }
  }

  /** An upload URL's expiry check (core/attachments.ts ExpiryJob): completes only once the attachment is decided. */
  async function expire(job: ExpiryJob): Promise<void> {
    if (Date.now() < Date.parse(job.dueAt) - 1000) throw new NotYetDecidedError(`the expiry check of ${job.attachmentId} is not due before ${job.dueAt}`);
    const u: UploadKey = { tenant: job.tenant, collection: job.collection, id: job.id, attachmentId: job.attachmentId };
    const decided = await decisionOf(u);
    if (decided) {
      await settle(u, decided);
      return;
    }
    const key = ObjectKeys.upload(u.tenant, u.collection, u.id, u.attachmentId);
    if (await deps.store.head(key)) {
      // It landed but was not handled yet (its notification is late, failing, or lost): handle it here.
      await processUpload(key, u);
    } else if (!(await deps.store.head(ObjectKeys.object(u.tenant, u.collection, u.id, u.attachmentId)))) {
      // Nothing landed (an upload kept under objects/ has its command on the stream already).
      await deps.put({
        v: 1, requestId: attachRequestId(u.attachmentId), kind: 'attach', tenant: u.tenant, principal: job.principal,
        collection: u.collection, id: u.id, receivedAt: new Date().toISOString(), data: { attachmentId: u.attachmentId, name: job.name },
        reject: { code: 'upload_expired', message: `No upload arrived before the upload URL expired at ${job.expiresAt}.` },
      });
      deps.log.info('upload expired', { tenant: u.tenant, collection: u.collection, id: u.id, attachmentId: u.attachmentId });
    }
    const after = await awaitDecision(u, deps.decisionWaitMs ?? 2000);
    if (!after) throw new NotYetDecidedError(`attachment ${u.attachmentId} is not decided yet`);
    await settle(u, after);
  }

  async function awaitDecision(u: UploadKey, ms: number): Promise<'committed' | 'rejected' | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      const d = await decisionOf(u);
      if (d || Date.now() >= deadline) return d;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async function purgeBytes(job: PurgeJob): Promise<void> {
    const status = await deps.readModel.getRequest(job.tenant, job.requestId);
    const decided = status ? (JSON.parse(status) as RequestStatus).status : undefined;
    if (decided === 'rejected') return;
    if (decided !== 'committed') throw new NotYetDecidedError(`request ${job.requestId} is not decided yet`);
    // Only bytes the item's current document does not list: a re-created item's new attachments stay.
    const item = await deps.readModel.getItem(job.tenant, job.collection, job.id);
    const doc = item?.json ? (JSON.parse(item.json) as ItemDocument) : undefined;
    const listed = new Set((doc?.attachments ?? []).map((a) => String(a.attachmentId)));
    const keys: string[] = [];
    for (const prefix of ObjectKeys.itemPrefixes(job.tenant, job.collection, job.id).filter((p) => !p.startsWith('uploads/'))) {
      for (const o of await deps.store.list(prefix)) {
        const attachmentId = o.key.slice(prefix.length).replace(/\.webp$/, '');
        if (job.attachmentId && attachmentId !== job.attachmentId) continue;
        if (!listed.has(attachmentId)) keys.push(o.key);
      }
    }
    await deps.store.delete(keys);
    deps.log.info('attachment bytes removed', { tenant: job.tenant, collection: job.collection, id: job.id, objects: keys.length });
  }

  return {
    handleMessage,
    /** Lambda's SQS contract with ReportBatchItemFailures: the failed messages' ids, the rest are deleted. */
    async handle(event: SQSEvent): Promise<SQSBatchResponse> {
      const failures: SQSBatchResponse['batchItemFailures'] = [];
      // The messages of a batch at once (up to `concurrency`): each one is mostly waiting on S3,
      // DynamoDB and Kinesis, and one at a time the worker was the pipeline's bottleneck (PERFORMANCE.md).
      // Safe: messages of the same attachment (its landing and its expiry check) race harmlessly.
      await mapLimit(event.Records, deps.concurrency ?? 1, async (record) => {
        try {
          await handleMessage(record.body);
        } catch (err) {
          (err instanceof NotYetDecidedError ? deps.log.debug : deps.log.warn)('work item failed', { messageId: record.messageId, err });
          failures.push({ itemIdentifier: record.messageId });
        }
      });
      return { batchItemFailures: failures };
    },
  };
}
