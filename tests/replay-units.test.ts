/** The pure parts of replay: folding log rows, progress lines, CLI arguments, canonical JSON, registry caching. */
import { CachedRegistry, defaultRecord, type ProjectionRecord } from '../core/projections';
import { foldRows, type LogRow } from '../processors/replay/fold';
import { createProgress, formatEta, progressLine } from '../core/progress';
import { parseArgs, parseDuration, UsageError } from '../processors/replay/cli';
import { canonicalJson } from '../processors/replay/verify';

const row = (id: string, version: number, type: LogRow['type'], data: LogRow['data']): LogRow => ({
  tenant: 't', collection: 'c', item_id: id, version, type, data, recorded_at: new Date(Date.UTC(2026, 0, 1, 0, 0, version)),
});

test('folding rows yields each item once, at its final state, and carries the unfinished last item', () => {
  const { done, last } = foldRows([
    row('a', 1, 'ItemPut', { x: 1, y: { z: 1 } }),
    row('a', 2, 'ItemPatched', { y: { z: null, w: 2 } }),
    row('b', 1, 'ItemPut', { x: 1 }),
    row('b', 2, 'ItemDeleted', null),
    row('c', 1, 'ItemPut', { n: 1 }),
  ]);
  expect(done.map((s) => [s.id, s.version, s.deleted, s.data])).toEqual([
    ['a', 2, false, { x: 1, y: { w: 2 } }],
    ['b', 2, true, null],
  ]);
  expect(last).toMatchObject({ id: 'c', version: 1, data: { n: 1 }, updatedAt: '2026-01-01T00:00:01.000Z' });
  // The carried item continues on the next page.
  const next = foldRows([row('c', 2, 'ItemPatched', { m: 2 })], last);
  expect(next.done).toEqual([]);
  expect(next.last).toMatchObject({ id: 'c', version: 2, data: { n: 1, m: 2 } });
});

test('progress shows done/total, rate and ETA; a bar on a terminal, plain lines otherwise', () => {
  expect(progressLine('rebuild', 250, 1000, 50)).toBe('rebuild: 250/1,000 25.0% 50 ev/s ETA 15s');
  expect(progressLine('rebuild', 500, 1000, 100, 10)).toBe('rebuild [#####-----] 500/1,000 50.0% 100 ev/s ETA 5s');
  expect(formatEta(3725)).toBe('1h02m');
  expect(formatEta(Infinity)).toBe('--');

  let t = 0;
  const plain: string[] = [];
  const p = createProgress({ label: 'x', out: { write: (s: string) => plain.push(s), isTTY: false }, intervalMs: 1000, now: () => t });
  for (t = 0; t <= 3000; t += 250) p.update(t, 3000);
  p.finish(3000, 3000);
  expect(plain.every((l) => l.endsWith('\n') && !l.includes('\r'))).toBe(true);
  expect(plain).toHaveLength(5); // one line per second plus the final one

  const tty: string[] = [];
  const q = createProgress({ label: 'x', out: { write: (s: string) => tty.push(s), isTTY: true, columns: 120 }, now: () => t });
  q.update(10, 20);
  expect(tty[0]).toMatch(/^\rx \[#+-*\] 10\/20/);
});

test('the same bar serves the dlq and the bench: a detail after the figures, the rate optional, log lines clear the bar', () => {
  expect(progressLine('dlq', 3, 4, 0, 0, 'req-7')).toBe('dlq: 3/4 75.0% 0 ev/s ETA -- req-7');
  expect(progressLine('[bench] reads', 30, 60, 2, 0, 'seed Redis', '')).toBe('[bench] reads: 30/60 50.0% ETA 15s seed Redis');

  const tty: string[] = [];
  const p = createProgress({ label: 'b', out: { write: (s: string) => tty.push(s), isTTY: true, columns: 100 }, now: () => 0 });
  p.update(1, 10);
  p.update(10, 10); // reaching the total draws even inside the redraw interval
  p.log('done in 1.0s');
  expect(tty).toHaveLength(3);
  expect(tty[1]).toMatch(/^\rb \[#+\] 10\/10 100\.0%/);
  expect(tty[2]).toBe('\r\x1b[Kb: done in 1.0s\n');
});

test('CLI arguments and durations are parsed, and bad ones are refused', () => {
  expect(parseArgs(['rebuild', '--projection', 'items', '--keep-old=30m', '--json'])).toEqual({
    command: 'rebuild', flags: { projection: 'items', 'keep-old': '30m', json: true },
  });
  expect(parseDuration('0')).toBe(0);
  expect(parseDuration('90s')).toBe(90_000);
  expect(parseDuration('12h')).toBe(43_200_000);
  expect(() => parseDuration('soon')).toThrow(UsageError);
  expect(() => parseArgs(['rebuild', 'items'])).toThrow(UsageError);
});

test('canonical JSON ignores key order (jsonb reorders keys) but not values', () => {
  expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } })).toBe(canonicalJson({ a: { c: null, d: [1, { x: 1, y: 2 }] }, b: 1 }));
  expect(canonicalJson({ a: 1 })).not.toBe(canonicalJson({ a: 2 }));
});

test('a strict registry cache never serves a record older than its TTL, a lenient one does while the registry is down', async () => {
  let now = 0;
  let calls = 0;
  let down = false;
  const rec: ProjectionRecord = defaultRecord('items', { itemsTable: 'items', redisPrefix: 'p:' });
  const source = { get: async () => { calls++; if (down) throw new Error('registry down'); return rec; } };
  const strict = new CachedRegistry(source, { strict: true, ttlMs: 1000, now: () => now });
  const lenient = new CachedRegistry(source, { strict: false, ttlMs: 1000, now: () => now });
  await strict.get('items');
  await lenient.get('items');
  now = 999;
  await strict.get('items');
  expect(calls).toBe(2);
  now = 1000;
  down = true;
  await expect(strict.get('items')).rejects.toThrow('registry down');
  await expect(lenient.get('items')).resolves.toBe(rec);
});
