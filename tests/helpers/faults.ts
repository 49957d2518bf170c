/**
 * Real faults for outage tests: a private redis-server the test starts, kills and restarts (never
 * the shared one), and a TCP proxy the test controls in front of another server (cut = connections
 * refused; black hole = accepted but never answered, like a hung server).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { freePort, stopChild, waitForPort } from '../../scripts/local-stack';

export class PrivateRedis {
  private child: ChildProcess | undefined;
  private constructor(readonly port: number) {}

  static async start(): Promise<PrivateRedis> {
    const r = new PrivateRedis(await freePort());
    await r.start();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    this.child = child;
    await waitForPort(this.port, () => child.exitCode !== null);
  }

  /** SIGKILL: the server vanishes with its data, as in a crash. */
  async kill(): Promise<void> {
    if (this.child) await stopChild(this.child, 'SIGKILL');
    this.child = undefined;
  }
}

export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;
  private mode: 'pass' | 'blackhole' = 'pass';

  private constructor(
    readonly port: number,
    private readonly targetPort: number,
  ) {}

  static async start(targetPort: number): Promise<TcpProxy> {
    const p = new TcpProxy(await freePort(), targetPort);
    await p.open();
    return p;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Accept and forward connections. */
  async open(mode: 'pass' | 'blackhole' = 'pass'): Promise<void> {
    this.mode = mode;
    if (this.server) return;
    const server = createServer((client) => {
      this.sockets.add(client);
      client.on('close', () => this.sockets.delete(client));
      client.on('error', () => undefined);
      if (this.mode === 'blackhole') return; // hold the connection, never answer
      const upstream = createConnection(this.targetPort, '127.0.0.1');
      this.sockets.add(upstream);
      upstream.on('close', () => this.sockets.delete(upstream));
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(this.port, '127.0.0.1', resolve));
    this.server = server;
  }

  /** Stop listening and drop every connection: clients get resets, then refusals. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Drop open connections and keep accepting new ones without ever answering. */
  async blackhole(): Promise<void> {
    await this.cut();
    await this.open('blackhole');
  }

  async close(): Promise<void> {
    await this.cut();
  }
}
