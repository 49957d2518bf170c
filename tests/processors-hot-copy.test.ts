/**
 * The commit consumer writes a batch's hot copy (items and request statuses) in a few batched
 * Redis calls (RedisHotStore.putMany). It must have exactly the effect of one guarded write per
 * record: an older version never overwrites a newer one, a final status is never replaced by
 * `queued`, and a deletion stays as a tombstone.
 */
import { Redis } from 'ioredis';
import { RANK_FINAL, RANK_QUEUED, RedisHotStore, type ItemWrite, type RequestWrite } from '../core/read-store';
import { REDIS_URL, uniqueName } from './helpers/stack';
import { deleteKeysByPrefix } from '../core/redis';

let redis: Redis;
let prefix: string;
let hot: RedisHotStore;

beforeAll(() => {
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  prefix = `test:${uniqueName('hot_copy')}:`;
  hot = new RedisHotStore(redis, prefix);
});

afterAll(async () => {
  await deleteKeysByPrefix(redis, prefix);
  redis.disconnect();
});

const item = (id: string, version: number, json: string | null): ItemWrite => ({
  tenant: 't', collection: 'c', id, version, updatedAt: '2026-12-02T00:00:00.000Z', json,
});
const request = (requestId: string, rank: number, json: string): RequestWrite => ({ tenant: 't', requestId, rank, json });

test('a batch writes every item and request status, as single writes would', async () => {
  // More writes than one script call takes, so the batch spans several calls.
  const items = Array.from({ length: 150 }, (_, i) => item(`i${i}`, 1, `{"n":${i}}`));
  const requests = Array.from({ length: 150 }, (_, i) => request(`r${i}`, RANK_FINAL, `{"r":${i}}`));
  await hot.putMany(items, requests);
  expect(await hot.getItem('t', 'c', 'i0')).toEqual({ version: 1, json: '{"n":0}' });
  expect(await hot.getItem('t', 'c', 'i149')).toEqual({ version: 1, json: '{"n":149}' });
  expect(await hot.getRequest('t', 'r149')).toBe('{"r":149}');
  expect(await redis.ttl(`${prefix}item:t:c:i149`)).toBeGreaterThan(0);
  expect(await redis.ttl(`${prefix}req:t:r149`)).toBeGreaterThan(0);
});

test('an older version never overwrites a newer one, and a final status is never replaced by queued', async () => {
  await hot.putItem(item('g', 5, '{"v":5}'));
  await hot.putRequest(request('rg', RANK_FINAL, '{"final":true}'));
  await hot.putMany([item('g', 4, '{"v":4}'), item('g', 5, '{"v":"5 again"}')], [request('rg', RANK_QUEUED, '{"queued":true}')]);
  expect(await hot.getItem('t', 'c', 'g')).toEqual({ version: 5, json: '{"v":5}' });
  expect(await hot.getRequest('t', 'rg')).toBe('{"final":true}');
  await hot.putMany([item('g', 6, '{"v":6}')], []);
  expect(await hot.getItem('t', 'c', 'g')).toEqual({ version: 6, json: '{"v":6}' });
});

test('a deletion is kept as a tombstone that guards against older versions', async () => {
  await hot.putMany([item('d', 1, '{"v":1}')], []);
  await hot.putMany([item('d', 2, null)], []);
  expect(await hot.getItem('t', 'c', 'd')).toEqual({ version: 2, json: null });
  await hot.putMany([item('d', 1, '{"v":1}')], []);
  expect(await hot.getItem('t', 'c', 'd')).toEqual({ version: 2, json: null });
});
