/**
 * Prometheus helpers shared by any service: one registry per running service (so several
 * services, or several instances in one test process, never share counters) and a handler that
 * serves it in the text exposition format.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';

export { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Resolution of the event-loop delay histogram of the default metrics. prom-client's default (10 ms)
 * wakes every process 100 times a second even when it has nothing to do (≈ 100 wakeups/s per
 * service at idle under `npm start`); at 100 ms the lag is still sampled ten times a second.
 */
export const EVENT_LOOP_PRECISION_MS = 100;

/** Latency buckets in seconds, fine below 50 ms where the write path lives. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export function createRegistry(service: string, opts: { processMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  if (opts.processMetrics) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_PRECISION_MS });
  return registry;
}

/** Node http-style handler: works as an express route too. */
export function metricsHandler(registry: Registry) {
  return async (_req: unknown, res: { setHeader(k: string, v: string): void; statusCode: number; end(b: string): void }) => {
    const text = await registry.metrics();
    res.statusCode = 200;
    res.setHeader('content-type', registry.contentType);
    res.end(text);
  };
}
