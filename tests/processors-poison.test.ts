/**
 * Poison records against the real stack: a record PostgreSQL keeps refusing is parked in the
 * `parked` table and the SQS dead-letter queue (fauxqs) after MAX_ATTEMPTS, the shard moves on,
 * later writes of the same item are held behind it while other items flow, and
 * `npm run dlq -- redrive | discard` restores the item's order or drops the writes.
 */
import { createSqs } from '../core/aws';
import { SqsDeadLetterQueue } from '../processors/parking';
import { runDlq } from '../scripts/dlq';
import { command, eventsOf, eventually, finalAckOf, putOnStream, requestRow, startProcessorsWith, storedFinals } from './helpers/processors';
import { startStack, type Stack } from './helpers/stack';

let stack: Stack;
let dlq: SqsDeadLetterQueue;
const sqs = () => createSqs({ region: 'us-east-1', endpoint: stack.emulators.sqsEndpoint });

beforeAll(async () => {
  stack = await startStack('poison', { services: ['ack-service'], shardCount: 1 });
  await startProcessorsWith(stack, {}, { MAX_ATTEMPTS: '3', RETRY_DELAY_MS: '20', PROCESSORS_METRICS_PORT: '0' });
  dlq = new SqsDeadLetterQueue(sqs(), stack.env.DLQ_URL!);
});

afterAll(async () => {
  await stack?.close();
});

const output = () => {
  const lines: string[] = [];
  return { lines, line: (t: string) => lines.push(t), progress: (d: number, t: number, l: string) => lines.push(`${d}/${t} ${l}`) };
};

async function parked() {
  return (await stack.pg.query('SELECT request_id, kind, attempts, error FROM parked ORDER BY id')).rows as Array<{ request_id: string; kind: string; attempts: number; error: string }>;
}

test('a record that keeps failing is parked with its error, later writes of its item are held, other items flow, and redrive restores the order', async () => {
  // A constraint the operator deployed by mistake: PostgreSQL refuses this one write (a real data error, SQLSTATE 23514).
  await stack.pg.query(`ALTER TABLE events ADD CONSTRAINT no_boom CHECK (data->>'title' IS DISTINCT FROM 'boom')`);
  const v1 = command({ kind: 'put', id: 'p1', data: { title: 'ok' } });
  const poison = command({ kind: 'put', id: 'p1', data: { title: 'boom' } });
  const later = command({ kind: 'patch', id: 'p1', data: { extra: 1 } });
  const other = command({ kind: 'put', id: 'other', data: { title: 'fine' } });
  await putOnStream(stack, v1, poison, later, other);

  expect(await finalAckOf(stack, v1.requestId)).toMatchObject({ stage: 'committed', version: 1 });
  expect(await finalAckOf(stack, other.requestId)).toMatchObject({ stage: 'committed', version: 1 });
  const rows = await eventually('the poison and the held write to be parked', async () => {
    const r = await parked();
    return r.length === 2 && r;
  });
  expect(rows.map((r) => [r.request_id, r.kind])).toEqual([[poison.requestId, 'poison'], [later.requestId, 'held']]);
  expect(rows[0]!.attempts).toBe(3);
  expect(rows[0]!.error).toMatch(/no_boom/);
  const letters = await dlq.peek();
  expect(letters).toEqual([expect.objectContaining({ kind: 'poison', requestId: poison.requestId, attempts: 3, error: expect.stringMatching(/no_boom/) })]);

  // The shard moved on: a write after them, of another item, commits; one of the parked item is held too.
  const next = command({ kind: 'put', id: 'other', data: { title: 'next' } });
  const alsoHeld = command({ kind: 'patch', id: 'p1', data: { more: 2 } });
  await putOnStream(stack, alsoHeld, next);
  expect(await finalAckOf(stack, next.requestId)).toMatchObject({ stage: 'committed', version: 2 });
  await eventually('the third write of p1 to be held', async () => (await parked()).length === 3);
  expect((await eventsOf(stack, 'p1')).map((e) => e.request_id)).toEqual([v1.requestId]);
  expect((await storedFinals(stack)).filter((a) => [poison, later, alsoHeld].some((c) => c.requestId === a.requestId))).toEqual([]);

  const list = output();
  expect(await runDlq(['list'], stack.env, list)).toBe(0);
  expect(list.lines.join('\n')).toMatch(/3 parked record\(s\)[\s\S]*poison[\s\S]*held[\s\S]*held[\s\S]*1 letter\(s\) in the dead-letter queue/);

  // The operator fixes the cause and redrives: the writes apply in their original order.
  await stack.pg.query('ALTER TABLE events DROP CONSTRAINT no_boom');
  const out = output();
  expect(await runDlq(['redrive'], stack.env, out)).toBe(0);
  expect(out.lines).toContain('Redrive: 3 applied, 0 still parked.');
  expect(out.lines).toContain('Dead-letter queue: 1 letter(s) removed.');
  expect((await eventsOf(stack, 'p1')).map((e) => [e.request_id, e.version])).toEqual([
    [v1.requestId, 1], [poison.requestId, 2], [later.requestId, 3], [alsoHeld.requestId, 4],
  ]);
  expect(await finalAckOf(stack, alsoHeld.requestId)).toMatchObject({ stage: 'committed', version: 4 });
  expect(await parked()).toEqual([]);
  expect(await dlq.peek()).toEqual([]);
  const item = await stack.pg.query(`SELECT version, data FROM items WHERE item_id = 'p1'`);
  expect(item.rows[0]).toEqual({ version: 4, data: { title: 'boom', extra: 1, more: 2 } });

  // Replaying the parked records from the stream changes nothing now.
  await putOnStream(stack, poison, later);
  const marker = command({ kind: 'put', id: 'other', data: { title: 'marker' } });
  await putOnStream(stack, marker);
  await finalAckOf(stack, marker.requestId);
  expect(await eventsOf(stack, 'p1')).toHaveLength(4);
});

