/**
 * Verify, attachments part (issue #16): every attachment the write side holds as committed must
 * have its bytes in the object store (objects/…, with the committed size). Reports the ones that
 * do not; bytes without metadata (orphans) are not errors here, a purge removes them.
 */
import type { Pool } from 'pg';
import { ATTACHMENTS_STATE_KEY, type AttachmentMeta, ObjectKeys } from '../../core/attachments';
import { mapLimit } from '../../core/map-limit';
import type { ObjectStore } from '../../core/object-store';

export interface MissingAttachment {
  key: string;
  attachmentId: string;
  problem: 'missing' | 'size_differs';
}

export interface AttachmentsReport {
  checked: number;
  missing: MissingAttachment[];
  ok: boolean;
}

export async function verifyAttachments(pool: Pool, store: ObjectStore, opts: { concurrency?: number } = {}): Promise<AttachmentsReport> {
  const rows = await pool.query<{ tenant: string; collection: string; item_id: string; list: AttachmentMeta[] }>(
    `SELECT tenant, collection, item_id, data -> $1 AS list FROM items WHERE NOT deleted AND data ? $1`,
    [ATTACHMENTS_STATE_KEY],
  );
  const all = rows.rows.flatMap((r) => (Array.isArray(r.list) ? r.list : []).map((a) => ({ r, a })));
  const missing: MissingAttachment[] = [];
  await mapLimit(all, opts.concurrency ?? 16, async ({ r, a }) => {
    const key = ObjectKeys.object(r.tenant, r.collection, r.item_id, a.attachmentId);
    const head = await store.head(key);
    if (!head) missing.push({ key, attachmentId: a.attachmentId, problem: 'missing' });
    else if (head.size !== a.size) missing.push({ key, attachmentId: a.attachmentId, problem: 'size_differs' });
  });
  return { checked: all.length, missing, ok: missing.length === 0 };
}
