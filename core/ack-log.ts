/**
 * The ack log: the one place acks are appended (gateway: `queued`; processors: final), given a
 * per-principal cursor, retained for resume, and fanned out live to every ack-service instance.
 *
 * Its rules, kept by every adapter:
 * - cursors grow per principal (tenant + sub);
 * - a `queued` ack appended after the request's final ack is dropped, so no client can see
 *   `queued` after `committed`/`rejected`;
 * - a final ack appended twice (a redelivered record) is not stored twice: the stored one is returned
 *   and published again with its original cursor, so live clients that missed it get it and the
 *   others drop it as already seen.
 */
import { z } from 'zod';
import type { Ack, AckDraft, AckRoute, AckStage } from './contracts';

export type ReadAfterResult =
  | { kind: 'acks'; acks: Ack[] }
  /** The cursor is older than the retained history, or the history was lost. */
  | { kind: 'reset'; reason: 'expired' | 'lost'; detail: string };

/**
 * `json` is the ack as sent to clients, exactly `JSON.stringify(ack)` (cursor last), built once per
 * ack by the adapter so the fan-out does not stringify it again per ack.
 */
export type AckListener = (route: AckRoute, ack: Ack, json: string) => void;

/**
 * `JSON.stringify({ ...draft, cursor })` from `JSON.stringify(draft)` without parsing it: the
 * cursor spliced in before the closing brace. `draftJson` must come from {@link draftJson}.
 */
export function withCursor(draftJson: string, cursor: number | string): string {
  return draftJson.length > 2 ? `${draftJson.slice(0, -1)},"cursor":${cursor}}` : `{"cursor":${cursor}}`;
}

/** A draft's JSON for {@link withCursor}: a stray `cursor` key is dropped (the log gives the cursor). */
export function draftJson(draft: AckDraft): string {
  return JSON.stringify('cursor' in draft ? { ...draft, cursor: undefined } : draft);
}

export interface AckLog {
  /** Appends an ack; resolves to the stored ack, or null when a `queued` came after the final. */
  append(route: AckRoute, draft: AckDraft): Promise<Ack | null>;
  /**
   * Appends several acks of one principal in order, atomically where the backend can (one call,
   * all or nothing, so a failure cannot leave a later ack stored before an earlier one). Optional:
   * callers fall back to `append` one after another.
   */
  appendMany?(route: AckRoute, drafts: AckDraft[]): Promise<Array<Ack | null>>;
  /** The retained acks with cursor > `after` (at most `limit`, oldest first). `after = 0` means all retained. */
  readAfter(route: AckRoute, after: number, limit: number): Promise<ReadAfterResult>;
  /**
   * Live acks of every principal, in append order. `onGap` is called when live delivery was
   * interrupted (the subscription was lost and is back): acks published meanwhile were missed and
   * must be read from the history with readAfter. `onGapStart` is called when live delivery stops
   * (before anything can be missed), so a subscriber can hold back live acks until it has caught up.
   */
  subscribe(listener: AckListener, onGap?: () => void, onGapStart?: () => void): Promise<() => Promise<void>>;
  /**
   * Optional, for a subscriber that needs only each live ack's stage (the processors' wake-ups):
   * like `subscribe`, without decoding each ack (where the backend can skip that). `partitionKey`
   * decodes it on demand: the stream partition key of the ack's item (core/keys.ts `partitionKey`),
   * so a wake-up can go to the one shard that holds the write. Callers fall back to `subscribe`.
   */
  watchStages?(listener: (stage: AckStage, partitionKey: () => string) => void, onGap?: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface AckRetention {
  /** How long acks are kept after a principal's last ack. */
  seconds: number;
  /** At most this many acks per principal. */
  maxPerPrincipal: number;
}

export const DEFAULT_RETENTION: AckRetention = { seconds: 24 * 3600, maxPerPrincipal: 10_000 };

/** Env fragment for every process that appends acks (the window is applied at append time). */
export const AckRetentionEnv = z.object({
  /** How long acks stay in a principal's history (for resumes with ?after=). */
  ACK_RETENTION_SECONDS: z.coerce.number().int().positive().default(DEFAULT_RETENTION.seconds),
  /** Most acks kept per principal; older ones are trimmed. */
  ACK_MAX_PER_PRINCIPAL: z.coerce.number().int().positive().default(DEFAULT_RETENTION.maxPerPrincipal),
});
export const retentionFrom = (c: z.infer<typeof AckRetentionEnv>): AckRetention => ({
  seconds: c.ACK_RETENTION_SECONDS,
  maxPerPrincipal: c.ACK_MAX_PER_PRINCIPAL,
});

/**
 * A first cursor derived from the clock: if a principal's history is lost, its new cursors still
 * start above every cursor it was given before, so an old cursor is recognisably "before history".
 */
export const firstCursor = (nowMs: number) => nowMs * 1000;

/** In-process ack log for single-node runs without Redis; same rules, one process only. */
export class MemoryAckLog implements AckLog {
  private readonly routes = new Map<string, { head: number; acks: Ack[]; finals: Map<string, Ack>; touched: number }>();
  private readonly listeners = new Set<AckListener>();

  constructor(private readonly retention: AckRetention = DEFAULT_RETENTION) {}

  private key(route: AckRoute) {
    return `${route.tenant}\u0000${route.principal}`;
  }

  private live(route: AckRoute) {
    const entry = this.routes.get(this.key(route));
    if (entry && Date.now() - entry.touched > this.retention.seconds * 1000) {
      this.routes.delete(this.key(route));
      return undefined;
    }
    return entry;
  }

  async append(route: AckRoute, draft: AckDraft): Promise<Ack | null> {
    let entry = this.live(route);
    if (!entry) {
      entry = { head: firstCursor(Date.now()) - 1, acks: [], finals: new Map(), touched: Date.now() };
      this.routes.set(this.key(route), entry);
    }
    const prior = entry.finals.get(draft.requestId);
    if (prior) {
      if (draft.stage !== 'queued') this.emit(route, prior);
      return draft.stage === 'queued' ? null : prior;
    }
    const ack: Ack = { ...draft, cursor: ++entry.head };
    entry.acks.push(ack);
    if (entry.acks.length > this.retention.maxPerPrincipal) entry.acks.shift();
    if (draft.stage !== 'queued') entry.finals.set(draft.requestId, ack);
    entry.touched = Date.now();
    this.emit(route, ack);
    return ack;
  }

  private emit(route: AckRoute, ack: Ack) {
    const json = JSON.stringify(ack);
    for (const l of this.listeners) l(route, ack, json);
  }

  async readAfter(route: AckRoute, after: number, limit: number): Promise<ReadAfterResult> {
    const entry = this.live(route);
    if (!entry) {
      if (after === 0) return { kind: 'acks', acks: [] };
      return { kind: 'reset', reason: 'lost', detail: 'No ack history is retained for this principal.' };
    }
    const oldest = entry.acks[0]?.cursor ?? entry.head + 1;
    if (after !== 0 && (after > entry.head || after + 1 < oldest)) {
      return after > entry.head
        ? { kind: 'reset', reason: 'lost', detail: `Cursor ${after} is not from the current ack history.` }
        : { kind: 'reset', reason: 'expired', detail: `Cursor ${after} is older than the retained history (oldest ${oldest}).` };
    }
    return { kind: 'acks', acks: entry.acks.filter((a) => a.cursor > after).slice(0, limit) };
  }

  async subscribe(listener: AckListener) {
    this.listeners.add(listener);
    return async () => {
      this.listeners.delete(listener);
    };
  }

  async close() {
    this.listeners.clear();
  }
}
