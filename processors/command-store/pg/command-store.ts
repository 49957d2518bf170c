/**
 * The command store on PostgreSQL (the source of truth): decides commands (processors/decide.ts)
 * and writes a command's event, the item's new state and the request's status together, through
 * the statements of event-log.ts. The request id is unique, so a redelivered record changes
 * nothing and yields the outcome that was decided the first time.
 *
 * `executeBatch` decides a whole batch in one transaction with set-based statements (a handful of
 * round trips for hundreds of commands). If anything in it fails, nothing of it is committed and
 * the batch is redone one command per savepoint, so the commands before the failing one commit,
 * the failing one is reported, and no command is lost or applied twice.
 *
 * Writes to an item that has a parked (poison) record are held behind it, in order, in `parked`
 * (see processors/parking.ts); they are applied by `npm run dlq -- redrive`.
 */
import type { Pool, PoolClient } from 'pg';
import type { Command, ItemState, Rejection } from '../../../core/contracts';
import { decide } from '../../decide';
import { deterministicRejection } from '../../failures';
import type { BatchEntry, BatchOutcome, BatchResult, CommandStore, Outcome, ParkedInsert, ParkingStore } from '../port';
import {
  appendDecisions, applyQuotaChanges, cmdKey, eachInSavepoint, type EventRowJson, eventRow, insertParked, type ItemRow, type ItemRowJson, itemStateRow,
  loadContext, type PriorRow, QuotaChanges, recordRequest, redeliveredOutcome, requestRow, type RequestRowJson, toState, transaction,
} from './event-log';

export class PgCommandStore implements CommandStore, ParkingStore {
  constructor(private readonly pool: Pool) {}

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- rows are typed by the caller's SELECT
  query<R extends Record<string, any> = Record<string, any>>(text: string, values?: unknown[]) {
    return this.pool.query<R>(text, values);
  }

  recordRequest(tx: PoolClient, cmd: Command, status: 'committed' | 'rejected', version: number | null, reason: Rejection | null, decidedAt: string) {
    return recordRequest(tx, cmd, status, version, reason, decidedAt);
  }

  park(tx: PoolClient, rows: ParkedInsert[]): Promise<number> {
    return insertParked(tx, rows);
  }

  /** One command in its own transaction; does not look at parked items (redrive uses it per item). */
  async execute(cmd: Command): Promise<Outcome> {
    const out = await this.transaction((c) => this.executeIn(c, { cmd }, false));
    if (out.status === 'held') throw new Error('unreachable: parked items are not consulted');
    return out;
  }

  async executeBatch(entries: BatchEntry[]): Promise<BatchResult> {
    if (entries.length === 0) return { outcomes: [] };
    try {
      return { outcomes: await this.transaction((c) => this.batchIn(c, entries)) };
    } catch (err) {
      if (entries.length === 1 && !deterministicRejection(err)) return { outcomes: [], failure: { index: 0, error: err } };
      // Find the failing command: redo one command per savepoint (the fast attempt committed nothing).
      return this.transaction((c) => this.oneByOne(c, entries));
    }
  }

  /**
   * Read-only: the outcome each entry already has (as `executeBatch` would answer it again, with the
   * item's current state), `held` for a parked or held request, `undefined` for one not decided yet.
   * The projection consumer uses it to project what the commit consumer decided.
   */
  async lookupBatch(entries: BatchEntry[]): Promise<Array<BatchOutcome | undefined>> {
    if (entries.length === 0) return [];
    const { prior, parkedItems, parkedReqs, states } = await loadContext(this.pool, entries, false);
    return entries.map(({ cmd }) => {
      const p = prior.get(cmd.requestId);
      if (p) return redeliveredOutcome(p, states.get(cmdKey(cmd)));
      if (parkedReqs.has(cmd.requestId)) return { status: 'held', behind: parkedItems.get(cmdKey(cmd)) ?? cmd.requestId, redelivered: true };
      return undefined;
    });
  }

