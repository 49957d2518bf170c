/**
 * Attachments (issue #16) against the emulators: the upload URL, the bytes straight to the object
 * store (fauxqs), the local notification bridge, the worker process, the processors, the read
 * model and the acks.
 */
import { createHash } from 'node:crypto';
import { ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import sharpImport from 'sharp';
import { createClient } from '../client';
import { ObjectKeys } from '../core/attachments';
import { verifyAttachments } from '../processors/replay/verify-attachments';
import { request } from './helpers/http';
import { type AttachmentStack, startAttachmentStack } from './helpers/attachments';
import { TestSocket } from './helpers/ws-client';

// sharp is CommonJS: under ts-jest the default import is the function itself.
const sharp = ((sharpImport as unknown as { default?: typeof sharpImport }).default ?? sharpImport);

const MAX = 64 * 1024;
/** Per-tenant quota of the test stack: 8 objects of the largest size. */
const QUOTA = 8 * MAX;
/** Short upload windows (URL lifetime + grace), so expiry checks run within the tests. */
const URL_S = 5;
const GRACE_S = 1;
let stack: AttachmentStack;
let token: string;
let otherToken: string;
let socket: TestSocket;
let png: Buffer;

beforeAll(async () => {
  stack = await startAttachmentStack('attachments', { maxBytes: MAX, quotaBytes: QUOTA, uploadUrlSeconds: URL_S, graceSeconds: GRACE_S });
  await stack.startWorker();
  token = await stack.token({ tenant: 'acme', sub: 'alice' });
  otherToken = await stack.token({ tenant: 'globex', sub: 'mallory' });
  socket = await TestSocket.open(`${stack.ackUrl}/v1/acks`, { Authorization: `Bearer ${token}` });
  png = await sharp({ create: { width: 640, height: 480, channels: 3, background: '#336699' } }).png().toBuffer();
}, 60_000);

afterAll(async () => {
  await socket?.close();
  await stack?.close();
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const itemPath = (id: string) => `/v1/collections/docs/items/${id}`;

async function createItem(id: string, t = token, s = socket): Promise<void> {
  const res = await request(`${stack.gatewayUrl}${itemPath(id)}`, { method: 'PUT', token: t, json: { title: id } });
  expect(res.status).toBe(202);
  expect((await s.finalAck(res.body.requestId)).stage).toBe('committed');
}

/** Every key an attachment could have in the store (upload, kept object, thumbnail). */
async function bytesOf(tenant: string, id: string, attachmentId: string): Promise<string[]> {
  const keys = [ObjectKeys.upload(tenant, 'docs', id, attachmentId), ObjectKeys.object(tenant, 'docs', id, attachmentId),
    ObjectKeys.thumbnail(tenant, 'docs', id, attachmentId)];
  const found: string[] = [];
  for (const k of keys) if (await stack.store.head(k)) found.push(k);
  return found;
}

async function usage(tenant: string): Promise<{ committed: number; reserved: number }> {
  const r = await stack.pg.query(
    `SELECT (SELECT coalesce(sum(committed_bytes), 0) FROM attachment_usage WHERE tenant = $1) AS committed,
            (SELECT coalesce(sum(bytes), 0) FROM attachment_reservations WHERE tenant = $1) AS reserved`, [tenant]);
  return { committed: Number(r.rows[0].committed), reserved: Number(r.rows[0].reserved) };
}

/** A PDF the worker recognises (file-type reads the magic number), padded to `size` bytes. */
function pdfOf(size: number): Buffer {
  const head = Buffer.from('%PDF-1.4\n1 0 obj<<>>endobj\n');
  const tail = Buffer.from('\ntrailer<<>>\n%%EOF\n');
  return Buffer.concat([head, Buffer.alloc(size - head.length - tail.length, 0x20), tail]);
}

async function newUpload(id: string, body: Record<string, unknown>, t = token) {
  return request(`${stack.gatewayUrl}${itemPath(id)}/attachments`, { method: 'POST', token: t, json: body });
}

async function upload(url: string, headers: Record<string, string>, bytes: Buffer) {
  const res = await fetch(url, { method: 'PUT', headers, body: new Uint8Array(bytes) });
  expect(res.status).toBe(200);
}

async function readItem(id: string, t = token) {
  return request(`${stack.readUrl}${itemPath(id)}`, { token: t });
}

describe('upload → committed', () => {
  test('a PNG is checked, kept with a thumbnail, committed as version + 1 and listed on the item', async () => {
    await createItem('a1');
    const created = await newUpload('a1', { name: 'photo 1.png', contentType: 'image/png', size: png.length, sha256: sha(png) });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      attachmentId: expect.stringMatching(/^[a-f0-9]{32}$/),
      requestId: `att-${created.body.attachmentId}`,
      upload: { url: expect.stringContaining(`/${stack.bucket}/uploads/acme/docs/a1/`), method: 'PUT', headers: expect.any(Object), expiresAt: expect.any(String) },
    });
    expect(created.body.upload.headers['Content-Type']).toBe('image/png');
    await upload(created.body.upload.url, created.body.upload.headers, png);

    const ack = await socket.finalAck(created.body.requestId, 20_000);
    expect(ack).toMatchObject({ stage: 'committed', collection: 'docs', id: 'a1', version: 2 });

    const doc = await readItem('a1');
    expect(doc.status).toBe(200);
    expect(doc.body.data).toEqual({ title: 'a1' });
    expect(doc.body.attachments).toEqual([{
      attachmentId: created.body.attachmentId, name: 'photo 1.png', contentType: 'image/png', size: png.length, sha256: sha(png),
      version: 2, addedAt: expect.any(String), thumbnail: { contentType: 'image/webp', width: 256, height: 192, size: expect.any(Number) },
    }]);

    const get = await fetch(`${stack.gatewayUrl}${itemPath('a1')}/attachments/${created.body.attachmentId}`, {
      headers: { authorization: `Bearer ${token}` }, redirect: 'manual',
    });
    expect(get.status).toBe(302);
    const bytes = Buffer.from(await (await fetch(get.headers.get('location')!)).arrayBuffer());
    expect(sha(bytes)).toBe(sha(png));
    const thumb = await fetch(`${stack.gatewayUrl}${itemPath('a1')}/attachments/${created.body.attachmentId}?thumbnail`, {
      headers: { authorization: `Bearer ${token}` }, redirect: 'manual',
    });
    expect(thumb.status).toBe(302);
    const webp = Buffer.from(await (await fetch(thumb.headers.get('location')!)).arrayBuffer());
    expect((await sharp(webp).metadata()).format).toBe('webp');
    // The upload itself is gone once handled; the checked bytes stay under objects/.
    expect(await stack.store.list(`uploads/acme/docs/a1/`)).toEqual([]);
  });

  test('a PUT after the attachment keeps it; a PUT body may not carry the reserved key', async () => {
    const put = await request(`${stack.gatewayUrl}${itemPath('a1')}`, { method: 'PUT', token, json: { title: 'renamed' } });
    expect((await socket.finalAck(put.body.requestId)).stage).toBe('committed');
    const doc = await readItem('a1');
    expect(doc.body).toMatchObject({ version: 3, data: { title: 'renamed' }, attachments: [expect.objectContaining({ name: 'photo 1.png' })] });
    const bad = await request(`${stack.gatewayUrl}${itemPath('a1')}`, { method: 'PUT', token, json: { '@attachments': [] } });
    expect(bad.status).toBe(400);
    expect(bad.headers.get('content-type')).toContain('application/problem+json');
  });
});

describe('bad requests create nothing', () => {
  test.each([
    [{ name: 'x.exe', contentType: 'application/x-msdownload', size: 10 }, 400, /contentType/],
    [{ name: '../etc/passwd', contentType: 'image/png', size: 10 }, 400, /name/],
    [{ name: 'a.png', contentType: 'image/png', size: 0 }, 400, /size/],
    [{ name: 'a.png', contentType: 'image/png', size: 10, sha256: 'nothex' }, 400, /sha256/],
    [{ name: 'a.png', contentType: 'image/png', size: 10, extra: 1 }, 400, /extra|Unrecognized/i],
    [{ name: 'a.png', contentType: 'image/png', size: MAX + 1 }, 413, /limit/],
  ])('%j → %i', async (body, status, detail) => {
    const res = await newUpload('a1', body);
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(res.body.detail).toMatch(detail);
  });

  test('an item that does not exist → 404', async () => {
    const res = await newUpload('nope', { name: 'a.png', contentType: 'image/png', size: 10 });
    expect(res.status).toBe(404);
  });

});

describe('the per-tenant quota of stored bytes (committed + pending uploads)', () => {
  let quotaToken: string;
  let quotaSocket: TestSocket;
  beforeAll(async () => {
    quotaToken = await stack.token({ tenant: 'quota-co', sub: 'qa' });
    quotaSocket = await TestSocket.open(`${stack.ackUrl}/v1/acks`, { Authorization: `Bearer ${quotaToken}` });
  });
  afterAll(async () => quotaSocket?.close());

  test('parallel POSTs beyond the quota → 409 attachment-quota-exceeded for the excess, nothing created for them', async () => {
    await createItem('q1', quotaToken, quotaSocket);
    const answers = await Promise.all(Array.from({ length: 12 }, () => newUpload('q1', { name: 'big.pdf', contentType: 'application/pdf', size: MAX }, quotaToken)));
    const created = answers.filter((a) => a.status === 201);
    const refused = answers.filter((a) => a.status !== 201);
    expect(created).toHaveLength(QUOTA / MAX);
    expect(refused.map((a) => a.status)).toEqual(Array(12 - QUOTA / MAX).fill(409));
    expect(refused[0]!.headers.get('content-type')).toContain('application/problem+json');
    expect(refused[0]!.body).toMatchObject({
      type: 'urn:ackstream:problem:attachment-quota-exceeded', status: 409, quotaBytes: QUOTA, committedBytes: 0, reservedBytes: QUOTA, requestedBytes: MAX,
      detail: expect.stringMatching(/quota of 524288 bytes/),
    });
    expect(await usage('quota-co')).toEqual({ committed: 0, reserved: QUOTA });
    // The reservations are released when their attachments are decided: here, as expired.
    for (const a of created) expect(await quotaSocket.finalAck(a.body.requestId, 30_000)).toMatchObject({ stage: 'rejected', reason: { code: 'upload_expired' } });
    expect(await usage('quota-co')).toEqual({ committed: 0, reserved: 0 });
  }, 60_000);

  test('committed bytes count (PostgreSQL, in the commit transaction); a detach and the item\'s delete free them', async () => {
    await createItem('q2', quotaToken, quotaSocket);
    const ids: string[] = [];
    for (const size of [MAX, MAX / 2]) {
      const res = await newUpload('q2', { name: 'doc.pdf', contentType: 'application/pdf', size }, quotaToken);
      await upload(res.body.upload.url, res.body.upload.headers, pdfOf(size));
      expect(await quotaSocket.finalAck(res.body.requestId, 20_000)).toMatchObject({ stage: 'committed' });
      ids.push(res.body.attachmentId);
    }
    expect(await usage('quota-co')).toEqual({ committed: MAX + MAX / 2, reserved: 0 });
    // The rest of the quota as pending uploads (each within the per-object limit).
    const rest = QUOTA - MAX - MAX / 2;
    const pending = [...Array(Math.floor(rest / MAX)).fill(MAX), rest % MAX];
    for (const size of pending) {
      expect((await newUpload('q2', { name: 'rest.pdf', contentType: 'application/pdf', size }, quotaToken)).status).toBe(201);
    }
    const over = await newUpload('q2', { name: 'one.pdf', contentType: 'application/pdf', size: 1 }, quotaToken);
    expect(over.status).toBe(409);
    expect(over.body).toMatchObject({ committedBytes: MAX + MAX / 2, reservedBytes: rest, requestedBytes: 1 });

    const detach = await request(`${stack.gatewayUrl}${itemPath('q2')}/attachments/${ids[0]}`, { method: 'DELETE', token: quotaToken });
    expect(await quotaSocket.finalAck(detach.body.requestId)).toMatchObject({ stage: 'committed' });
    expect((await usage('quota-co')).committed).toBe(MAX / 2);
    expect((await newUpload('q2', { name: 'now.pdf', contentType: 'application/pdf', size: MAX }, quotaToken)).status).toBe(201);

    const del = await request(`${stack.gatewayUrl}${itemPath('q2')}`, { method: 'DELETE', token: quotaToken });
    expect(await quotaSocket.finalAck(del.body.requestId)).toMatchObject({ stage: 'committed' });
    expect((await usage('quota-co')).committed).toBe(0);
  }, 60_000);
});

describe('the worker refuses bad uploads with a reason; nothing is projected', () => {
  beforeAll(async () => createItem('r1'));

  async function expectRejected(requestId: string, code: string) {
    const ack = await socket.finalAck(requestId, 20_000);
    expect(ack).toMatchObject({ stage: 'rejected', reason: { code } });
    const doc = await readItem('r1');
    expect(doc.body.attachments).toBeUndefined();
    expect(doc.body.version).toBe(1);
    // No orphaned bytes: neither the upload, nor a kept object, nor a thumbnail.
    const attachmentId = requestId.replace(/^att-/, '');
    await eventually(async () => expect(await bytesOf('acme', 'r1', attachmentId)).toEqual([]));
  }

  test('wrong sha256', async () => {
    const res = await newUpload('r1', { name: 'a.png', contentType: 'image/png', size: png.length, sha256: sha(Buffer.from('other')) });
    await upload(res.body.upload.url, res.body.upload.headers, png);
    await expectRejected(res.body.requestId, 'attachment_sha256_mismatch');
    expect(await stack.store.list('objects/acme/docs/r1/')).toEqual([]);
  });

  test('wrong type: PDF bytes declared as PNG', async () => {
    const pdf = Buffer.from('%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n');
    const res = await newUpload('r1', { name: 'a.png', contentType: 'image/png', size: pdf.length });
    await upload(res.body.upload.url, res.body.upload.headers, pdf);
    await expectRejected(res.body.requestId, 'attachment_type_mismatch');
  });

  test('too large (an object S3 would have refused: fauxqs does not enforce the signed Content-Length)', async () => {
    const res = await newUpload('r1', { name: 'b.pdf', contentType: 'application/pdf', size: 100 });
    const key = ObjectKeys.upload('acme', 'docs', 'r1', res.body.attachmentId);
    await stack.putRaw(key, Buffer.alloc(MAX + 1, 1), 'application/pdf', metadataOf(res.body.upload.headers));
    await expectRejected(res.body.requestId, 'attachment_too_large');
  });

  test('expired: the upload landed after its URL expired (fauxqs does not enforce presigned expiry)', async () => {
    const res = await newUpload('r1', { name: 'c.png', contentType: 'image/png', size: png.length });
    const key = ObjectKeys.upload('acme', 'docs', 'r1', res.body.attachmentId);
    await stack.putRaw(key, png, 'image/png', { ...metadataOf(res.body.upload.headers), expires: new Date(Date.now() - 1000).toISOString() });
    await expectRejected(res.body.requestId, 'upload_expired');
    expect(await stack.store.list('uploads/acme/docs/r1/')).toEqual([]);
  });
});

describe('an upload that never arrives expires', () => {
  test('rejected upload_expired over the WebSocket, in order with the item\'s writes; nothing committed, kept or reserved', async () => {
    await createItem('e1');
    const res = await newUpload('e1', { name: 'never.png', contentType: 'image/png', size: png.length });
    expect(res.status).toBe(201);
    expect(Date.parse(res.body.upload.expiresAt) - Date.now()).toBeLessThanOrEqual(URL_S * 1000);
    const put = await request(`${stack.gatewayUrl}${itemPath('e1')}`, { method: 'PATCH', token, json: { later: true },
      headers: { 'content-type': 'application/merge-patch+json' } });
    const ack = await socket.finalAck(res.body.requestId, (URL_S + GRACE_S) * 1000 + 15_000);
    expect(ack).toMatchObject({ stage: 'rejected', collection: 'docs', id: 'e1', reason: { code: 'upload_expired', message: expect.stringMatching(/expired at/) } });
    // The PATCH was queued after the POST but decided before the expiry: the acks follow the stream's order.
    const patched = await socket.finalAck(put.body.requestId);
    expect(patched).toMatchObject({ stage: 'committed', version: 2 });
    expect(Number(ack.cursor)).toBeGreaterThan(Number(patched.cursor));
    expect((await readItem('e1')).body).toMatchObject({ version: 2, data: { title: 'e1', later: true } });
    expect((await readItem('e1')).body.attachments).toBeUndefined();
    const events = await stack.pg.query('SELECT type FROM events WHERE request_id = $1', [res.body.requestId]);
    expect(events.rows).toEqual([]);
    expect(await stack.pg.query('SELECT 1 FROM attachment_reservations WHERE attachment_id = $1', [res.body.attachmentId])).toMatchObject({ rowCount: 0 });
    expect(await bytesOf('acme', 'e1', res.body.attachmentId)).toEqual([]);
  }, 40_000);

  test('a late upload after the expiry is deleted; the outcome stays upload_expired, exactly one', async () => {
    await createItem('e2');
    const res = await newUpload('e2', { name: 'late.png', contentType: 'image/png', size: png.length });
    expect(await socket.finalAck(res.body.requestId, (URL_S + GRACE_S) * 1000 + 15_000)).toMatchObject({ reason: { code: 'upload_expired' } });
    // An upload that started in time and landed after the expiry check (its signed expiry still in
    // the future from the object store's point of view): valid bytes, yet the attachment is decided.
    const key = ObjectKeys.upload('acme', 'docs', 'e2', res.body.attachmentId);
    await stack.putRaw(key, png, 'image/png', { ...metadataOf(res.body.upload.headers), expires: new Date(Date.now() + 60_000).toISOString() });
    await eventually(async () => expect(await bytesOf('acme', 'e2', res.body.attachmentId)).toEqual([]));
    await new Promise((r) => setTimeout(r, 1000));
    expect(await bytesOf('acme', 'e2', res.body.attachmentId)).toEqual([]);
    expect(socket.acks(res.body.requestId).filter((a) => a.stage !== 'queued').map((a) => a.stage)).toEqual(['rejected']);
    const decided = await stack.pg.query('SELECT status, reason FROM requests WHERE request_id = $1', [res.body.requestId]);
    expect(decided.rows).toEqual([{ status: 'rejected', reason: expect.objectContaining({ code: 'upload_expired' }) }]);
    expect((await readItem('e2')).body).toMatchObject({ version: 1 });
  }, 40_000);

  test('an upload that landed in time but was not handled before its expiry check is committed, not expired', async () => {
    await createItem('e3');
    await stack.stopWorker();
    const res = await newUpload('e3', { name: 'slow.png', contentType: 'image/png', size: png.length });
    await upload(res.body.upload.url, res.body.upload.headers, png);
    // The worker is back only after the check is due: it has the landing and the expiry check to handle.
    await new Promise((r) => setTimeout(r, (URL_S + GRACE_S) * 1000 + 500));
    await stack.startWorker();
    expect(await socket.finalAck(res.body.requestId, 20_000)).toMatchObject({ stage: 'committed', version: 2 });
    await eventually(async () => expect(await bytesOf('acme', 'e3', res.body.attachmentId)).toEqual([
      ObjectKeys.object('acme', 'docs', 'e3', res.body.attachmentId), ObjectKeys.thumbnail('acme', 'docs', 'e3', res.body.attachmentId),
    ]));
    expect(socket.acks(res.body.requestId).filter((a) => a.stage !== 'queued').map((a) => a.stage)).toEqual(['committed']);
  }, 40_000);
});

describe('no orphaned bytes', () => {
  test('an upload whose item was deleted meanwhile is rejected not_found, and its kept object and thumbnail are deleted', async () => {
    await createItem('o1');
    await stack.stopWorker();
    const res = await newUpload('o1', { name: 'gone.png', contentType: 'image/png', size: png.length });
    await upload(res.body.upload.url, res.body.upload.headers, png);
    // Deleted through the stream directly, as a DELETE whose purge job is lost would be: only the
    // attachment's own settling can remove its bytes.
    await stack.putCommand({ v: 1, requestId: 'del-o1', kind: 'delete', tenant: 'acme', principal: 'alice', collection: 'docs', id: 'o1',
      receivedAt: new Date().toISOString() });
    expect(await socket.finalAck('del-o1')).toMatchObject({ stage: 'committed' });
    await stack.startWorker();
    expect(await socket.finalAck(res.body.requestId, 20_000)).toMatchObject({ stage: 'rejected', reason: { code: 'not_found' } });
    await eventually(async () => expect(await bytesOf('acme', 'o1', res.body.attachmentId)).toEqual([]), (URL_S + GRACE_S) * 1000 + 15_000);
  }, 60_000);
});

describe('tenant isolation', () => {
  test('another tenant can get neither an upload URL, nor the object, nor the metadata', async () => {
    const doc = await readItem('a1');
    const attachmentId = doc.body.attachments[0].attachmentId as string;
    expect((await newUpload('a1', { name: 'x.png', contentType: 'image/png', size: 10 }, otherToken)).status).toBe(404);
    const get = await fetch(`${stack.gatewayUrl}${itemPath('a1')}/attachments/${attachmentId}`, {
      headers: { authorization: `Bearer ${otherToken}` }, redirect: 'manual',
    });
    expect(get.status).toBe(404);
    expect((await readItem('a1', otherToken)).status).toBe(404);
    const del = await request(`${stack.gatewayUrl}${itemPath('a1')}/attachments/${attachmentId}`, { method: 'DELETE', token: otherToken });
    expect(del.status).toBe(202); // queued like any write, and decided under the caller's tenant:
    const otherSocket = await TestSocket.open(`${stack.ackUrl}/v1/acks`, { Authorization: `Bearer ${otherToken}` });
    try {
      expect((await otherSocket.finalAck(del.body.requestId)).reason).toMatchObject({ code: 'not_found' });
    } finally {
      await otherSocket.close();
    }
    expect((await readItem('a1')).body.attachments).toHaveLength(1);
  });
});

describe('the worker', () => {
  test('killed mid-object and restarted: the upload is processed once', async () => {
    await createItem('k1');
    for (const exitAt of ['kept', 'queued'] as const) {
      await stack.stopWorker();
      const dying = await stack.startWorker({ exitAt });
      const exited = new Promise((resolve) => dying.once('exit', (_c, signal) => resolve(signal)));
      const res = await newUpload('k1', { name: `${exitAt}.png`, contentType: 'image/png', size: png.length });
      await upload(res.body.upload.url, res.body.upload.headers, png);
      expect(await exited).toBe('SIGKILL');
      await stack.startWorker();
      expect(await socket.finalAck(res.body.requestId, 20_000)).toMatchObject({ stage: 'committed' });
    }
    const events = await stack.pg.query(
      "SELECT type, version FROM events WHERE tenant = 'acme' AND collection = 'docs' AND item_id = 'k1' ORDER BY version",
    );
    expect(events.rows).toEqual([
      { type: 'ItemPut', version: 1 }, { type: 'AttachmentAdded', version: 2 }, { type: 'AttachmentAdded', version: 3 },
    ]);
    expect((await readItem('k1')).body.attachments.map((a: { name: string }) => a.name)).toEqual(['kept.png', 'queued.png']);
  }, 60_000);

  test('a poison message goes to the DLQ and does not hold the queue back', async () => {
    await stack.sqs.send(new SendMessageCommand({ QueueUrl: stack.workQueueUrl, MessageBody: '{"Records": "not an S3 event"' }));
    await createItem('p1');
    const res = await newUpload('p1', { name: 'ok.png', contentType: 'image/png', size: png.length });
    await upload(res.body.upload.url, res.body.upload.headers, png);
    expect(await socket.finalAck(res.body.requestId, 20_000)).toMatchObject({ stage: 'committed' });
    const deadline = Date.now() + 20_000;
    let body: string | undefined;
    while (!body && Date.now() < deadline) {
      const got = await stack.sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.workDlqUrl, WaitTimeSeconds: 1 }));
      body = got.Messages?.[0]?.Body;
    }
    expect(body).toBe('{"Records": "not an S3 event"');
  }, 60_000);
});

