/**
 * Rebuild source `--from stream`: the commands in the stream's retention window, decided again in
 * memory with the write side's pure `decide`, per item in stream order (one item's commands share
 * a shard). Without --since it starts from nothing (TRIM_HORIZON: only right when the window holds
 * the whole history); with --since it starts from AT_TIMESTAMP on top of a copy of the live version.
 * Document times are the records' arrival times (the original decision times are not on the stream).
 */
import { listShards } from '../../core/kinesis-shards';
import { GetRecordsCommand, type KinesisClient, type Shard } from '@aws-sdk/client-kinesis';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Command, ItemState } from '../../core/contracts';
import { CommandSchema } from '../../core/contracts';
import type { DurableStore } from '../../core/read-store';
import { decide } from '../decide';
import { stateFromDocument } from '../../core/projections';
import { shardIterator } from './reprocess';

export interface StreamSourceOptions {
  kinesis: KinesisClient;
  stream: string;
  since?: Date;
  /** Reads stop at records that arrived after this moment (the command's start). */
  until: Date;
  log: (line: string) => void;
}

/** Copies the live items table into the new one (version-guarded puts), for a --since rebuild. */
export async function copyTable(doc: DynamoDBDocumentClient, from: string, to: DurableStore, onItem?: () => void): Promise<number> {
  let start: Record<string, unknown> | undefined;
  let n = 0;
  do {
    const out = await doc.send(new ScanCommand({ TableName: from, ConsistentRead: true, ...(start ? { ExclusiveStartKey: start } : {}) }));
    await Promise.all((out.Items ?? []).map(async (it) => {
      const [tenant, collection] = String(it.pk).split('#') as [string, string];
      await to.putItem({ tenant, collection, id: String(it.id), version: Number(it.version), updatedAt: String(it.updatedAt), json: it.deleted ? null : String(it.doc) });
      n++;
      onItem?.();
    }));
    start = out.LastEvaluatedKey;
  } while (start);
  return n;
}

/** Folds the stream's commands into final item states; `base` gives an item's state before the range. */
export async function foldStream(o: StreamSourceOptions, base: (cmd: Command) => Promise<ItemState | undefined>): Promise<{ states: ItemState[]; records: number }> {
  const shards = await listShards(o.kinesis, o.stream);
  const states = new Map<string, ItemState | undefined>();
  let records = 0;
  const ids = new Set(shards.map((s) => s.ShardId!));
  const done = new Set<string>();
  // Parents first, so an item's commands are decided in order across a reshard.
  const order: Shard[] = [];
  while (order.length < shards.length) {
    const before = order.length;
    for (const s of shards) {
      if (done.has(s.ShardId!)) continue;
      if ([s.ParentShardId, s.AdjacentParentShardId].every((p) => !p || !ids.has(p) || done.has(p))) {
        order.push(s);
        done.add(s.ShardId!);
      }
    }
    if (order.length === before) break;
  }
  for (const shard of order) {
    let it = await shardIterator(o.kinesis, o.stream, shard.ShardId!, o.since, o.log);
    while (it) {
      const out = await o.kinesis.send(new GetRecordsCommand({ ShardIterator: it, Limit: 1000 }));
      const recs = out.Records ?? [];
      let past = false;
      for (const r of recs) {
        const at = r.ApproximateArrivalTimestamp ?? new Date();
        if (at.getTime() >= o.until.getTime()) { past = true; break; }
        if (o.since && at.getTime() < o.since.getTime()) continue;
        let cmd: Command;
        try {
          const parsed = CommandSchema.safeParse(JSON.parse(Buffer.from(r.Data ?? new Uint8Array()).toString('utf8')));
          if (!parsed.success) continue;
          cmd = parsed.data;
        } catch {
          continue; // a malformed record changed nothing the first time either
        }
        records++;
        const k = `${cmd.tenant}\u0000${cmd.collection}\u0000${cmd.id}`;
        const state = states.has(k) ? states.get(k) : await base(cmd);
        const d = decide(cmd, state);
        if (d.kind === 'accept') {
          states.set(k, { tenant: cmd.tenant, collection: cmd.collection, id: cmd.id, version: d.version, deleted: d.deleted, data: d.data, updatedAt: at.toISOString() });
        } else states.set(k, state);
      }
      if (past || !out.NextShardIterator || (recs.length === 0 && (out.MillisBehindLatest ?? 0) === 0)) break;
      it = out.NextShardIterator;
    }
  }
  o.log(`stream folded: ${records} commands over ${states.size} items`);
  return { states: [...states.values()].filter((s): s is ItemState => !!s), records };
}

/** An item's state as a store holds it (the base of a --since stream rebuild). */
export async function stateFromStore(store: DurableStore, cmd: Command): Promise<ItemState | undefined> {
  const got = await store.getItem(cmd.tenant, cmd.collection, cmd.id);
  if (!got) return undefined;
  const s = stateFromDocument(cmd.tenant, cmd.collection, cmd.id, got.version, new Date(0).toISOString(), got.json);
  return s;
}
