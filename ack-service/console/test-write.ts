/**
 * The console's "test write": a PUT to the gateway made server side (so the gateway needs no
 * CORS), with the operator's own token, so the write and its acks are the operator's.
 */
import { randomUUID } from 'node:crypto';

export interface TestWriteResult {
  gatewayStatus: number | null;
  collection: 'console-test';
  id: string;
  ms?: number;
  body?: unknown;
  error?: string;
}

export async function testWrite(gatewayUrl: string, token: string): Promise<TestWriteResult> {
  const id = `test-${Date.now()}-${randomUUID().slice(0, 8)}`;
  const target = `${gatewayUrl}/v1/collections/console-test/items/${id}`;
  const started = Date.now();
  try {
    const r = await fetch(target, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ source: 'operator console', at: new Date().toISOString() }),
      signal: AbortSignal.timeout(5000),
    });
    const text = await r.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      /* not JSON: shown as text */
    }
    return { gatewayStatus: r.status, collection: 'console-test', id, ms: Date.now() - started, body };
  } catch (err) {
    return { gatewayStatus: null, collection: 'console-test', id, error: `gateway unreachable at ${gatewayUrl}: ${(err as Error).message}` };
  }
}