describe('verify', () => {
  test('every committed attachment has its object; a lost object is reported', async () => {
    const clean = await verifyAttachments(stack.pg, stack.store);
    expect(clean).toMatchObject({ ok: true, missing: [] });
    expect(clean.checked).toBeGreaterThan(0);
    const doc = await readItem('a1');
    const key = ObjectKeys.object('acme', 'docs', 'a1', doc.body.attachments[0].attachmentId);
    const bytes = (await stack.store.get(key))!;
    await stack.store.delete([key]);
    try {
      expect(await verifyAttachments(stack.pg, stack.store)).toMatchObject({
        ok: false, missing: [{ key, attachmentId: doc.body.attachments[0].attachmentId, problem: 'missing' }],
      });
    } finally {
      await stack.store.put(key, bytes, 'image/png');
    }
  });
});

describe('the client SDK', () => {
  test('attach() uploads and resolves committed; a wrong sha256 rejects with the reason; removeAttachment() commits', async () => {
    await createItem('c1');
    const client = createClient({ gatewayUrl: stack.gatewayUrl, readUrl: stack.readUrl, ackUrl: stack.ackUrl, token });
    try {
      const ok = await client.attach('docs', 'c1', { name: 'sdk.png', contentType: 'image/png', bytes: new Uint8Array(png), sha256: sha(png) });
      expect(await ok.committed).toMatchObject({ requestId: ok.requestId, version: 2 });
      const bad = await client.attach('docs', 'c1', { name: 'bad.png', contentType: 'image/png', bytes: new Uint8Array(png), sha256: sha(Buffer.from('x')) });
      await expect(bad.committed).rejects.toMatchObject({ reason: { code: 'attachment_sha256_mismatch' } });
      const removed = await client.removeAttachment('docs', 'c1', ok.attachmentId);
      expect(await removed.committed).toMatchObject({ version: 3 });
    } finally {
      client.close();
    }
  }, 30_000);
});

