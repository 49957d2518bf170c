/**
 * A small reader of the Prometheus text exposition format (what prom-client serves on /metrics),
 * enough for the operator console: samples with labels, rates between two scrapes, and quantiles
 * of histograms from their cumulative buckets.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Scrape {
  /** ms since epoch */
  at: number;
  samples: Sample[];
  /** `# TYPE` lines: metric family name -> type. */
  types: Map<string, string>;
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?/gy;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    labels[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    if (re.lastIndex >= text.length) break;
  }
  return labels;
}

export function parsePrometheus(text: string, at = Date.now()): Scrape {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith('#')) {
      const t = /^#\s*TYPE\s+(\S+)\s+(\S+)/.exec(line);
      if (t) types.set(t[1]!, t[2]!);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$/.exec(line);
    if (!m) continue;
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    if (Number.isNaN(value)) continue;
    samples.push({ name: m[1]!, labels: m[2] ? parseLabels(m[2]) : {}, value });
  }
  return { at, samples, types };
}

export type LabelFilter = (labels: Record<string, string>) => boolean;

export function sum(scrape: Scrape | undefined, name: string | RegExp, filter: LabelFilter = () => true): number | undefined {
  if (!scrape) return undefined;
  let total: number | undefined;
  for (const s of scrape.samples) {
    if ((typeof name === 'string' ? s.name === name : name.test(s.name)) && filter(s.labels)) total = (total ?? 0) + s.value;
  }
  return total;
}

/** Per-second rate of a counter between two scrapes (undefined when absent or not yet two scrapes). */
export function rate(prev: Scrape | undefined, cur: Scrape | undefined, name: string | RegExp, filter?: LabelFilter): number | undefined {
  const b = sum(cur, name, filter);
  const a = sum(prev, name, filter);
  if (a === undefined || b === undefined || !prev || !cur || cur.at <= prev.at) return undefined;
  return Math.max(0, b - a) / ((cur.at - prev.at) / 1000);
}

/** Cumulative buckets (le -> count) of a histogram family, summed over the series the filter keeps. */
export function buckets(scrape: Scrape | undefined, family: string, filter: LabelFilter = () => true): Map<number, number> | undefined {
  if (!scrape) return undefined;
  const out = new Map<number, number>();
  for (const s of scrape.samples) {
    if (s.name !== `${family}_bucket` || !filter(s.labels) || s.labels.le === undefined) continue;
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    out.set(le, (out.get(le) ?? 0) + s.value);
  }
  return out.size ? out : undefined;
}

/** histogram_quantile over cumulative buckets, linear within a bucket, like PromQL. */
export function quantile(q: number, cumulative: Map<number, number>): number | undefined {
  const les = [...cumulative.keys()].sort((a, b) => a - b);
  const total = cumulative.get(Infinity) ?? cumulative.get(les.at(-1)!) ?? 0;
  if (!(total > 0)) return undefined;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const le of les) {
    const count = cumulative.get(le)!;
    if (count >= rank) {
      if (le === Infinity) return prevLe;
      return prevLe + (le - prevLe) * ((rank - prevCount) / Math.max(1e-9, count - prevCount));
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}

/** Buckets observed between two scrapes (falls back to everything since start when there is no earlier scrape). */
export function bucketDelta(prev: Map<number, number> | undefined, cur: Map<number, number> | undefined): Map<number, number> | undefined {
  if (!cur) return undefined;
  if (!prev) return cur;
  const out = new Map<number, number>();
  for (const [le, c] of cur) out.set(le, Math.max(0, c - (prev.get(le) ?? 0)));
  return out;
}
