/**
 * The write side's store (PostgreSQL, the source of truth): one command's event, the item's new
 * state and the request's status commit in one transaction. The request id is unique, so a
 * replayed record changes nothing and yields the outcome that was decided the first time.
 */
import type { Pool, PoolClient } from 'pg';
import type { Command, ItemState, JsonObject, Rejection } from '../core/contracts';
import { decide } from './decide';

export type Outcome =
  | { status: 'committed'; version: number; decidedAt: string; state: ItemState; replayed: boolean }
  | { status: 'rejected'; reason: Rejection; decidedAt: string; replayed: boolean };

export interface EventStore {
  execute(command: Command): Promise<Outcome>;
}

interface ItemRow {
  version: number;
  deleted: boolean;
  data: JsonObject | null;
  updated_at: Date;
}

export class PgEventStore implements EventStore {
  constructor(private readonly pool: Pool) {}

  async execute(cmd: Command): Promise<Outcome> {
    const client = await this.pool.connect();
    // A checked-out client has no pool error listener: a connection reset between two queries
    // would be an unhandled 'error' event and kill the process. Keep it, and discard the client.
    let lost: Error | undefined;
    const onError = (err: Error) => {
      lost = err;
    };
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const outcome = await this.executeIn(client, cmd);
      await client.query('COMMIT');
      return outcome;
    } catch (err) {
      lost ??= err as Error;
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.off('error', onError);
      // After any failure the connection's state is unknown: destroy it rather than reuse it.
      client.release(lost);
    }
  }

  private async executeIn(client: PoolClient, cmd: Command): Promise<Outcome> {
    const prior = await this.priorOutcome(client, cmd);
    if (prior) return prior;

    const row = await client.query<ItemRow>(
      'SELECT version, deleted, data, updated_at FROM items WHERE tenant = $1 AND collection = $2 AND item_id = $3 FOR UPDATE',
      [cmd.tenant, cmd.collection, cmd.id],
    );
    const state = row.rows[0] ? toState(cmd, row.rows[0]) : undefined;
    const decision = decide(cmd, state);
    const decidedAt = new Date().toISOString();

    if (decision.kind === 'reject') {
      await this.recordRequest(client, cmd, 'rejected', null, decision.reason, decidedAt);
      return { status: 'rejected', reason: decision.reason, decidedAt, replayed: false };
    }

    await client.query(
      `INSERT INTO events (tenant, collection, item_id, version, type, data, request_id, idempotency_key, principal, trace_id, recorded_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
      [cmd.tenant, cmd.collection, cmd.id, decision.version, decision.type, json(decision.eventData), cmd.requestId,
        cmd.idempotencyKey ?? null, cmd.principal, cmd.traceId ?? null, decidedAt],
    );
    await client.query(
      `INSERT INTO items (tenant, collection, item_id, version, deleted, data, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (tenant, collection, item_id) DO UPDATE SET version = EXCLUDED.version, deleted = EXCLUDED.deleted,
         data = EXCLUDED.data, updated_at = EXCLUDED.updated_at`,
      [cmd.tenant, cmd.collection, cmd.id, decision.version, decision.deleted, json(decision.data), decidedAt],
    );
    await this.recordRequest(client, cmd, 'committed', decision.version, null, decidedAt);
    const next: ItemState = {
      tenant: cmd.tenant, collection: cmd.collection, id: cmd.id,
      version: decision.version, deleted: decision.deleted, data: decision.data, updatedAt: decidedAt,
    };
    return { status: 'committed', version: decision.version, decidedAt, state: next, replayed: false };
  }

  /** A request decided before (a replayed record): its outcome, with the item's current state to re-project. */
  private async priorOutcome(client: PoolClient, cmd: Command): Promise<Outcome | undefined> {
    const res = await client.query<{ status: string; version: number | null; reason: Rejection | null; decided_at: Date }>(
      'SELECT status, version, reason, decided_at FROM requests WHERE request_id = $1',
      [cmd.requestId],
    );
    const prior = res.rows[0];
    if (!prior) return undefined;
    const decidedAt = prior.decided_at.toISOString();
    if (prior.status === 'rejected') {
      return { status: 'rejected', reason: prior.reason!, decidedAt, replayed: true };
    }
    const row = await client.query<ItemRow>(
      'SELECT version, deleted, data, updated_at FROM items WHERE tenant = $1 AND collection = $2 AND item_id = $3',
      [cmd.tenant, cmd.collection, cmd.id],
    );
    return { status: 'committed', version: prior.version!, decidedAt, state: toState(cmd, row.rows[0]!), replayed: true };
  }

  private async recordRequest(
    client: PoolClient,
    cmd: Command,
    status: 'committed' | 'rejected',
    version: number | null,
    reason: Rejection | null,
    decidedAt: string,
  ) {
    await client.query(
      `INSERT INTO requests (request_id, tenant, principal, collection, item_id, status, version, reason, idempotency_key, decided_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [cmd.requestId, cmd.tenant, cmd.principal, cmd.collection, cmd.id, status, version, json(reason), cmd.idempotencyKey ?? null, decidedAt],
    );
  }
}

function toState(cmd: Command, row: ItemRow): ItemState {
  return {
    tenant: cmd.tenant, collection: cmd.collection, id: cmd.id,
    version: row.version, deleted: row.deleted, data: row.data, updatedAt: row.updated_at.toISOString(),
  };
}

// pg sends JS objects as JSON, but arrays as PostgreSQL arrays: serialise explicitly.
const json = (v: unknown) => (v === null || v === undefined ? null : JSON.stringify(v));
