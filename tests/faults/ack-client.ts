/**
 * A WebSocket ack client that behaves like a careful real one: it remembers the highest cursor it
 * has seen and, whenever the connection drops (ack service killed, network reset), reconnects with
 * `?after=<lastCursor>` until it is closed. It records every ack in arrival order, so the test can
 * check "exactly one distinct final ack, never a queued after it" per request.
 */
import { WebSocket } from 'ws';

export interface SeenAck {
  stage: 'queued' | 'committed' | 'rejected';
  requestId: string;
  cursor: number;
  version?: number;
  reason?: { code: string };
  idempotencyKey?: string;
}

export class ResilientAckClient {
  readonly byRequest = new Map<string, SeenAck[]>();
  lastCursor = 0;
  connects = 0;
  resets = 0;
  readonly closeCodes: number[] = [];
  readonly protocolErrors: string[] = [];
  private ws: WebSocket | undefined;
  private stopped = false;
  private openWaiters: Array<() => void> = [];
  private changeWaiters: Array<() => void> = [];

  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
  ) {}

  async start(): Promise<void> {
    this.connect();
    await new Promise<void>((resolve) => this.openWaiters.push(resolve));
  }

  private connect(): void {
    if (this.stopped) return;
    const url = `${this.baseUrl}/v1/acks${this.connects > 0 ? `?after=${this.lastCursor}` : ''}`;
    const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${this.token}` } });
    this.ws = ws;
    ws.on('open', () => {
      this.connects++;
      const w = this.openWaiters;
      this.openWaiters = [];
      for (const f of w) f();
    });
    ws.on('message', (data) => this.onMessage(data.toString()));
    ws.on('error', () => undefined); // a close follows; reconnecting is handled there
    ws.on('close', (code) => {
      if (this.ws !== ws) return;
      this.closeCodes.push(code);
      this.ws = undefined;
      if (!this.stopped) setTimeout(() => this.connect(), 100 + Math.floor(Math.random() * 200));
    });
  }

  private onMessage(text: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(text) as Record<string, unknown>;
    } catch {
      this.protocolErrors.push(`not JSON: ${text.slice(0, 100)}`);
      return;
    }
    if (msg.type === 'reset') {
      this.resets++;
      return;
    }
    if (msg.type !== 'ack') {
      this.protocolErrors.push(`unexpected message ${text.slice(0, 200)}`);
      return;
    }
    const ack = msg as unknown as SeenAck;
    const list = this.byRequest.get(ack.requestId) ?? [];
    list.push(ack);
    this.byRequest.set(ack.requestId, list);
    if (ack.cursor > this.lastCursor) this.lastCursor = ack.cursor;
    const w = this.changeWaiters;
    this.changeWaiters = [];
    for (const f of w) f();
  }

  hasFinal(requestId: string): boolean {
    return (this.byRequest.get(requestId) ?? []).some((a) => a.stage !== 'queued');
  }

  /** Waits until every listed request has a final ack, or the deadline passes; returns the missing ones. */
  async waitForFinals(requestIds: string[], deadline: number): Promise<string[]> {
    for (;;) {
      const missing = requestIds.filter((r) => !this.hasFinal(r));
      if (missing.length === 0 || Date.now() > deadline) return missing;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(500, Math.max(0, deadline - Date.now())));
        this.changeWaiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async close(): Promise<void> {
    this.stopped = true;
    const ws = this.ws;
    this.ws = undefined;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      ws.once('close', () => resolve());
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close();
      setTimeout(resolve, 2000).unref();
    });
  }
}