  transaction<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    return transaction(this.pool, work);
  }

  /**
   * Content the database can never store (processors/failures.ts) is rejected with
   * `invalid_document` (a final ack) and the batch goes on; any other failure stops it there.
   */
  private async oneByOne(client: PoolClient, entries: BatchEntry[]): Promise<BatchResult> {
    const outcomes: BatchOutcome[] = [];
    let rest = entries;
    while (rest.length) {
      const r = await this.inSavepoints(client, rest, true);
      outcomes.push(...r.outcomes);
      if (!r.failure) break;
      const failed = outcomes.length;
      const reason = deterministicRejection(r.failure.error);
      if (!reason) return { outcomes, failure: { index: failed, error: r.failure.error } };
      const decidedAt = new Date().toISOString();
      const rec = await eachInSavepoint(client, [rest[r.failure.index]!], (e) => recordRequest(client, e.cmd, 'rejected', null, reason, decidedAt));
      if (rec.failure) return { outcomes, failure: { index: failed, error: r.failure.error } };
      outcomes.push({ status: 'rejected', reason, decidedAt, redelivered: false });
      rest = rest.slice(r.failure.index + 1);
    }
    return { outcomes };
  }

  executeInOrder(tx: PoolClient, entries: BatchEntry[]): Promise<BatchResult> {
    return this.inSavepoints(tx, entries, false);
  }

  private async inSavepoints(client: PoolClient, entries: BatchEntry[], respectParked: boolean): Promise<BatchResult> {
    const { results, failure } = await eachInSavepoint(client, entries, (e) => this.executeIn(client, e, respectParked));
    return failure ? { outcomes: results, failure } : { outcomes: results };
  }

  /** The whole batch, set-based: read what it needs, decide in memory in order, write with multi-row statements. */
  private async batchIn(client: PoolClient, entries: BatchEntry[]): Promise<BatchOutcome[]> {
    const { prior, parkedItems, parkedReqs, states } = await loadContext(client, entries, true);

    const decidedAt = new Date().toISOString();
    const decidedHere = new Map<string, BatchOutcome>();
    const touched = new Set<string>();
    const ev: EventRowJson[] = [];
    const rq: RequestRowJson[] = [];
    const held: ParkedInsert[] = [];
    const outcomes: BatchOutcome[] = [];
    const quota = new QuotaChanges();

    for (const e of entries) {
      const cmd = e.cmd;
      const key = cmdKey(cmd);
      const again = decidedHere.get(cmd.requestId);
      if (again) {
        outcomes.push({ ...again, redelivered: true } as BatchOutcome);
        continue;
      }
      const p = prior.get(cmd.requestId);
      let out: BatchOutcome;
      if (p) {
        out = redeliveredOutcome(p, states.get(key));
        quota.decided(cmd);
      } else if (parkedReqs.has(cmd.requestId)) {
        out = { status: 'held', behind: parkedItems.get(key) ?? cmd.requestId, redelivered: true };
      } else if (parkedItems.has(key)) {
        out = { status: 'held', behind: parkedItems.get(key)!, redelivered: false };
        held.push({ entry: e, kind: 'held', error: `held behind parked request ${out.behind}` });
      } else {
        const decision = decide(cmd, states.get(key));
        quota.decided(cmd);
        if (decision.kind === 'reject') {
          out = { status: 'rejected', reason: decision.reason, decidedAt, redelivered: false };
          rq.push(requestRow(cmd, 'rejected', null, decision.reason, decidedAt));
        } else {
          const next: ItemState = {
            tenant: cmd.tenant, collection: cmd.collection, id: cmd.id,
            version: decision.version, deleted: decision.deleted, data: decision.data, updatedAt: decidedAt,
          };
          quota.changed(cmd.tenant, states.get(key), next);
          states.set(key, next);
          touched.add(key);
          ev.push(eventRow(cmd, decision.version, decision.type, decision.eventData, decidedAt));
          rq.push(requestRow(cmd, 'committed', decision.version, null, decidedAt));
          out = { status: 'committed', version: decision.version, decidedAt, state: next, redelivered: false };
        }
      }
      if (!out.redelivered) decidedHere.set(cmd.requestId, out);
      outcomes.push(out);
    }

    if (rq.length) {
      const it: ItemRowJson[] = [...touched].map((k) => itemStateRow(states.get(k)!));
      await appendDecisions(client, ev, it, rq);
    }
    await insertParked(client, held);
    await applyQuotaChanges(client, quota);
    return outcomes;
  }

  /** One command inside the caller's transaction. `respectParked`: hold it if its item has a parked record. */
  async executeIn(client: PoolClient, e: BatchEntry, respectParked: boolean): Promise<BatchOutcome> {
    const cmd = e.cmd;
    const prior = await this.priorOutcome(client, cmd);
    if (prior) return prior;

    if (respectParked) {
      const p = await client.query<{ request_id: string }>(
        `SELECT request_id FROM parked WHERE request_id = $4 OR (tenant = $1 AND collection = $2 AND item_id = $3)
          ORDER BY id LIMIT 1`,
        [cmd.tenant, cmd.collection, cmd.id, cmd.requestId],
      );
      const first = p.rows[0];
      if (first) {
        const added = await insertParked(client, [{ entry: e, kind: 'held', error: `held behind parked request ${first.request_id}` }]);
        return { status: 'held', behind: first.request_id, redelivered: added === 0 };
      }
    }

    const row = await client.query<ItemRow>(
      'SELECT version, deleted, data, updated_at FROM items WHERE tenant = $1 AND collection = $2 AND item_id = $3 FOR UPDATE',
      [cmd.tenant, cmd.collection, cmd.id],
    );
    const state = row.rows[0] ? toState(cmd, row.rows[0]) : undefined;
    const decision = decide(cmd, state);
    const decidedAt = new Date().toISOString();
    const quota = new QuotaChanges();
    quota.decided(cmd);

    if (decision.kind === 'reject') {
      await recordRequest(client, cmd, 'rejected', null, decision.reason, decidedAt);
      await applyQuotaChanges(client, quota);
      return { status: 'rejected', reason: decision.reason, decidedAt, redelivered: false };
    }

    const next: ItemState = {
      tenant: cmd.tenant, collection: cmd.collection, id: cmd.id,
      version: decision.version, deleted: decision.deleted, data: decision.data, updatedAt: decidedAt,
    };
    await appendDecisions(client, [eventRow(cmd, decision.version, decision.type, decision.eventData, decidedAt)], [itemStateRow(next)],
      [requestRow(cmd, 'committed', decision.version, null, decidedAt)]);
    quota.changed(cmd.tenant, state, next);
    await applyQuotaChanges(client, quota);
    return { status: 'committed', version: decision.version, decidedAt, state: next, redelivered: false };
  }

  /** A request decided before (a redelivered record): its outcome, with the item's current state to re-project. */
  private async priorOutcome(client: PoolClient, cmd: Command): Promise<Outcome | undefined> {
    const res = await client.query<PriorRow>(
      'SELECT request_id, status, version, reason, decided_at FROM requests WHERE request_id = $1',
      [cmd.requestId],
    );
    const prior = res.rows[0];
    if (!prior) return undefined;
    const decidedAt = prior.decided_at.toISOString();
    if (prior.status === 'rejected') {
      return { status: 'rejected', reason: prior.reason!, decidedAt, redelivered: true };
    }
    const row = await client.query<ItemRow>(
      'SELECT version, deleted, data, updated_at FROM items WHERE tenant = $1 AND collection = $2 AND item_id = $3',
      [cmd.tenant, cmd.collection, cmd.id],
    );
    return { status: 'committed', version: prior.version!, decidedAt, state: toState(cmd, row.rows[0]!), redelivered: true };
  }
}