describe('deletes remove the bytes, the log keeps the history', () => {
  test('DELETE of an attachment, then of the item', async () => {
    await createItem('d1');
    const ids: string[] = [];
    for (const name of ['one.png', 'two.png']) {
      const res = await newUpload('d1', { name, contentType: 'image/png', size: png.length });
      await upload(res.body.upload.url, res.body.upload.headers, png);
      expect(await socket.finalAck(res.body.requestId, 20_000)).toMatchObject({ stage: 'committed' });
      ids.push(res.body.attachmentId);
    }
    const keysOf = async () => [
      ...(await stack.store.list('objects/acme/docs/d1/')), ...(await stack.store.list('thumbnails/acme/docs/d1/')),
    ].map((o) => o.key).sort();
    expect(await keysOf()).toHaveLength(4);

    const detach = await request(`${stack.gatewayUrl}${itemPath('d1')}/attachments/${ids[0]}`, { method: 'DELETE', token });
    expect(detach.status).toBe(202);
    expect(await socket.finalAck(detach.body.requestId)).toMatchObject({ stage: 'committed', version: 4 });
    expect((await readItem('d1')).body.attachments.map((a: { attachmentId: string }) => a.attachmentId)).toEqual([ids[1]]);
    await eventually(async () => expect(await keysOf()).toEqual([
      ObjectKeys.object('acme', 'docs', 'd1', ids[1]!), ObjectKeys.thumbnail('acme', 'docs', 'd1', ids[1]!),
    ].sort()));

    const del = await request(`${stack.gatewayUrl}${itemPath('d1')}`, { method: 'DELETE', token });
    expect(await socket.finalAck(del.body.requestId)).toMatchObject({ stage: 'committed' });
    await eventually(async () => expect(await keysOf()).toEqual([]));
    const events = await stack.pg.query("SELECT type FROM events WHERE tenant = 'acme' AND item_id = 'd1' ORDER BY version");
    expect(events.rows.map((r) => r.type)).toEqual(['ItemPut', 'AttachmentAdded', 'AttachmentAdded', 'AttachmentRemoved', 'ItemDeleted']);
  }, 60_000);
});

function metadataOf(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([k]) => k.startsWith('x-amz-meta-')).map(([k, v]) => [k.slice('x-amz-meta-'.length), v]));
}

async function eventually(check: () => Promise<void>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
