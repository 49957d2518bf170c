/**
 * The WebSocket the client uses: the platform's (browsers, Deno, Node 22+) when there is one,
 * else the `ws` package in Node. Only the standard WHATWG subset below is used, which both offer.
 */
export interface MinimalWebSocket {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string) => MinimalWebSocket;

export const OPEN = 1;

export function resolveWebSocket(explicit?: WebSocketConstructor): WebSocketConstructor {
  if (explicit) return explicit;
  const platform = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (platform) return platform;
  // Node without a global WebSocket (Node 20). Kept behind a runtime check so bundlers for the
  // browser never need it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require('ws') as { WebSocket: WebSocketConstructor };
  return mod.WebSocket;
}
