/**
 * The one progress display of the operator CLIs and the bench: a redrawn bar on a terminal, plain
 * periodic lines otherwise (CI logs stay short). Used by the replay CLI, `npm run dlq` and `npm run bench`.
 */
export interface ProgressSink {
  update(done: number, total: number, detail?: string): void;
  finish(done: number, total: number, detail?: string): void;
}

/** A sink that can also print whole lines without garbling a drawn bar. */
export interface Progress extends ProgressSink {
  log(line: string): void;
}

export interface ProgressOptions {
  label: string;
  out?: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean; columns?: number };
  /** At most one line (plain) or redraw (terminal) per interval; reaching the total always draws. */
  intervalMs?: number;
  /** Unit of the rate shown ('ev/s' by default); '' leaves the rate out (mixed units), the ETA stays. */
  unit?: string;
  now?: () => number;
}

export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function progressLine(label: string, done: number, total: number, rate: number, width = 0, detail = '', unit = 'ev/s'): string {
  const pct = total > 0 ? Math.min(1, done / total) : 1;
  const eta = rate > 0 ? (total - done) / rate : Infinity;
  const speed = unit ? ` ${Math.round(rate).toLocaleString('en-US')} ${unit}` : '';
  const stats = `${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')} ${(pct * 100).toFixed(1)}%${speed} ETA ${formatEta(eta)}${detail ? ` ${detail}` : ''}`;
  if (width <= 0) return `${label}: ${stats}`;
  const filled = Math.round(pct * width);
  return `${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${stats}`;
}

export function createProgress(opts: ProgressOptions): Progress {
  const out = opts.out ?? process.stderr;
  const now = opts.now ?? Date.now;
  const tty = !!out.isTTY;
  const columns = () => (out as { columns?: number }).columns ?? 80;
  const interval = opts.intervalMs ?? (tty ? 100 : 5000);
  const start = now();
  let startDone: number | undefined;
  let last = -Infinity; // the first update is drawn at once
  let drawn = false; // a bar is on the terminal's current line
  const line = (done: number, total: number, detail?: string) => {
    startDone ??= done;
    const secs = (now() - start) / 1000;
    const rate = secs > 0 ? (done - startDone) / secs : 0;
    const text = progressLine(opts.label, done, total, rate, tty ? Math.max(10, Math.min(40, columns() - 70)) : 0, detail, opts.unit);
    return tty ? text.slice(0, Math.max(1, columns() - 1)) : text; // a wrapped bar could not be redrawn
  };
  return {
    update(done, total, detail) {
      const t = now();
      startDone ??= done; // a resumed run measures its own rate
      if (t - last < interval && done < total) return;
      last = t;
      out.write(tty ? `\r${line(done, total, detail)}\x1b[K` : `${line(done, total, detail)}\n`);
      drawn = tty;
    },
    finish(done, total, detail) {
      out.write(tty ? `\r${line(done, total, detail)}\x1b[K\n` : `${line(done, total, detail)}\n`);
      drawn = false;
    },
    log(text) {
      out.write(`${drawn ? '\r\x1b[K' : ''}${opts.label}: ${text}\n`);
      drawn = false;
    },
  };
}

export const silentProgress: ProgressSink = { update() {}, finish() {} };
