/**
 * The attachment quota's bookkeeping in the commit transaction (processors/command-store/pg/event-log.ts):
 * what each decision changes in a tenant's committed bytes, and which reservations it releases.
 */
import { ATTACHMENTS_STATE_KEY } from '../../core/attachments';
import type { Command, JsonObject } from '../../core/contracts';
import { attachmentBytes, QuotaChanges } from '../../processors/command-store/pg/event-log';

const withAttachments = (...sizes: number[]) => ({
  deleted: false,
  data: { title: 'x', [ATTACHMENTS_STATE_KEY]: sizes.map((size, i) => ({ attachmentId: String(i).padStart(32, '0'), size })) } as JsonObject,
});
const cmd = (kind: Command['kind'], data?: JsonObject): Command => ({
  v: 1, requestId: 'r', kind, tenant: 't', principal: 'p', collection: 'c', id: 'i', receivedAt: '', ...(data ? { data } : {}),
});

test('an item\'s attachment bytes are the sum of its listed sizes; none for an absent or deleted item', () => {
  expect(attachmentBytes(withAttachments(100, 20))).toBe(120);
  expect(attachmentBytes({ deleted: false, data: { title: 'no attachments' } })).toBe(0);
  expect(attachmentBytes({ deleted: true, data: null })).toBe(0);
  expect(attachmentBytes(undefined)).toBe(0);
});

test('an attachment added counts its size; a removal or the item\'s delete frees it; a PUT keeping them changes nothing', () => {
  const q = new QuotaChanges();
  q.changed('acme', withAttachments(100), withAttachments(100, 50));
  expect(q.usage.get('acme')).toBe(50);
  q.changed('acme', withAttachments(100, 50), withAttachments(50));
  q.changed('acme', withAttachments(50), { deleted: true, data: null });
  expect(q.usage.get('acme')).toBe(-100);
  const other = new QuotaChanges();
  other.changed('acme', withAttachments(10), withAttachments(10));
  expect(other.empty).toBe(true);
});

test('every decided attach request releases its reservation, committed or rejected; other writes release none', () => {
  const q = new QuotaChanges();
  q.decided(cmd('attach', { attachmentId: 'a'.repeat(32) }));
  q.decided(cmd('put', { attachmentId: 'b'.repeat(32) }));
  q.decided(cmd('detach', { attachmentId: 'c'.repeat(32) }));
  expect([...q.released]).toEqual(['a'.repeat(32)]);
  expect(q.empty).toBe(false);
});
