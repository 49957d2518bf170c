/**
 * Ack log on Redis: one stream per principal (history for resume, trimmed by count and expired
 * with the principal's inactivity), one pub/sub channel for live fan-out to every ack-service
 * instance. Append is one Lua script, so the cursor, the queued-after-final rule and the publish
 * happen atomically and in one order.
 */
import type { Redis } from 'ioredis';
import type { Ack, AckDraft, AckRoute, AckStage } from './contracts';
import { type AckListener, type AckLog, type AckRetention, DEFAULT_RETENTION, draftJson, type ReadAfterResult, withCursor } from './ack-log';
import { partitionKey, RedisKeys } from './keys';

// Appends acks of one principal, in order, in one atomic call (one ack or a batch's).
// KEYS: stream, counter, final marker 1..N. ARGV: maxlen, ttl s, now ms, channel, route JSON, then
// stage and body (JSON without cursor) per ack. Returns one entry per ack: -1 (a queued after its
// final: dropped), the stored message (a final appended again), or the new cursor (the caller has
// the body already, so it is not sent back).
const APPEND_MANY = `
local out = {}
for i = 3, #KEYS do
  local stage = ARGV[6 + (i - 3) * 2]
  local body = ARGV[7 + (i - 3) * 2]
  local final = KEYS[i]
  local result
  if stage == 'queued' and redis.call('EXISTS', final) == 1 then
    result = -1
  else
    local prev = false
    if stage ~= 'queued' then prev = redis.call('GET', final) end
    if prev then
      redis.call('PUBLISH', ARGV[4], prev)
      result = prev
    else
      local n = redis.call('INCR', KEYS[2])
      if n == 1 then
        n = tonumber(ARGV[3]) * 1000
        redis.call('SET', KEYS[2], string.format('%d', n))
      end
      local cursor = string.format('%d', n)
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], cursor .. '-1', 'c', cursor, 'a', body)
      local msg = ARGV[5] .. '\\n' .. cursor .. '\\n' .. body
      if stage ~= 'queued' then redis.call('SET', final, msg, 'EX', ARGV[2]) end
      redis.call('PUBLISH', ARGV[4], msg)
      result = n
    end
  end
  out[#out + 1] = result
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return out
`;

// KEYS: stream, counter. ARGV: after, count. Returns {'reset', reason} or {'acks', c1, a1, c2, a2, ...}.
const READ_AFTER = `
local after = tonumber(ARGV[1])
local head = redis.call('GET', KEYS[2])
if not head then
  if after == 0 then return {'acks'} end
  return {'reset', 'lost'}
end
head = tonumber(head)
if after > head then return {'reset', 'lost'} end
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local oldest = head + 1
if first[1] then oldest = tonumber(first[1][2][2]) end
if after ~= 0 and after + 1 < oldest then return {'reset', 'expired', string.format('%d', oldest)} end
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1] .. '-1', '+', 'COUNT', ARGV[2])
local out = {'acks'}
for _, e in ipairs(entries) do
  out[#out + 1] = e[2][2]
  out[#out + 1] = e[2][4]
end
return out
`;

type Scripted = Redis & {
  ackReadAfter(s: string, c: string, after: string, count: string): Promise<string[]>;
  ackAppendMany(numKeys: number, ...keysAndArgs: string[]): Promise<Array<string | number>>;
};