test('discard drops a parked record and the writes held behind it with item_parked', async () => {
  // A record PostgreSQL can never store is rejected (invalid_document, tests/hostile-json.test.ts);
  // parking is for what an operator can fix: here a CHECK constraint deployed by mistake (23514).
  await stack.pg.query(`ALTER TABLE events ADD CONSTRAINT no_nope CHECK (data->>'text' IS DISTINCT FROM 'nope')`);
  const poison = command({ kind: 'put', id: 'nul', data: { text: 'nope' } });
  const held = command({ kind: 'put', id: 'nul', data: { text: 'fine' } });
  const other = command({ kind: 'put', id: 'flows', data: {} });
  await putOnStream(stack, poison, held, other);
  expect(await finalAckOf(stack, other.requestId)).toMatchObject({ stage: 'committed' });
  await eventually('both writes of nul to be parked', async () => (await parked()).length === 2);
  await stack.pg.query('ALTER TABLE events DROP CONSTRAINT no_nope');

  const out = output();
  expect(await runDlq(['discard'], stack.env, out)).toBe(0);
  expect(out.lines).toContain('Discard: 2 parked write(s) dropped; each was acked rejected (item_parked).');
  for (const c of [poison, held]) {
    expect(await finalAckOf(stack, c.requestId)).toMatchObject({ stage: 'rejected', reason: { code: 'item_parked' } });
    expect(await requestRow(stack, c.requestId)).toMatchObject({ status: 'rejected', reason: { code: 'item_parked' } });
  }
  expect(await parked()).toEqual([]);
  expect(await eventsOf(stack, 'nul')).toEqual([]);
  expect(await dlq.peek()).toEqual([]);

  // The item is writable again.
  const after = command({ kind: 'put', id: 'nul', data: { text: 'after' } });
  await putOnStream(stack, after);
  expect(await finalAckOf(stack, after.requestId)).toMatchObject({ stage: 'committed', version: 1 });
});

test('a malformed record goes straight to the dead-letter queue and the shard moves on', async () => {
  const behind = command({ kind: 'put', id: 'after-garbage', data: {} });
  await putOnStream(stack, Buffer.from('not a command'), Buffer.from(JSON.stringify({ v: 1, kind: 'put' })), behind);
  expect(await finalAckOf(stack, behind.requestId)).toMatchObject({ stage: 'committed' });
  const letters = await eventually('two malformed letters', async () => {
    const l = await dlq.peek();
    return l.length === 2 && l;
  });
  expect(letters.map((l) => l.kind)).toEqual(['malformed', 'malformed']);
  expect(letters.map((l) => l.error)).toEqual([expect.stringMatching(/not JSON/), expect.stringMatching(/not a v1 command/)]);
  expect(await parked()).toEqual([]);
});
