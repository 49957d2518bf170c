/**
 * The processors against the real stack (kinesalite, PostgreSQL, Redis, dynalite): decision
 * rules, replays, and crashes injected between the commit and what follows it.
 */
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import type { AckLog } from '../core/ack-log';
import { requestsPk } from '../core/keys';
import { RedisAckLog } from '../core/redis-ack-log';
import type { CheckpointStore } from '../processors/checkpoints';
import type { CommandStore } from '../processors/command-store';
import {
  command, eventsOf, eventually, finalAckOf, putOnStream, RecordingAckLog, requestRow, startProcessorsWith, storedFinals,
} from './helpers/processors';
import { TcpProxy } from './helpers/proxy';
import { startStack, type Stack } from './helpers/stack';

let stack: Stack;
let acks: RecordingAckLog;
/** Faults armed by a test; each fires once (a crash cannot be produced for real inside one process). */
const faults = { afterCommit: false, beforeAck: false, checkpoint: false };
const fired: string[] = [];

beforeAll(async () => {
  stack = await startStack('processors', { services: ['ack-service'], shardCount: 2 });
  acks = new RecordingAckLog(new RedisAckLog(stack.redis, stack.redisPrefix));
  await startProcessorsWith(stack, {
    acks: faultyAcks(acks),
    wrapStore: faultyStore,
    wrapCheckpoints: faultyCheckpoints,
  }, { PROCESSORS_METRICS_PORT: '0' });
});

afterAll(async () => {
  await stack?.close();
});

function faultyStore(inner: CommandStore): CommandStore {
  return {
    execute: (c) => inner.execute(c),
    async executeBatch(entries) {
      const res = await inner.executeBatch(entries);
      if (faults.afterCommit && res.outcomes.length > 0) {
        faults.afterCommit = false;
        fired.push('afterCommit');
        throw new Error('injected crash after the commit, before projection and acks');
      }
      return res;
    },
  };
}

function faultyAcks(inner: AckLog): AckLog {
  return {
    append: async (route, draft) => {
      if (faults.beforeAck && draft.stage !== 'queued') {
        faults.beforeAck = false;
        fired.push('beforeAck');
        throw new Error('injected crash between the commit and the ack publish');
      }
      return inner.append(route, draft);
    },
    readAfter: (r, a, l) => inner.readAfter(r, a, l),
    subscribe: (l) => inner.subscribe(l),
    close: () => inner.close(),
  };
}

function faultyCheckpoints(inner: CheckpointStore): CheckpointStore {
  return {
    get: (s) => inner.get(s),
    async save(shard, seq, finished) {
      if (faults.checkpoint) {
        faults.checkpoint = false;
        fired.push('checkpoint');
        throw new Error('injected crash between the commit and the checkpoint');
      }
      return inner.save(shard, seq, finished);
    },
  };
}

