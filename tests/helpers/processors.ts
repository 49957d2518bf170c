/**
 * Helpers for the processors' tests: commands put straight on the stream (so a test controls
 * request ids and can replay a record), the processors started with fault-injection wrappers,
 * and waits on PostgreSQL and the ack log.
 */
import { randomUUID } from 'node:crypto';
import { PutRecordCommand } from '@aws-sdk/client-kinesis';
import type { AckLog } from '../../core/ack-log';
import { createKinesis } from '../../core/aws';
import { loadConfig } from '../../core/config';
import type { Ack, AckDraft, AckRoute, Command } from '../../core/contracts';
import { partitionKey } from '../../core/keys';
import { RedisAckLog } from '../../core/redis-ack-log';
import type { RunningService } from '../../core/service';
import { ProcessorsConfig, type ProcessorsOverrides, startProcessors } from '../../processors/main';
import type { Stack } from './stack';

export const ROUTE: AckRoute = { tenant: 'acme', principal: 'alice' };

export function command(c: Partial<Command> & Pick<Command, 'kind' | 'id'>): Command {
  return {
    v: 1, requestId: randomUUID(), tenant: ROUTE.tenant, principal: ROUTE.principal, collection: 'notes',
    receivedAt: new Date().toISOString(), ...c,
  };
}

/** Puts records on the stream one after another (one item's records stay in order). */
export async function putOnStream(stack: Stack, ...records: Array<Command | Buffer>): Promise<void> {
  const kinesis = createKinesis({ region: 'us-east-1', endpoint: stack.emulators.kinesisEndpoint });
  try {
    for (const r of records) {
      const pk = Buffer.isBuffer(r) ? 'malformed' : partitionKey(r.tenant, r.collection, r.id);
      const data = Buffer.isBuffer(r) ? r : Buffer.from(JSON.stringify(r));
      await kinesis.send(new PutRecordCommand({ StreamName: stack.env.KINESIS_STREAM!, PartitionKey: pk, Data: data }));
    }
  } finally {
    kinesis.destroy();
  }
}

/** An ack log that remembers every final ack it stored or re-sent, in order. */
export class RecordingAckLog implements AckLog {
  readonly finals: Ack[] = [];
  constructor(readonly inner: AckLog) {}
  async append(route: AckRoute, draft: AckDraft) {
    const ack = await this.inner.append(route, draft);
    if (ack && draft.stage !== 'queued') this.finals.push(ack);
    return ack;
  }
  readAfter: AckLog['readAfter'] = (r, a, l) => this.inner.readAfter(r, a, l);
  subscribe: AckLog['subscribe'] = (l) => this.inner.subscribe(l);
  close = () => this.inner.close();
  of(requestId: string) {
    return this.finals.filter((a) => a.requestId === requestId);
  }
}

export async function startProcessorsWith(stack: Stack, overrides: ProcessorsOverrides = {}, env: Record<string, string> = {}): Promise<RunningService> {
  const running = await startProcessors(loadConfig(ProcessorsConfig, { ...stack.env, ...env }), overrides);
  stack.services.set('processors', running);
  return running;
}

export async function eventually<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The final acks the ack log holds for a principal (what a resuming client would get). */
export async function storedFinals(stack: Stack, route: AckRoute = ROUTE): Promise<Ack[]> {
  const log = new RedisAckLog(stack.redis, stack.redisPrefix);
  const res = await log.readAfter(route, 0, 10_000);
  return res.kind === 'acks' ? res.acks.filter((a) => a.stage !== 'queued') : [];
}

export async function finalAckOf(stack: Stack, requestId: string, timeoutMs = 15_000): Promise<Ack> {
  return eventually(`final ack of ${requestId}`, async () => (await storedFinals(stack)).find((a) => a.requestId === requestId), timeoutMs);
}

export async function requestRow(stack: Stack, requestId: string) {
  const res = await stack.pg.query('SELECT status, version, reason FROM requests WHERE request_id = $1', [requestId]);
  return res.rows[0] as { status: string; version: number | null; reason: { code: string; message: string } | null } | undefined;
}

export async function eventsOf(stack: Stack, id: string) {
  const res = await stack.pg.query('SELECT version, type, request_id FROM events WHERE collection = $1 AND item_id = $2 ORDER BY position', ['notes', id]);
  return res.rows as Array<{ version: number; type: string; request_id: string }>;
}
