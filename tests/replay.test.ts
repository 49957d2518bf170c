/**
 * Replay, blue/green: a rebuild builds a new version of the items projection from the event log
 * while live writes keep flowing, switches readers when caught up, loses no write at the switch,
 * resumes after being killed, and a changed projection can be rolled out while reads go on.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import type { ItemDocument } from '../core/contracts';
import { itemsProjection, type Projection } from '../core/projections';
import { registerProjection, unregisterProjection } from '../core/projections';
import { rebuild, switchTo } from '../processors/replay/rebuild';
import { verify } from '../processors/replay/verify';
import { runReplay } from '../processors/replay/cli';
import { request } from './helpers/http';
import { replayDeps, seedLog } from './helpers/replay';
import { startStack, type Stack } from './helpers/stack';

const ROOT = path.resolve(__dirname, '..');
jest.setTimeout(120_000);

async function writeItem(stack: Stack, token: string, method: 'PUT' | 'PATCH' | 'DELETE', id: string, body?: unknown): Promise<string> {
  const res = await request(`${stack.gatewayUrl}/v1/collections/notes/items/${id}`, {
    method, token,
    ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': method === 'PATCH' ? 'application/merge-patch+json' : 'application/json' } } : {}),
  });
  expect(res.status).toBe(202);
  return res.body.requestId as string;
}

/** Waits until the processors decided every request written so far. */
async function settled(stack: Stack, requestIds: string[]): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const r = await stack.pg.query<{ n: string }>('SELECT count(*)::text AS n FROM requests WHERE request_id = ANY($1)', [requestIds]);
    if (Number(r.rows[0]!.n) === requestIds.length) return;
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error('processors did not decide every request');
}

describe('rebuild under concurrent writes', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack('replay-concurrent');
  });
  afterAll(async () => {
    await stack?.close();
  });

  test('switches to the rebuilt version with verify clean and every committed write readable at its latest version', async () => {
    const token = await stack.token({ tenant: 'acme', sub: 'alice' });
    const ids = Array.from({ length: 12 }, (_, i) => `n${i}`);
    const written: string[] = [];
    for (const id of ids) written.push(await writeItem(stack, token, 'PUT', id, { title: id, n: 0 }));
    await settled(stack, written);

    let writing = true;
    let round = 0;
    const writer = (async () => {
      while (writing) {
        round++;
        const id = ids[round % ids.length]!;
        if (round % 9 === 0) written.push(await writeItem(stack, token, 'DELETE', id));
        else if (round % 9 === 1) written.push(await writeItem(stack, token, 'PUT', id, { title: id, round }));
        else written.push(await writeItem(stack, token, 'PATCH', id, { n: round, [`k${round % 4}`]: round }));
      }
    })();
    const deps = replayDeps(stack);
    try {
      const res = await rebuild(deps, { projection: 'items', keepOldMs: 3_600_000, pageSize: 7, concurrency: 4 });
      expect(res.version).toBe(2);
      expect(res.previous).toBe(1);
      // Keep writing a little after the switch: these must land in the new live version.
      await new Promise((r) => setTimeout(r, 1500));
      writing = false;
      await writer;
      await settled(stack, written);
      expect(round).toBeGreaterThan(20);

      const rec = await deps.registry.get('items');
      expect(rec.live).toBe(2);
      expect(rec.versions['1']!.state).toBe('kept');

      const report = await verify(deps, { projection: 'items' });
      expect(report.diffs).toEqual([]);
      expect(report.ok).toBe(true);
      expect(report.version).toBe(2);

      // No lost write: what the read API serves is each item's latest committed version.
      const state = await stack.pg.query<{ item_id: string; version: number; deleted: boolean }>("SELECT item_id, version, deleted FROM items WHERE tenant = 'acme'");
      expect(state.rows).toHaveLength(ids.length);
      for (const row of state.rows) {
        const got = await request(`${stack.readUrl}/v1/collections/notes/items/${row.item_id}`, { token });
        if (row.deleted) expect(got.status).toBe(404);
        else {
          expect(got.status).toBe(200);
          expect(got.body.version).toBe(row.version);
        }
      }
    } finally {
      writing = false;
      await writer.catch(() => undefined);
      await deps.close();
    }
  });
});