describe('decisions', () => {
  test('rejects a write whose If-Match version is stale, naming both versions, and writes no event', async () => {
    const v1 = command({ kind: 'put', id: 'stale', data: { n: 1 } });
    const v2 = command({ kind: 'put', id: 'stale', data: { n: 2 } });
    const stale = command({ kind: 'put', id: 'stale', data: { n: 3 }, ifMatch: 1 });
    const ok = command({ kind: 'patch', id: 'stale', data: { m: true }, ifMatch: 2 });
    await putOnStream(stack, v1, v2, stale, ok);

    const ack = await finalAckOf(stack, stale.requestId);
    expect(ack).toMatchObject({ stage: 'rejected', reason: { code: 'version_conflict' } });
    expect(ack.reason!.message).toMatch(/expected version 1\b.*current version is 2\b/);
    expect(await finalAckOf(stack, ok.requestId)).toMatchObject({ stage: 'committed', version: 3 });
    expect((await eventsOf(stack, 'stale')).map((e) => e.request_id)).toEqual([v1.requestId, v2.requestId, ok.requestId]);
    expect(await requestRow(stack, stale.requestId)).toMatchObject({ status: 'rejected', version: null, reason: { code: 'version_conflict' } });
  });

  test('rejects If-None-Match: * on an existing item with already_exists and records the request', async () => {
    const first = command({ kind: 'put', id: 'exists', data: { a: 1 }, ifNoneMatch: true });
    const again = command({ kind: 'put', id: 'exists', data: { a: 2 }, ifNoneMatch: true });
    await putOnStream(stack, first, again);
    expect(await finalAckOf(stack, first.requestId)).toMatchObject({ stage: 'committed', version: 1 });
    expect(await finalAckOf(stack, again.requestId)).toMatchObject({ stage: 'rejected', reason: { code: 'already_exists' } });
    expect(await eventsOf(stack, 'exists')).toHaveLength(1);
    expect(await requestRow(stack, again.requestId)).toMatchObject({ status: 'rejected', reason: { code: 'already_exists' } });
  });

  test('rejects PATCH and DELETE of a missing item with not_found, writing no event', async () => {
    const patch = command({ kind: 'patch', id: 'missing', data: { a: 1 } });
    const del = command({ kind: 'delete', id: 'missing' });
    await putOnStream(stack, patch, del);
    expect(await finalAckOf(stack, patch.requestId)).toMatchObject({ stage: 'rejected', reason: { code: 'not_found' } });
    expect(await finalAckOf(stack, del.requestId)).toMatchObject({ stage: 'rejected', reason: { code: 'not_found' } });
    expect(await eventsOf(stack, 'missing')).toEqual([]);
    const items = await stack.pg.query(`SELECT 1 FROM items WHERE item_id = 'missing'`);
    expect(items.rowCount).toBe(0);
    expect(await requestRow(stack, del.requestId)).toMatchObject({ status: 'rejected', reason: { code: 'not_found' } });
  });

  test('projects the committed item and the final request status into DynamoDB', async () => {
    const put = command({ kind: 'put', id: 'projected', data: { title: 'x' } });
    await putOnStream(stack, put);
    await finalAckOf(stack, put.requestId);
    // The projection consumer follows the commit consumer: the durable copy arrives shortly after the ack.
    const status = await eventually('the durable request status', async () =>
      (await stack.doc.send(new GetCommand({ TableName: stack.env.REQUESTS_TABLE!, Key: { pk: requestsPk('acme', put.requestId) } }))).Item);
    expect(JSON.parse(String(status.doc))).toMatchObject({ status: 'committed', version: 1 });
    const item = await eventually('the durable item', async () =>
      (await stack.doc.send(new GetCommand({ TableName: stack.env.ITEMS_TABLE!, Key: { pk: 'acme#notes', id: 'projected' } }))).Item);
    expect(JSON.parse(String(item.doc))).toMatchObject({ version: 1, data: { title: 'x' } });
  });
});

test('replaying the same records twice changes nothing and re-sends identical final acks', async () => {
  const cmds = [
    command({ kind: 'put', id: 'replay-a', data: { n: 1 } }),
    command({ kind: 'patch', id: 'replay-a', data: { n: 2 } }),
    command({ kind: 'put', id: 'replay-b', data: { n: 1 }, ifMatch: 7 }), // rejected
  ];
  await putOnStream(stack, ...cmds);
  for (const c of cmds) await finalAckOf(stack, c.requestId);
  const before = await stack.pg.query('SELECT count(*)::int AS n FROM events');
  const state = await stack.pg.query(`SELECT version, data FROM items WHERE item_id = 'replay-a'`);
  const firstAcks = cmds.map((c) => acks.of(c.requestId)[0]);

  await putOnStream(stack, ...cmds);
  await putOnStream(stack, ...cmds);
  await eventually('the replays to be acked', async () => cmds.every((c) => acks.of(c.requestId).length >= 3));

  expect((await stack.pg.query('SELECT count(*)::int AS n FROM events')).rows[0].n).toBe(before.rows[0].n);
  expect((await stack.pg.query(`SELECT version, data FROM items WHERE item_id = 'replay-a'`)).rows).toEqual(state.rows);
  for (const [i, c] of cmds.entries()) {
    expect(acks.of(c.requestId)).toEqual([firstAcks[i], firstAcks[i], firstAcks[i]]);
  }
  // The ack log still holds one final ack per request.
  const stored = (await storedFinals(stack)).filter((a) => cmds.some((c) => c.requestId === a.requestId));
  expect(stored).toHaveLength(3);
});

