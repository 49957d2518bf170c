/**
 * Gathers requests by key until the end of the event-loop turn, then hands each key's requests
 * over together, in arrival order: work that would be one Redis call per write (a rate-limit
 * consume, a `queued` ack append) becomes one call per key per turn. Each request is a promise
 * the group handler settles.
 */
export interface Pending<T, R> {
  value: T;
  resolve(r: R): void;
  reject(e: unknown): void;
}

export class PerTurnGroups<T, R> {
  private groups = new Map<string, Array<Pending<T, R>>>();
  private scheduled = false;

  /** `handle` settles every request of the group (a rejection of its own rejects them all). */
  constructor(private readonly handle: (key: string, group: Array<Pending<T, R>>) => Promise<void>) {}

  add(key: string, value: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const group = this.groups.get(key);
      if (group) group.push({ value, resolve, reject });
      else this.groups.set(key, [{ value, resolve, reject }]);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    const groups = this.groups;
    this.groups = new Map();
    this.scheduled = false;
    for (const [key, group] of groups) {
      this.handle(key, group).catch((err: unknown) => {
        for (const p of group) p.reject(err);
      });
    }
  }
}
