/** Small statistics helpers shared by scenarios and the runner (no dependencies). */
import type { Percentiles, Series } from './types';

/** Nearest-rank percentiles of a sample (milliseconds in, milliseconds out). */
export function percentiles(values: readonly number[]): Percentiles {
  if (values.length === 0) return { p50: 0, p95: 0, p99: 0, max: 0, mean: 0 };
  const sorted = Float64Array.from(values).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
  let sum = 0;
  for (const v of sorted) sum += v;
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: sorted[sorted.length - 1]!, mean: sum / sorted.length };
}

/** Counts events per whole second since `startMs` into a plot series (a last partial second is left out). */
export function perSecond(name: string, unit: string, timestampsMs: readonly number[], startMs: number, durationS: number): Series {
  const buckets = new Array<number>(Math.max(1, Math.floor(durationS))).fill(0);
  for (const t of timestampsMs) {
    const i = Math.floor((t - startMs) / 1000);
    if (i >= 0 && i < buckets.length) buckets[i]! += 1;
  }
  return { name, unit, points: buckets.map((n, i) => [i + 1, n]) };
}

export const round = (v: number, digits = 2) => Math.round(v * 10 ** digits) / 10 ** digits;
