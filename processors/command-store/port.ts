/**
 * The command store: decides each command against its item's current state and writes the event,
 * the new state and the request's status together (the write side's source of truth). The request
 * id is unique, so a redelivered record changes nothing and yields the outcome decided the first time.
 */
import type { PoolClient } from 'pg';
import type { Command, Rejection } from '../../core/contracts';
import type { DecidedOutcome } from '../../core/projections';

/** A command's outcome; `redelivered`: decided before (a redelivered record), not now. */
export type Outcome = DecidedOutcome & { redelivered: boolean };

/** Not applied: an earlier write of the same item is parked, so this one waits behind it. */
export interface Held {
  status: 'held';
  behind: string;
  redelivered: boolean;
}
export type BatchOutcome = Outcome | Held;

export interface BatchEntry {
  cmd: Command;
  shardId?: string | undefined;
  sequenceNumber?: string | undefined;
}

export interface BatchResult {
  /** Outcomes of entries [0, outcomes.length): all committed. */
  outcomes: BatchOutcome[];
  /** The entry that failed; nothing from it on was committed. */
  failure?: { index: number; error: unknown };
}

export interface CommandStore {
  execute(command: Command): Promise<Outcome>;
  executeBatch(entries: BatchEntry[]): Promise<BatchResult>;
}

/** What the parking lot (processors/parking.ts) needs of a command store's database. */
export interface ParkingStore {
  /** One statement outside a transaction. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- rows are typed by the caller's SELECT
  query<R extends Record<string, any> = Record<string, any>>(text: string, values?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }>;
  transaction<T>(work: (tx: PoolClient) => Promise<T>): Promise<T>;
  /**
   * Commands in order inside the caller's transaction, each under its own savepoint, without
   * looking at parked items; stops at the first failure (what came before it still commits).
   */
  executeInOrder(tx: PoolClient, entries: BatchEntry[]): Promise<BatchResult>;
  /** Records a decision for a request without an event (an operator's discard of a parked write). */
  recordRequest(tx: PoolClient, cmd: Command, status: 'committed' | 'rejected', version: number | null, reason: Rejection | null, decidedAt: string): Promise<void>;
  /** Parks commands (poison or held), keeping their order; answers how many were new. */
  park(tx: PoolClient, rows: ParkedInsert[]): Promise<number>;
}

export interface ParkedInsert {
  entry: BatchEntry;
  kind: 'poison' | 'held';
  error: string;
  attempts?: number;
}
