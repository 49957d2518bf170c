/** A test WebSocket client that records every message and waits for the ones a test expects. */
import { WebSocket } from 'ws';

export interface Received {
  type: string;
  [key: string]: unknown;
}

export class TestSocket {
  readonly messages: Received[] = [];
  closed: { code: number; reason: string } | undefined;
  private waiters: Array<() => void> = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.messages.push(JSON.parse(data.toString()) as Received);
      this.notify();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.notify();
    });
  }

  static open(url: string, headers: Record<string, string> = {}): Promise<TestSocket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers });
      const socket = new TestSocket(ws);
      ws.once('open', () => resolve(socket));
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode, body })));
      });
      ws.once('error', reject);
    });
  }

  private notify() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  acks(requestId?: string): Received[] {
    return this.messages.filter((m) => m.type === 'ack' && (requestId === undefined || m.requestId === requestId));
  }

  /** Resolves once `predicate` holds over the messages received so far. */
  async waitFor(predicate: (messages: Received[]) => boolean, timeoutMs = 10_000, what = 'expected messages'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.messages)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.messages)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Waits for the final ack (committed or rejected) of a request and returns it. */
  async finalAck(requestId: string, timeoutMs = 10_000): Promise<Received> {
    await this.waitFor((ms) => ms.some((m) => m.requestId === requestId && (m.stage === 'committed' || m.stage === 'rejected')), timeoutMs, `final ack of ${requestId}`);
    return this.acks(requestId).find((m) => m.stage !== 'queued')!;
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}
