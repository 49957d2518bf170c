import { parsePrometheus, type Scrape } from './prometheus';

const SCRAPE_TIMEOUT_MS = 800;

/** Scrapes every configured /metrics at most once a second and keeps a short history for rates. */
export class MetricsReader {
  private history: Scrape[] = [];
  private sources: Array<{ url: string; ok: boolean; error?: string }> = [];
  private inflight: Promise<void> | undefined;

  constructor(private readonly urls: string[]) {}

  async refresh(): Promise<void> {
    const last = this.history.at(-1);
    if (last && Date.now() - last.at < 1000) return;
    this.inflight ??= this.scrape().finally(() => {
      this.inflight = undefined;
    });
    await this.inflight;
  }

  private async scrape(): Promise<void> {
    const at = Date.now();
    const results = await Promise.all(
      this.urls.map(async (url) => {
        try {
          const res = await fetch(url, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) });
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
          return { url, ok: true, scrape: parsePrometheus(await res.text(), at) };
        } catch (err) {
          return { url, ok: false, error: err instanceof Error ? err.message : String(err) };
        }
      }),
    );
    this.sources = results.map(({ url, ok, error }) => ({ url, ok, ...(error ? { error } : {}) }));
    const merged: Scrape = { at, samples: [], types: new Map() };
    for (const r of results) {
      if (!r.scrape) continue;
      merged.samples.push(...r.scrape.samples);
      for (const [k, v] of r.scrape.types) merged.types.set(k, v);
    }
    this.history.push(merged);
    this.history = this.history.filter((s) => s.at >= at - 30_000);
  }

  /** The latest scrape and one about 5 s older (at least 1 s), for rates. */
  window(): { prev: Scrape | undefined; cur: Scrape | undefined } {
    const cur = this.history.at(-1);
    if (!cur) return { prev: undefined, cur };
    const older = this.history.filter((s) => cur.at - s.at >= 1000);
    const prev = older.find((s) => cur.at - s.at <= 6000) ?? older.at(-1);
    return { prev, cur };
  }

  status() {
    return this.sources;
  }
}

