/**
 * `queued` acks appended together: the puts of one PutRecords call resolve in the same event-loop
 * turn, so their acks are gathered until the end of that turn and appended with one `appendMany`
 * per principal (one Redis script call for a whole batch instead of one per write). Within a
 * principal the acks keep the order in which they were emitted. A log without `appendMany` gets
 * them one after another, in that order.
 */
import type { AckLog } from '../core/ack-log';
import type { Ack, AckDraft, AckRoute } from '../core/contracts';
import { type Pending, PerTurnGroups } from './per-turn';

type Waiting = Pending<{ route: AckRoute; draft: AckDraft }, Ack | null>;

export class QueuedAckBatcher {
  /** Per principal (tenant + sub), in emission order. */
  private readonly turn = new PerTurnGroups((_key, items: Waiting[]) => this.appendGroup(items));

  constructor(private readonly log: AckLog) {}

  append(route: AckRoute, draft: AckDraft): Promise<Ack | null> {
    return this.turn.add(`${route.tenant}\u0000${route.principal}`, { route, draft });
  }

  private async appendGroup(items: Waiting[]) {
    const { route } = items[0]!.value;
    if (this.log.appendMany && items.length > 1) {
      const out = await this.log.appendMany(route, items.map((w) => w.value.draft));
      items.forEach((w, i) => w.resolve(out[i] ?? null));
      return;
    }
    for (const w of items) {
      try {
        w.resolve(await this.log.append(route, w.value.draft));
      } catch (err) {
        w.reject(err);
      }
    }
  }
}
