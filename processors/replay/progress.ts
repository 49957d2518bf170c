/** Progress of a long replay: a redrawn bar on a terminal, plain periodic lines otherwise (CI logs). */
export interface ProgressSink {
  update(done: number, total: number): void;
  finish(done: number, total: number): void;
}

export interface ProgressOptions {
  label: string;
  out?: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean; columns?: number };
  /** Plain mode: at most one line per interval. */
  intervalMs?: number;
  now?: () => number;
}

export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function progressLine(label: string, done: number, total: number, rate: number, width = 0): string {
  const pct = total > 0 ? Math.min(1, done / total) : 1;
  const eta = rate > 0 ? (total - done) / rate : Infinity;
  const stats = `${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')} ${(pct * 100).toFixed(1)}% ${Math.round(rate).toLocaleString('en-US')} ev/s ETA ${formatEta(eta)}`;
  if (width <= 0) return `${label}: ${stats}`;
  const filled = Math.round(pct * width);
  return `${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${stats}`;
}

export function createProgress(opts: ProgressOptions): ProgressSink {
  const out = opts.out ?? process.stderr;
  const now = opts.now ?? Date.now;
  const tty = !!out.isTTY;
  const interval = opts.intervalMs ?? (tty ? 100 : 5000);
  const start = now();
  let startDone: number | undefined;
  let last = -Infinity; // the first update is drawn at once
  const line = (done: number, total: number) => {
    startDone ??= done;
    const secs = (now() - start) / 1000;
    const rate = secs > 0 ? (done - startDone) / secs : 0;
    return progressLine(opts.label, done, total, rate, tty ? Math.max(10, Math.min(40, ((out as { columns?: number }).columns ?? 80) - 70)) : 0);
  };
  return {
    update(done, total) {
      const t = now();
      startDone ??= done; // a resumed run measures its own rate
      if (t - last < interval) return;
      last = t;
      out.write(tty ? `\r${line(done, total)}\x1b[K` : `${line(done, total)}\n`);
    },
    finish(done, total) {
      out.write(tty ? `\r${line(done, total)}\x1b[K\n` : `${line(done, total)}\n`);
    },
  };
}

export const silentProgress: ProgressSink = { update() {}, finish() {} };