describe('a killed rebuild', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack('replay-kill', { services: [] });
  });
  afterAll(async () => {
    await stack?.close();
  });

  test('continues from its checkpoint when the same command runs again, with the same result', async () => {
    const total = await seedLog(stack.pg, { tenant: 'acme', collection: 'notes', items: 400, eventsPerItem: 8 });
    const deps = replayDeps(stack);
    const env = { ...process.env, ...stack.env, REPLAY_SETTLE_MS: '200', LOG_LEVEL: 'warn' };
    const args = ['--import', 'tsx', path.join(ROOT, 'scripts/replay.ts'), 'rebuild', '--projection', 'items', '--page-size', '64', '--concurrency', '2', '--keep-old', '1h'];
    try {
      const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      let killedAt = 0;
      for (let i = 0; i < 3000 && !killedAt; i++) {
        const v = (await deps.registry.get('items')).versions['2'];
        if (v?.done && v.total && v.done >= v.total / 4) {
          child.kill('SIGKILL');
          killedAt = v.done;
        } else await new Promise((r) => setTimeout(r, 10));
      }
      await exited;
      expect(killedAt).toBeGreaterThan(0);
      const halfway = (await deps.registry.get('items')).versions['2']!;
      expect(halfway.state).toBe('building');
      expect(halfway.done!).toBeLessThan(total);
      expect((await deps.registry.get('items')).live).toBe(1);
      const st: string[] = [];
      expect(await runReplay(['status'], env, { out: (l) => st.push(l), err: { write: () => true } })).toBe(0);
      expect(st.join('\n')).toMatch(new RegExp(`v2 building code v1 .* — ${halfway.done}/${total} events`));
      expect(st.join('\n')).toMatch(/v1 live/);

      const lines: string[] = [];
      const code = await runReplay(['rebuild', '--projection', 'items', '--page-size', '64', '--keep-old', '1h'], env, { out: (l) => lines.push(l), err: { write: () => true } });
      expect(code).toBe(0);
      expect(lines.join('\n')).toMatch(/rebuilt items v2 \(resumed\)/);

      const rec = await deps.registry.get('items');
      expect(rec.live).toBe(2);
      expect(rec.versions['2']!.done).toBe(total);
      const scan = await stack.doc.send(new ScanCommand({ TableName: rec.versions['2']!.itemsTable, Select: 'COUNT' }));
      expect(scan.Count).toBe(400);

      const out: string[] = [];
      expect(await runReplay(['verify', '--projection', 'items'], env, { out: (l) => out.push(l), err: { write: () => true } })).toBe(0);
      expect(out.at(-1)).toBe('verify: clean');

      // The read model of record is the rebuilt one; the original (never projected here) differs, and verify says so.
      await switchTo(deps, 'items', 1);
      const bad: string[] = [];
      expect(await runReplay(['verify', '--projection', 'items', '--max-diffs', '3'], env, { out: (l) => bad.push(l), err: { write: () => true } })).toBe(1);
      expect(bad.filter((l) => l.includes('differs:'))).toHaveLength(3);
      expect(bad.at(-1)).toBe('verify: 400 items differ');
    } finally {
      await deps.close();
    }
  });
});

describe('a changed projection', () => {
  let stack: Stack;
  const itemsV2: Projection = {
    name: 'items',
    version: 2,
    item(state) {
      const w = itemsProjection.item(state);
      if (w.json === null) return w;
      const doc = JSON.parse(w.json) as ItemDocument & { fields?: number };
      doc.fields = Object.keys(doc.data).length;
      return { ...w, json: JSON.stringify(doc) };
    },
  };
  beforeAll(async () => {
    registerProjection(itemsV2);
    stack = await startStack('replay-v2');
  });
  afterAll(async () => {
    unregisterProjection('items', 2);
    await stack?.close();
  });

  test('is rebuilt and switched while reads continue without errors, and the old version is retired', async () => {
    const token = await stack.token({ tenant: 'acme', sub: 'bob' });
    const ids = Array.from({ length: 10 }, (_, i) => `d${i}`);
    const written: string[] = [];
    for (const id of ids) written.push(await writeItem(stack, token, 'PUT', id, { title: id, a: 1 }));
    await settled(stack, written);

    let reading = true;
    const statuses = new Map<number, number>();
    let newShape = 0;
    const readers = Array.from({ length: 3 }, async (_, r) => {
      for (let i = 0; reading; i++) {
        const id = ids[(i + r) % ids.length]!;
        const res = await request(`${stack.readUrl}/v1/collections/notes/items/${id}`, { token });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.body?.fields !== undefined) newShape++;
        const list = await request(`${stack.readUrl}/v1/collections/notes/items?limit=5`, { token });
        statuses.set(list.status, (statuses.get(list.status) ?? 0) + 1);
      }
    });
    const deps = replayDeps(stack);
    try {
      // keep-old 0: the old version is retired right after the switch, while reads go on.
      const res = await rebuild(deps, { projection: 'items', keepOldMs: 0, pageSize: 4 });
      expect(res.version).toBe(2);
      const late = await writeItem(stack, token, 'PATCH', 'd3', { b: 2 });
      await settled(stack, [late]);
      await new Promise((r) => setTimeout(r, 1500));
      reading = false;
      await Promise.all(readers);

      expect([...statuses.keys()]).toEqual([200]);
      expect(statuses.get(200)!).toBeGreaterThan(50);
      expect(newShape).toBeGreaterThan(0);
      const d3 = await request(`${stack.readUrl}/v1/collections/notes/items/d3`, { token });
      expect(d3.body).toMatchObject({ version: 2, data: { title: 'd3', a: 1, b: 2 }, fields: 3 });
      const rec = await deps.registry.get('items');
      expect(rec.versions['1']!.state).toBe('retired');
      expect(rec.versions['2']).toMatchObject({ state: 'live', code: 2 });
      expect((await verify(deps, { projection: 'items' })).ok).toBe(true);
    } finally {
      reading = false;
      await Promise.allSettled(readers);
      await deps.close();
    }
  });
});


