/** PerTurnGroups (gateway/per-turn.ts): requests gathered per key until the end of the turn, handed over together in arrival order. */
import { type Pending, PerTurnGroups } from '../../gateway/per-turn';

test('requests of one turn are grouped by key, in arrival order, and each gets its own answer', async () => {
  const calls: Array<[string, number[]]> = [];
  const groups = new PerTurnGroups<number, string>(async (key, group) => {
    calls.push([key, group.map((p) => p.value)]);
    group.forEach((p) => p.resolve(`${key}:${p.value}`));
  });
  const answers = Promise.all([groups.add('a', 1), groups.add('b', 2), groups.add('a', 3)]);
  expect(calls).toEqual([]); // nothing before the turn ends
  await expect(answers).resolves.toEqual(['a:1', 'b:2', 'a:3']);
  expect(calls).toEqual([['a', [1, 3]], ['b', [2]]]);
});

test('a later turn makes new groups', async () => {
  const sizes: number[] = [];
  const groups = new PerTurnGroups<number, void>(async (_key, group) => {
    sizes.push(group.length);
    group.forEach((p) => p.resolve());
  });
  await Promise.all([groups.add('k', 1), groups.add('k', 2)]);
  await groups.add('k', 3);
  expect(sizes).toEqual([2, 1]);
});

test("a handler that fails rejects every request of its group, and only those", async () => {
  const groups = new PerTurnGroups<number, number>(async (key, group: Array<Pending<number, number>>) => {
    if (key === 'bad') throw new Error('redis down');
    group.forEach((p) => p.resolve(p.value * 10));
  });
  const results = await Promise.allSettled([groups.add('bad', 1), groups.add('ok', 2), groups.add('bad', 3)]);
  expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'rejected']);
  expect((results[0] as PromiseRejectedResult).reason).toEqual(new Error('redis down'));
  expect((results[1] as PromiseFulfilledResult<number>).value).toBe(20);
});
