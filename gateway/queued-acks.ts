/**
 * `queued` acks appended together: the puts of one PutRecords call resolve in the same event-loop
 * turn, so their acks are gathered until the end of that turn and appended with one `appendMany`
 * per principal (one Redis script call for a whole batch instead of one per write). Within a
 * principal the acks keep the order in which they were emitted. A log without `appendMany` gets
 * them one after another, in that order.
 */
import type { AckLog } from '../core/ack-log';
import type { Ack, AckDraft, AckRoute } from '../core/contracts';

interface Waiting {
  draft: AckDraft;
  resolve(a: Ack | null): void;
  reject(e: unknown): void;
}

export class QueuedAckBatcher {
  /** Per principal (tenant + sub), in emission order. */
  private pending = new Map<string, { route: AckRoute; items: Waiting[] }>();
  private scheduled = false;

  constructor(private readonly log: AckLog) {}

  append(route: AckRoute, draft: AckDraft): Promise<Ack | null> {
    return new Promise((resolve, reject) => {
      const k = `${route.tenant}\u0000${route.principal}`;
      let group = this.pending.get(k);
      if (!group) this.pending.set(k, (group = { route, items: [] }));
      group.items.push({ draft, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush() {
    const groups = this.pending;
    this.pending = new Map();
    this.scheduled = false;
    for (const { route, items } of groups.values()) void this.appendGroup(route, items);
  }

  private async appendGroup(route: AckRoute, items: Waiting[]) {
    if (this.log.appendMany && items.length > 1) {
      try {
        const out = await this.log.appendMany(route, items.map((w) => w.draft));
        items.forEach((w, i) => w.resolve(out[i] ?? null));
      } catch (err) {
        for (const w of items) w.reject(err);
      }
      return;
    }
    for (const w of items) {
      try {
        w.resolve(await this.log.append(route, w.draft));
      } catch (err) {
        w.reject(err);
      }
    }
  }
}