export class RedisAckLog implements AckLog {
  private readonly keys: RedisKeys;
  private subscriber: Redis | undefined;
  private readonly listeners = new Set<AckListener>();
  private readonly stageListeners = new Set<(stage: AckStage, partitionKey: () => string) => void>();
  private readonly gapListeners = new Set<() => void>();
  private readonly gapStartListeners = new Set<() => void>();
  private readonly maxlen: string;
  private readonly ttl: string;
  private readonly channel: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly retention: AckRetention = DEFAULT_RETENTION,
  ) {
    this.keys = new RedisKeys(prefix);
    this.maxlen = String(retention.maxPerPrincipal);
    this.ttl = String(retention.seconds);
    this.channel = this.keys.ackChannel();
    if (!('ackAppendMany' in redis)) {
      redis.defineCommand('ackReadAfter', { numberOfKeys: 2, lua: READ_AFTER });
      // Variable key count: the caller passes it first.
      redis.defineCommand('ackAppendMany', { lua: APPEND_MANY });
    }
  }

  private get r(): Scripted {
    return this.redis as Scripted;
  }

  async append(route: AckRoute, draft: AckDraft): Promise<Ack | null> {
    return (await this.appendMany(route, [draft]))[0]!;
  }

  async appendMany(route: AckRoute, drafts: AckDraft[]): Promise<Array<Ack | null>> {
    if (drafts.length === 0) return [];
    const keys = [
      this.keys.ackStream(route.tenant, route.principal),
      this.keys.ackCounter(route.tenant, route.principal),
      ...drafts.map((d) => this.keys.ackFinal(route.tenant, route.principal, d.requestId)),
    ];
    const args = [this.maxlen, this.ttl, String(Date.now()), this.channel, JSON.stringify([route.tenant, route.principal])];
    for (const d of drafts) args.push(d.stage, draftJson(d));
    const out = await this.r.ackAppendMany(keys.length, ...keys, ...args);
    return out.map((r, i) => (r === -1 ? null : typeof r === 'number' ? ackFromDraft(drafts[i]!, r) : decodeMessage(r).ack));
  }

  async readAfter(route: AckRoute, after: number, limit: number): Promise<ReadAfterResult> {
    const out = await this.r.ackReadAfter(
      this.keys.ackStream(route.tenant, route.principal),
      this.keys.ackCounter(route.tenant, route.principal),
      String(after),
      String(limit),
    );
    if (out[0] === 'reset') {
      return out[1] === 'expired'
        ? { kind: 'reset', reason: 'expired', detail: `Cursor ${after} is older than the retained history (oldest ${out[2]}).` }
        : { kind: 'reset', reason: 'lost', detail: `Cursor ${after} is not from the current ack history.` };
    }
    const acks: Ack[] = [];
    for (let i = 1; i + 1 < out.length; i += 2) {
      acks.push({ ...(JSON.parse(out[i + 1]!) as AckDraft), cursor: Number(out[i]) });
    }
    return { kind: 'acks', acks };
  }

  async subscribe(listener: AckListener, onGap?: () => void, onGapStart?: () => void): Promise<() => Promise<void>> {
    this.listeners.add(listener);
    if (onGap) this.gapListeners.add(onGap);
    if (onGapStart) this.gapStartListeners.add(onGapStart);
    await this.ensureSubscribed();
    return async () => {
      this.listeners.delete(listener);
      if (onGap) this.gapListeners.delete(onGap);
      if (onGapStart) this.gapStartListeners.delete(onGapStart);
    };
  }

  /**
   * Each live ack's stage, read from the message without decoding it (the processors' wake-ups: two
   * messages per write, which a full decode parses as JSON twice over for a one-word answer).
   */
  async watchStages(listener: (stage: AckStage, partitionKey: () => string) => void, onGap?: () => void): Promise<() => Promise<void>> {
    this.stageListeners.add(listener);
    if (onGap) this.gapListeners.add(onGap);
    await this.ensureSubscribed();
    return async () => {
      this.stageListeners.delete(listener);
      if (onGap) this.gapListeners.delete(onGap);
    };
  }

  private async ensureSubscribed(): Promise<void> {
    if (!this.subscriber) {
      const sub = this.redis.duplicate();
      this.subscriber = sub;
      const channel = this.keys.ackChannel();
      sub.on('message', (_channel: string, msg: string) => {
        if (this.stageListeners.size) {
          const stage = stageOf(msg);
          const key = () => partitionKeyOf(msg);
          for (const l of this.stageListeners) l(stage, key);
        }
        if (this.listeners.size === 0) return;
        const { route, ack, json } = decodeMessage(msg);
        for (const l of this.listeners) l(route, ack, json);
      });
      // Pub/sub is fire-and-forget: whatever was published while the connection was down is lost
      // for live delivery. When it drops, subscribers are told at once (they hold live acks back);
      // when it is back, the gap is reported only once the channel is subscribed again: ioredis
      // emits 'ready' before it re-sends SUBSCRIBE, and an ack published between a history read
      // and the subscription would otherwise be in neither.
      let connected = false;
      let inGap = false;
      sub.on('close', () => {
        if (!connected || inGap) return;
        inGap = true;
        for (const g of this.gapStartListeners) g();
      });
      const resubscribe = () => {
        if (!inGap || sub.status !== 'ready') return; // not connected: the next 'ready' comes back here
        sub.subscribe(channel).then(
          () => {
            inGap = false;
            for (const g of this.gapListeners) g();
          },
          () => setTimeout(resubscribe, 200), // never leave the gap open while connected
        );
      };
      sub.on('ready', () => {
        if (connected) resubscribe();
      });
      await sub.subscribe(channel);
      connected = true;
    }
  }

  async close(): Promise<void> {
    this.listeners.clear();
    this.stageListeners.clear();
    this.gapListeners.clear();
    this.gapStartListeners.clear();
    if (this.subscriber) {
      this.subscriber.disconnect();
      this.subscriber = undefined;
    }
  }
}