describe('crashes after the commit lose nothing and apply nothing twice', () => {
  async function runWithFault(fault: keyof typeof faults, id: string) {
    const cmds = Array.from({ length: 6 }, (_, i) => command({ kind: i === 0 ? 'put' : 'patch', id, data: { step: i } }));
    fired.length = 0;
    faults[fault] = true;
    await putOnStream(stack, ...cmds);
    for (const c of cmds) await finalAckOf(stack, c.requestId);
    // A checkpoint is saved after the acks are published (and on the processors' cadence), so the
    // last final ack can arrive before the injected crash: wait for it to have happened.
    await eventually(`the injected ${fault} crash`, async () => fired.length > 0 || undefined);
    expect(fired).toEqual([fault]);
    const events = await eventsOf(stack, id);
    expect(events.map((e) => e.request_id)).toEqual(cmds.map((c) => c.requestId));
    expect(events.map((e) => e.version)).toEqual([1, 2, 3, 4, 5, 6]);
    const finals = (await storedFinals(stack)).filter((a) => cmds.some((c) => c.requestId === a.requestId));
    expect(finals.map((a) => [a.requestId, a.version])).toEqual(cmds.map((c, i) => [c.requestId, i + 1]));
    const item = await stack.pg.query(`SELECT version, data FROM items WHERE item_id = $1`, [id]);
    expect(item.rows[0]).toEqual({ version: 6, data: { step: 5 } });
  }

  test('between the commit and the checkpoint', () => runWithFault('checkpoint', 'crash-checkpoint'));
  test('between the commit and the ack publish', () => runWithFault('beforeAck', 'crash-ack'));
  test('right after the commit, before projection and acks', () => runWithFault('afterCommit', 'crash-commit'));

  test('a restarted processor resumes from its checkpoints without re-applying', async () => {
    const first = command({ kind: 'put', id: 'restart', data: { a: 1 } });
    await putOnStream(stack, first);
    await finalAckOf(stack, first.requestId);
    await stack.stopService('processors');
    const whileDown = command({ kind: 'patch', id: 'restart', data: { b: 2 } });
    await putOnStream(stack, whileDown);
    await startProcessorsWith(stack, { acks, wrapStore: faultyStore, wrapCheckpoints: faultyCheckpoints }, { PROCESSORS_METRICS_PORT: '0' });
    expect(await finalAckOf(stack, whileDown.requestId)).toMatchObject({ stage: 'committed', version: 2 });
    expect((await eventsOf(stack, 'restart')).map((e) => e.version)).toEqual([1, 2]);
    const cps = await stack.pg.query("SELECT shard_id FROM checkpoints WHERE consumer = 'processors'");
    expect(cps.rowCount).toBe(2);
  });
});

describe('the durable copy never holds back a commit', () => {
  test('with DynamoDB unreachable, writes still commit and get their committed acks; the durable copy catches up when it is back', async () => {
    await stack.stopService('processors');
    const dynamo = new URL(stack.emulators.dynamoEndpoint);
    const proxy = new TcpProxy('dynamodb', dynamo.hostname, Number(dynamo.port));
    await proxy.start();
    try {
      proxy.cut();
      await startProcessorsWith(stack, { acks }, { PROCESSORS_METRICS_PORT: '0', DYNAMODB_ENDPOINT: `http://${proxy.url}`, RETRY_DELAY_MS: '50' });
      const writes = [
        command({ kind: 'put', id: 'outage', data: { n: 1 } }),
        command({ kind: 'patch', id: 'outage', data: { n: 2 } }),
        command({ kind: 'patch', id: 'outage', data: { n: 3 } }),
      ];
      await putOnStream(stack, ...writes);
      for (const [i, w] of writes.entries()) expect(await finalAckOf(stack, w.requestId)).toMatchObject({ stage: 'committed', version: i + 1 });
      expect((await eventsOf(stack, 'outage')).map((e) => e.version)).toEqual([1, 2, 3]);
      // The hot request statuses are there with the acks: they do not wait for the projection
      // registry (kept in DynamoDB, out of reach), only the versioned item copies do.
      for (const w of writes) {
        const hotStatus = await stack.redis.hget(`${stack.redisPrefix}req:acme:${w.requestId}`, 'd');
        expect(JSON.parse(hotStatus!)).toMatchObject({ status: 'committed' });
      }
      // The durable copy is not there (and was really tried).
      await eventually('a refused DynamoDB call', async () => proxy.stats.refused + proxy.stats.reset > 0);
      const getItem = () => stack.doc.send(new GetCommand({ TableName: stack.env.ITEMS_TABLE!, Key: { pk: 'acme#notes', id: 'outage' } }));
      expect((await getItem()).Item).toBeUndefined();

      proxy.restore();
      const item = await eventually('the durable copy after the outage', async () => (await getItem()).Item);
      expect(JSON.parse(String(item.doc))).toMatchObject({ version: 3, data: { n: 3 } });
      // The hot copy too (during the outage the projection registry, kept in DynamoDB, was out of reach).
      const hot = await eventually('the hot copy after the outage', async () => (await stack.redis.hget(`${stack.redisPrefix}item:acme:notes:outage`, 'd')) ?? undefined);
      expect(JSON.parse(hot)).toMatchObject({ version: 3 });
      for (const w of writes) {
        const status = await eventually('a durable request status', async () =>
          (await stack.doc.send(new GetCommand({ TableName: stack.env.REQUESTS_TABLE!, Key: { pk: requestsPk('acme', w.requestId) } }))).Item);
        expect(JSON.parse(String(status.doc))).toMatchObject({ status: 'committed' });
      }
    } finally {
      await stack.stopService('processors');
      await proxy.close();
      await startProcessorsWith(stack, { acks, wrapStore: faultyStore, wrapCheckpoints: faultyCheckpoints }, { PROCESSORS_METRICS_PORT: '0' });
    }
  });

  test('the projection consumer does not run ahead of the commit consumer: it waits for the decision', async () => {
    await stack.stopService('processors');
    // The commit consumer cannot commit: nothing is decided, so nothing may be projected.
    const w = command({ kind: 'put', id: 'undecided', data: { n: 1 } });
    try {
      await startProcessorsWith(stack, { acks, wrapStore: () => stalledStore }, { PROCESSORS_METRICS_PORT: '0', RETRY_DELAY_MS: '50' });
      await putOnStream(stack, w);
      await new Promise((r) => setTimeout(r, 500));
      const getItem = () => stack.doc.send(new GetCommand({ TableName: stack.env.ITEMS_TABLE!, Key: { pk: 'acme#notes', id: 'undecided' } }));
      expect((await getItem()).Item).toBeUndefined();
      expect(await requestRow(stack, w.requestId)).toBeUndefined();
    } finally {
      await stack.stopService('processors');
      await startProcessorsWith(stack, { acks, wrapStore: faultyStore, wrapCheckpoints: faultyCheckpoints }, { PROCESSORS_METRICS_PORT: '0' });
    }
    // Once the commit consumer decides, the projection follows.
    expect(await finalAckOf(stack, w.requestId)).toMatchObject({ stage: 'committed', version: 1 });
    const item = await eventually('the durable copy', async () =>
      (await stack.doc.send(new GetCommand({ TableName: stack.env.ITEMS_TABLE!, Key: { pk: 'acme#notes', id: 'undecided' } }))).Item);
    expect(JSON.parse(String(item.doc))).toMatchObject({ version: 1 });
  });
});