describe('the stream', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack('replay-stream');
  });
  afterAll(async () => {
    await stack?.close();
  });

  test('reprocess after a database restore decides the lost commands again, and repeats change nothing', async () => {
    const token = await stack.token({ tenant: 'acme', sub: 'carol' });
    const early: string[] = [];
    for (const id of ['s0', 's1', 's2']) early.push(await writeItem(stack, token, 'PUT', id, { v: id }));
    await settled(stack, early);
    await new Promise((r) => setTimeout(r, 1100)); // arrival timestamps have second-ish granularity in the emulator
    const since = new Date();
    const late = [await writeItem(stack, token, 'PUT', 's3', { v: 's3' }), await writeItem(stack, token, 'PATCH', 's0', { w: 1 })];
    await settled(stack, late);

    // The "restore": PostgreSQL loses everything decided after `since`.
    await stack.pg.query('DELETE FROM events WHERE request_id = ANY($1)', [late]);
    await stack.pg.query('DELETE FROM requests WHERE request_id = ANY($1)', [late]);
    await stack.pg.query("DELETE FROM items WHERE item_id = 's3'");
    await stack.pg.query("UPDATE items SET version = 1, data = '{\"v\":\"s0\"}' WHERE item_id = 's0'");

    const env = { ...process.env, ...stack.env };
    const quiet = { out: () => undefined, err: { write: () => true } };
    for (let run = 0; run < 2; run++) {
      expect(await runReplay(['reprocess', '--from', 'stream', '--since', since.toISOString()], env, quiet)).toBe(0);
      const events = await stack.pg.query<{ item_id: string; version: number; request_id: string }>('SELECT item_id, version, request_id FROM events ORDER BY item_id, version');
      expect(events.rows.map((e) => `${e.item_id}@${e.version}`)).toEqual(['s0@1', 's0@2', 's1@1', 's2@1', 's3@1']);
      expect(events.rows.filter((e) => late.includes(e.request_id))).toHaveLength(2);
    }
    const s0 = await stack.pg.query<{ data: unknown }>("SELECT data FROM items WHERE item_id = 's0'");
    expect(s0.rows[0]!.data).toEqual({ v: 's0', w: 1 });
  });

  test('a rebuild from the stream switches to a version holding every item at its latest version', async () => {
    const token = await stack.token({ tenant: 'acme', sub: 'carol' });
    const env = { ...process.env, ...stack.env, REPLAY_SETTLE_MS: '1500' };
    const lines: string[] = [];
    expect(await runReplay(['rebuild', '--projection', 'items', '--from', 'stream', '--keep-old', '1h'], env, { out: (l) => lines.push(l), err: { write: () => true } })).toBe(0);
    expect(lines.join('\n')).toMatch(/rebuilt items v2: 5 events, 4 items/);
    const deps = replayDeps(stack);
    try {
      const rec = await deps.registry.get('items');
      expect(rec.live).toBe(2);
      expect(rec.versions['2']!.source).toBe('stream');
    } finally {
      await deps.close();
    }
    const s0 = await request(`${stack.readUrl}/v1/collections/notes/items/s0`, { token });
    expect(s0.body).toMatchObject({ version: 2, data: { v: 's0', w: 1 } });
    const list = await request(`${stack.readUrl}/v1/collections/notes/items`, { token });
    expect(list.body.items.map((i: { id: string }) => i.id).sort()).toEqual(['s0', 's1', 's2', 's3']);
  });
});
