/**
 * The read API's Prometheus metrics, served on its own `GET /metrics`: where item reads were
 * answered from. A hit is the near cache or the Redis hot copy; a miss went to DynamoDB. The
 * operator console's "read hit ratio" is hits ÷ (hits + misses).
 */
import { Counter, createRegistry, type Registry } from '../core/metrics';

export interface ReadMetrics {
  registry: Registry;
  hits: Counter<'tier'>;
  misses: Counter;
}

export function createReadMetrics(): ReadMetrics {
  const registry = createRegistry('read-model', { processMetrics: true });
  const hits = new Counter({
    name: 'ackstream_read_hot_hits_total', help: 'Item reads answered from the hot copy, by tier (near: in-process cache, redis)',
    labelNames: ['tier'] as const, registers: [registry],
  });
  const misses = new Counter({ name: 'ackstream_read_hot_misses_total', help: 'Item reads the hot copy could not answer (read from DynamoDB)', registers: [registry] });
  // Both series exist from the start, so a rate over the first reads is not lost.
  hits.inc({ tier: 'near' }, 0);
  hits.inc({ tier: 'redis' }, 0);
  misses.inc(0);
  return { registry, hits, misses };
}
