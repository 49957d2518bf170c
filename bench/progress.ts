/**
 * Progress of one scenario: a redrawn bar on a terminal, a plain line at most every few seconds
 * otherwise (CI logs stay short and readable).
 */
export class Progress {
  private lastLine = 0;
  private lastDraw = 0;
  private drawn = false;
  private readonly started = Date.now();

  constructor(
    private readonly scenario: string,
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly tty = Boolean(process.stderr.isTTY),
    private readonly lineEveryMs = 5000,
  ) {}

  update(done: number, total: number, label = ''): void {
    const frac = total > 0 ? Math.min(1, Math.max(0, done / total)) : 0;
    const now = Date.now();
    const elapsed = ((now - this.started) / 1000).toFixed(0);
    if (this.tty) {
      if (now - this.lastDraw < 100 && frac < 1) return;
      this.lastDraw = now;
      const width = 30;
      const full = Math.round(frac * width);
      const bar = `${'█'.repeat(full)}${'░'.repeat(width - full)}`;
      this.out.write(`\r\x1b[2K${this.scenario.padEnd(10)} ${bar} ${(frac * 100).toFixed(0).padStart(3)}% ${elapsed}s ${label}`.slice(0, (this.out.columns || 120) - 1));
      this.drawn = true;
      return;
    }
    if (now - this.lastLine < this.lineEveryMs && frac < 1) return;
    this.lastLine = now;
    this.out.write(`[bench] ${this.scenario}: ${(frac * 100).toFixed(0)}% after ${elapsed}s ${label}\n`);
  }

  /** A log line that does not garble the bar. */
  log(line: string): void {
    if (this.tty && this.drawn) this.out.write('\r\x1b[2K');
    this.out.write(`[bench] ${this.scenario}: ${line}\n`);
    this.drawn = false;
  }

  finish(ok: boolean): void {
    if (this.tty && this.drawn) this.out.write('\n');
    this.out.write(`[bench] ${this.scenario}: ${ok ? 'done' : 'FAILED'} in ${((Date.now() - this.started) / 1000).toFixed(1)}s\n`);
  }
}
