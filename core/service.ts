/** What every started service hands back to its composition root or test. */
export interface RunningService {
  name: string;
  /** Base URL (http:// or ws://) when the service listens. */
  url?: string;
  port?: number;
  close(): Promise<void>;
}

/** Closes services on SIGINT/SIGTERM, once, then exits. */
export function closeOnSignals(services: RunningService[], log: (msg: string) => void = () => undefined): void {
  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    log(`${signal}: shutting down`);
    Promise.allSettled(services.map((s) => s.close())).then(() => process.exit(0));
    setTimeout(() => process.exit(1), 10_000).unref();
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

/**
 * Requests Node's HTTP parser refuses (bad method, bad header bytes, oversized head) get a
 * problem+json answer like every other error, instead of Node's bare `400` without a body.
 */
export function answerClientErrorsWithProblems(server: import('node:http').Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: import('node:stream').Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, slug, title] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'headers-too-large', 'Request Header Fields Too Large']
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'request-timeout', 'Request Timeout']
          : [400, 'bad-request', 'Bad Request'];
    const body = JSON.stringify({
      type: `urn:ackstream:problem:${slug}`, title, status,
      detail: status === 400 ? 'The request is not valid HTTP/1.1.' : title,
    });
    socket.end(
      `HTTP/1.1 ${status} ${title}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
}
