/**
 * Which records' hot copy (Redis) the commit consumer in this process has written (issue #17: the
 * projection consumer wrote every record's hot copy a second time, a guarded Lua write per item
 * and per request status). The commit consumer's hot write is a best-effort fast path: the
 * projection consumer stays the one that guarantees the hot copy, and skips it only for records
 * this ledger confirms, that is whose hot write the commit consumer saw succeed, in this process.
 * Anything else (a failed or partial write, a redelivery after a restart, a ledger over its cap)
 * is not confirmed, and the projection consumer writes it as before. In memory only: it is wired
 * when both consumers run in one process (processors/main.ts), never across processes.
 */
export class HotCopyLedger {
  /** Per shard, ranges [first, last] of sequence numbers whose hot copy was written, in the order written. */
  private readonly ranges = new Map<string, Array<[bigint, bigint]>>();

  /** `maxRanges` per shard: past it the oldest are dropped (their records are then written again, harmlessly). */
  constructor(private readonly maxRanges = 10_000) {}

  /** The hot copy of every decided record from `first` to `last` (sequence numbers of one shard) is written. */
  confirm(shardId: string, first: string, last: string): void {
    let list = this.ranges.get(shardId);
    if (!list) this.ranges.set(shardId, (list = []));
    list.push([BigInt(first), BigInt(last)]);
    if (list.length > this.maxRanges) list.splice(0, list.length - this.maxRanges);
  }

  written(shardId: string, sequenceNumber: string): boolean {
    const list = this.ranges.get(shardId);
    if (!list) return false;
    const at = BigInt(sequenceNumber);
    return list.some(([a, b]) => a <= at && at <= b);
  }

  /** Forgets the ranges that end at or before `sequenceNumber` (the projection consumer is past them). */
  prune(shardId: string, sequenceNumber: string): void {
    const list = this.ranges.get(shardId);
    if (!list) return;
    const at = BigInt(sequenceNumber);
    const keep = list.filter(([, b]) => b > at);
    if (keep.length) this.ranges.set(shardId, keep);
    else this.ranges.delete(shardId);
  }

  /** Ranges held (for tests). */
  size(shardId: string): number {
    return this.ranges.get(shardId)?.length ?? 0;
  }
}