/** The stored ack as its JSON would read back (undefined fields absent, cursor last), without a JSON round trip. */
function ackFromDraft(draft: AckDraft, cursor: number): Ack {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(draft)) {
    const v = (draft as unknown as Record<string, unknown>)[k];
    if (v !== undefined && k !== 'cursor') out[k] = v;
  }
  out.cursor = cursor;
  return out as unknown as Ack;
}

/**
 * The stage of a published message, without parsing it: the first `"stage":"` in the draft JSON.
 * JSON escapes every quote inside a string, so that text can only be a key; drafts (draftJson) put
 * `stage` right after `type`. Anything unexpected falls back to the full decode.
 */
function stageOf(msg: string): AckStage {
  const b = msg.indexOf('\n', msg.indexOf('\n') + 1);
  const at = msg.indexOf('"stage":"', b + 1);
  if (at >= 0) {
    const from = at + 9;
    const stage = msg.slice(from, msg.indexOf('"', from));
    if (stage === 'queued' || stage === 'committed' || stage === 'rejected') return stage;
  }
  return decodeMessage(msg).ack.stage;
}

/**
 * The stream partition key of a published ack's item (see watchStages), read from the message
 * without decoding the whole ack where the names hold no escapes (else decoded).
 */
function partitionKeyOf(msg: string): string {
  const a = msg.indexOf('\n');
  const b = msg.indexOf('\n', a + 1);
  const collection = plainField(msg, b + 1, 'collection');
  const id = collection === undefined ? undefined : plainField(msg, b + 1, 'id');
  if (collection !== undefined && id !== undefined) return partitionKey((JSON.parse(msg.slice(0, a)) as [string])[0], collection, id);
  const { route, ack } = decodeMessage(msg);
  return partitionKey(route.tenant, ack.collection, ack.id);
}

/**
 * A top-level string field of compact JSON (JSON.stringify's), when its value has no escapes;
 * else undefined. A quote inside a string is always escaped, so `"name":"` after `{` or `,` is a key.
 */
function plainField(json: string, from: number, name: string): string | undefined {
  const needle = `"${name}":"`;
  for (let at = json.indexOf(needle, from); at !== -1; at = json.indexOf(needle, at + 1)) {
    if (json[at - 1] !== ',' && json[at - 1] !== '{') continue;
    const start = at + needle.length;
    const end = json.indexOf('"', start);
    const value = end === -1 ? '\\' : json.slice(start, end);
    return value.includes('\\') ? undefined : value;
  }
  return undefined;
}

/** A published message: `<route JSON>\n<cursor>\n<draft JSON>` (see APPEND_MANY). */
function decodeMessage(msg: string): { route: AckRoute; ack: Ack; json: string } {
  const a = msg.indexOf('\n');
  const b = msg.indexOf('\n', a + 1);
  const [tenant, principal] = JSON.parse(msg.slice(0, a)) as [string, string];
  const body = msg.slice(b + 1);
  const cursor = msg.slice(a + 1, b);
  // Bodies are written by draftJson (no cursor key), so adding the field keeps JSON.stringify's order.
  const ack = JSON.parse(body) as Ack;
  ack.cursor = Number(cursor);
  return { route: { tenant, principal }, ack, json: withCursor(body, cursor) };
}
