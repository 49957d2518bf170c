/**
 * A TCP proxy the test controls, put between a service and one backend (PostgreSQL, Redis, the
 * Kinesis emulator) so outages and transient network faults are real TCP events without touching
 * the shared servers: `cut()` refuses new connections and resets open ones, `restore()` heals,
 * `setDelay()` holds every chunk back, `resetSome()` resets a share of the open connections.
 */
import { createServer, type Server, type Socket, connect } from 'node:net';

export interface ProxyStats {
  accepted: number;
  refused: number;
  reset: number;
  active: number;
  peakActive: number;
}

export class TcpProxy {
  private server: Server | undefined;
  private readonly pairs = new Set<{ client: Socket; upstream: Socket }>();
  private down = false;
  private delayMs = 0;
  private jitterMs = 0;
  readonly stats: ProxyStats = { accepted: 0, refused: 0, reset: 0, active: 0, peakActive: 0 };
  port = 0;

  constructor(
    readonly name: string,
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  async start(port = 0): Promise<number> {
    const server = createServer((client) => this.accept(client));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as { port: number }).port;
    return this.port;
  }

  get url(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** The backend becomes unreachable: open connections are reset, new ones are reset at once. */
  cut(): void {
    this.down = true;
    this.resetSome(1);
  }

  restore(): void {
    this.down = false;
  }

  get isDown(): boolean {
    return this.down;
  }

  /** Every chunk in either direction waits `ms` (+ up to `jitterMs`) before it is forwarded, in order. */
  setDelay(ms: number, jitterMs = 0): void {
    this.delayMs = ms;
    this.jitterMs = jitterMs;
  }

  /** Resets (RST) about `share` of the open connections, chosen by `random`. */
  resetSome(share: number, random: () => number = Math.random): number {
    let n = 0;
    for (const pair of [...this.pairs]) {
      if (random() < share) {
        this.kill(pair);
        n++;
      }
    }
    return n;
  }

  private kill(pair: { client: Socket; upstream: Socket }) {
    if (!this.pairs.delete(pair)) return;
    this.stats.reset++;
    this.stats.active = this.pairs.size;
    pair.client.resetAndDestroy();
    pair.upstream.resetAndDestroy();
  }

  private accept(client: Socket): void {
    if (this.down) {
      this.stats.refused++;
      client.resetAndDestroy();
      return;
    }
    this.stats.accepted++;
    const upstream = connect(this.targetPort, this.targetHost);
    const pair = { client, upstream };
    this.pairs.add(pair);
    this.stats.active = this.pairs.size;
    this.stats.peakActive = Math.max(this.stats.peakActive, this.pairs.size);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    this.pipe(client, upstream);
    this.pipe(upstream, client);
    const end = () => {
      if (this.pairs.delete(pair)) this.stats.active = this.pairs.size;
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  }

  /**
   * Forwards chunks in order, as TCP does; with a delay, each chunk is released no earlier than
   * the one before it. One FIFO and one timer per direction: a timer per chunk could fire out of
   * order (two timers due in the same millisecond), and chunks written at once after the delay is
   * switched off would overtake the ones still held; either reorders the byte stream, which no
   * real network does, and corrupts the protocol on it.
   */
  private pipe(from: Socket, to: Socket): void {
    const held: Array<{ at: number; chunk: Buffer }> = [];
    let timer: NodeJS.Timeout | undefined;
    const release = () => {
      timer = undefined;
      const now = Date.now();
      while (held.length > 0 && held[0]!.at <= now) {
        const { chunk } = held.shift()!;
        if (!to.destroyed) to.write(chunk);
      }
      if (held.length > 0) timer = setTimeout(release, held[0]!.at - now);
    };
    from.on('data', (chunk: Buffer) => {
      if (held.length === 0 && this.delayMs === 0 && this.jitterMs === 0) {
        if (!to.destroyed) to.write(chunk);
        return;
      }
      const wanted = Date.now() + this.delayMs + Math.floor(Math.random() * (this.jitterMs + 1));
      held.push({ at: Math.max(held.at(-1)?.at ?? 0, wanted), chunk });
      timer ??= setTimeout(release, held[0]!.at - Date.now());
    });
    from.once('close', () => clearTimeout(timer));
  }

  async close(): Promise<void> {
    for (const pair of [...this.pairs]) {
      this.pairs.delete(pair);
      pair.client.destroy();
      pair.upstream.destroy();
    }
    this.stats.active = 0;
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
