/** The shape every benchmark scenario returns; `bench/run.ts` renders it (table, JSON, plots). */
export interface BenchContext {
  /** --quick: the scenario finishes in under 20 s (a smoke run, not a measurement to compare). */
  quick: boolean;
  /** Drawn as a progress bar on a terminal, as periodic plain lines otherwise. */
  progress(done: number, total: number, label?: string): void;
  log(line: string): void;
}

export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean?: number;
}

/** A time series for plots; x = seconds since the scenario started. */
export interface Series {
  name: string;
  unit: string;
  points: Array<[number, number]>;
}

export interface Figure {
  name: string;
  value: number;
  unit: string;
  latency?: Percentiles;
}

export interface ScenarioResult {
  scenario: string;
  /** Every number people compare. */
  figures: Figure[];
  /** The baseline that bounds this scenario on this machine, measured in the same run. */
  baseline?: { name: string; figures: Figure[] };
  ratios?: Array<{ name: string; value: number }>;
  series?: Series[];
  /** What bounds the figure (from profiling). */
  notes?: string[];
  /**
   * Bar charts the scenario composes itself (bench/plot.ts draws them); when present they replace
   * the generic per-figure latency chart, which is unreadable with many figures.
   */
  charts?: Array<{ file: string; title: string; yLabel: string; keys: string[]; groups: Array<{ label: string; values: Record<string, number> }> }>;
}

export type Scenario = (ctx: BenchContext) => Promise<ScenarioResult>;
