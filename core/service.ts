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
