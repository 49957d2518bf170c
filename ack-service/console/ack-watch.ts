import type { Ack } from '../../core/contracts';

export type Stage = 'queued' | 'committed' | 'rejected';
export type Latency = { p50: number; p95: number; p99: number; max?: number } | null;

/** Window of the queued→committed latency figures. */
const WINDOW_MS = 60_000;

/** Acks as the ack log sees them, for every tenant: per-second counts and queued→committed latency. */
export class AckWatch {
  private readonly perSecond = new Map<number, Record<Stage, number>>();
  private readonly queuedAt = new Map<string, number>();
  private latencies: Array<[number, number]> = [];
  readonly totals: Record<Stage, number> = { queued: 0, committed: 0, rejected: 0 };

  // Called for every ack of every tenant: the current second's bucket is kept at hand, and "at" is
  // parsed only for the stages that feed the latency.
  private sec = -1;
  private bucket: Record<Stage, number> = { queued: 0, committed: 0, rejected: 0 };

  observe(ack: Ack): void {
    const now = Date.now();
    const sec = Math.floor(now / 1000);
    if (sec !== this.sec) {
      this.sec = sec;
      this.bucket = this.perSecond.get(sec) ?? { queued: 0, committed: 0, rejected: 0 };
      this.perSecond.set(sec, this.bucket);
      if (this.perSecond.size > 120) for (const k of this.perSecond.keys()) if (k < sec - 90) this.perSecond.delete(k);
    }
    this.bucket[ack.stage] += 1;
    this.totals[ack.stage] += 1;
    if (ack.stage === 'queued') {
      this.queuedAt.set(ack.requestId, Date.parse(ack.at));
      // Bounded: an ack whose final stage never comes here (another instance's subscriber, a crash) is forgotten.
      if (this.queuedAt.size > 20_000) this.queuedAt.delete(this.queuedAt.keys().next().value!);
    } else {
      const q = this.queuedAt.get(ack.requestId);
      if (q === undefined) return;
      this.queuedAt.delete(ack.requestId);
      const at = Date.parse(ack.at);
      if (ack.stage === 'committed' && Number.isFinite(at)) this.latencies.push([now, Math.max(0, at - q)]);
    }
    if (this.latencies.length > 10_000) this.latencies = this.latencies.slice(-5_000);
  }

  /** Mean per second over the last `seconds` full seconds. */
  rates(seconds = 5): Record<Stage, number> {
    const now = Math.floor(Date.now() / 1000);
    const out: Record<Stage, number> = { queued: 0, committed: 0, rejected: 0 };
    for (let s = now - seconds; s < now; s++) {
      const b = this.perSecond.get(s);
      if (b) for (const k of Object.keys(out) as Stage[]) out[k] += b[k] / seconds;
    }
    return out;
  }

  committedLatency(): Latency {
    const since = Date.now() - WINDOW_MS;
    this.latencies = this.latencies.filter(([t]) => t >= since);
    if (!this.latencies.length) return null;
    const v = this.latencies.map(([, l]) => l).sort((a, b) => a - b);
    const at = (q: number) => v[Math.min(v.length - 1, Math.ceil(q * v.length) - 1)]!;
    return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: v[v.length - 1]! };
  }
}

