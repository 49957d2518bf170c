/**
 * RedisAckLog.watchStages, the processors' wake-up feed: each live ack's stage, read from the
 * published message without decoding it, in publish order, beside full subscribers on the same
 * connection (which still get every ack whole). Real Redis.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Ack, AckDraft, AckStage } from '../core/contracts';
import { partitionKey } from '../core/keys';
import { deleteKeysByPrefix } from '../core/redis';
import { RedisAckLog } from '../core/redis-ack-log';
import { REDIS_URL, uniqueName } from './helpers/stack';
import { eventually } from './helpers/processors';

let redis: Redis;
let prefix: string;

beforeAll(() => {
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  prefix = `test:${uniqueName('ack_stages')}:`;
});

afterAll(async () => {
  await deleteKeysByPrefix(redis, prefix);
  redis.disconnect();
});

const route = { tenant: 'acme', principal: 'alice' };
const draft = (stage: AckStage, extra: Partial<AckDraft> = {}): AckDraft => ({
  type: 'ack', stage, requestId: randomUUID(), collection: 'notes', id: 'stage"stage":"committed"', at: new Date().toISOString(),
  ...(stage === 'committed' ? { version: 1 } : stage === 'rejected' ? { reason: { code: 'version_conflict', message: '"stage":"queued"' } } : {}),
  ...extra,
} as AckDraft);

describe('RedisAckLog.watchStages', () => {
  it('delivers each live ack\'s stage in order, and full subscribers still get the acks whole', async () => {
    const log = new RedisAckLog(redis, prefix);
    const stages: AckStage[] = [];
    const whole: Ack[] = [];
    const unwatch = await log.watchStages((s) => stages.push(s));
    const unsubscribe = await log.subscribe((_route, ack) => whole.push(ack));
    const drafts = [draft('queued'), draft('committed'), draft('queued'), draft('rejected')];
    for (const d of drafts) await log.append(route, d);
    await log.appendMany(route, [draft('queued'), draft('committed')]);
    await eventually('all six published', async () => stages.length === 6 && whole.length === 6);
    expect(stages).toEqual(['queued', 'committed', 'queued', 'rejected', 'queued', 'committed']);
    expect(whole.map((a) => a.stage)).toEqual(stages);
    expect(whole[1]!.id).toBe('stage"stage":"committed"');
    await unwatch();
    await unsubscribe();
    await log.close();
  });

  it('decodes only for full subscribers: with stage watchers alone, a message still yields its stage', async () => {
    const log = new RedisAckLog(redis, prefix);
    const stages: AckStage[] = [];
    await log.watchStages((s) => stages.push(s));
    await log.append(route, draft('rejected'));
    await eventually('published', async () => stages.length === 1);
    expect(stages).toEqual(['rejected']);
    await log.close();
  });

  it('gives each ack\'s stream partition key on demand, so a wake-up can go to the shard that holds the write', async () => {
    const log = new RedisAckLog(redis, prefix);
    const keys: string[] = [];
    await log.watchStages((_s, key) => keys.push(key()));
    const hostile = [
      { collection: 'tasks', id: 'a b' },
      { collection: 'notes', id: 'stage"stage":"committed"' }, // escaped: decoded in full
      { collection: 'c', id: 'x","collection":"evil' },
      { collection: 'ünï', id: '\\' },
      { collection: 'c', id: 'long'.repeat(100) }, // a hashed partition key
    ];
    await log.append({ tenant: 't/1', principal: 'bob' }, draft('queued', { idempotencyKey: ',"collection":"k","id":"k"', ...hostile[0]! }));
    for (const h of hostile.slice(1)) await log.append(route, draft('committed', h));
    await log.append(route, draft('rejected', { collection: 'r', id: 'r' }));
    await eventually('all published', async () => keys.length === hostile.length + 1);
    expect(keys).toEqual([
      partitionKey('t/1', 'tasks', 'a b'),
      ...hostile.slice(1).map((h) => partitionKey('acme', h.collection, h.id)),
      partitionKey('acme', 'r', 'r'),
    ]);
    await log.close();
  });
});