describe('duplicates on the stream (a producer retried a put that had succeeded)', () => {
  test('a request twice in one batch is projected once and does not stall the projection consumer', async () => {
    await stack.stopService('processors');
    const dup = command({ kind: 'put', id: 'dup-a', data: { n: 1 } });
    const after = command({ kind: 'put', id: 'dup-b', data: { n: 1 } });
    // Put while no consumer runs, so both copies and the next write arrive in one batch.
    await putOnStream(stack, dup, dup, after);
    await startProcessorsWith(stack, { acks, wrapStore: faultyStore, wrapCheckpoints: faultyCheckpoints }, { PROCESSORS_METRICS_PORT: '0' });
    const status = (requestId: string) => eventually(`the durable request status of ${requestId}`, async () =>
      (await stack.doc.send(new GetCommand({ TableName: stack.env.REQUESTS_TABLE!, Key: { pk: requestsPk('acme', requestId) } }))).Item);
    for (const c of [dup, after]) expect(JSON.parse(String((await status(c.requestId)).doc))).toMatchObject({ status: 'committed', version: 1 });
    expect((await eventsOf(stack, 'dup-a')).map((e) => e.request_id)).toEqual([dup.requestId]);
  });
});

/** A commit consumer that cannot commit (its database is "down"): every batch fails before deciding. */
const stalledStore: CommandStore = {
  execute: () => Promise.reject(new Error('injected: commit consumer stalled')),
  executeBatch: () => Promise.reject(new Error('injected: commit consumer stalled')),
};

test('exports per-shard lag on /metrics', async () => {
  const url = stack.services.get('processors')!.url!;
  const res = await fetch(`${url}/metrics`);
  const text = await res.text();
  expect(res.status).toBe(200);
  expect(text).toMatch(/ackstream_processor_millis_behind_latest\{shard="shardId-000000000000",consumer="processors"\} \d+/);
  expect(text).toMatch(/ackstream_processor_iterator_age_ms\{shard="shardId-00000000000[01]",consumer="processors"\} \d+/);
  expect(text).toMatch(/ackstream_processor_records_total\{outcome="committed"\} \d+/);
});
