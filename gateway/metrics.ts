/** The gateway's Prometheus metrics: requests, latency, batches, retries, buffer depth. */
import { Counter, createRegistry, Gauge, Histogram, LATENCY_BUCKETS, type Registry } from '../core/metrics';
import type { BatchingObserver } from './batching-stream';

export interface GatewayMetrics {
  registry: Registry;
  requests: Counter<'method' | 'route' | 'status'>;
  latency: Histogram<'method' | 'route' | 'status'>;
  batchRecords: Histogram;
  batchBytes: Histogram;
  callLatency: Histogram;
  retries: Counter<'reason'>;
  streamRejects: Counter<'reason'>;
  bufferDepth: Gauge;
  idempotentReplays: Counter;
  observer: BatchingObserver;
}

export function createGatewayMetrics(): GatewayMetrics {
  const registry = createRegistry('gateway', { processMetrics: true });
  const requests = new Counter({
    name: 'ackstream_gateway_requests_total', help: 'HTTP requests answered', labelNames: ['method', 'route', 'status'] as const, registers: [registry],
  });
  const latency = new Histogram({
    name: 'ackstream_gateway_request_duration_seconds', help: 'Time from request to answer', labelNames: ['method', 'route', 'status'] as const,
    buckets: LATENCY_BUCKETS, registers: [registry],
  });
  const batchRecords = new Histogram({
    name: 'ackstream_gateway_putrecords_batch_records', help: 'Records per PutRecords call',
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500], registers: [registry],
  });
  const batchBytes = new Histogram({
    name: 'ackstream_gateway_putrecords_batch_bytes', help: 'Bytes per PutRecords call',
    buckets: [1024, 8192, 65536, 262144, 1048576, 5242880], registers: [registry],
  });
  const callLatency = new Histogram({
    name: 'ackstream_gateway_putrecords_call_seconds', help: 'Duration of one PutRecords call (sent to answered or failed)',
    buckets: LATENCY_BUCKETS, registers: [registry],
  });
  const retries = new Counter({
    name: 'ackstream_gateway_putrecords_retries_total', help: 'Records retried after a failed PutRecords entry or call', labelNames: ['reason'] as const, registers: [registry],
  });
  const streamRejects = new Counter({
    name: 'ackstream_gateway_stream_rejects_total', help: 'Writes answered 503 by the stream buffer (full, budget, closing)', labelNames: ['reason'] as const, registers: [registry],
  });
  const bufferDepth = new Gauge({ name: 'ackstream_gateway_buffer_depth', help: 'Records held by the batcher', registers: [registry] });
  const idempotentReplays = new Counter({
    name: 'ackstream_gateway_idempotent_replays_total', help: 'Writes answered from an earlier request with the same Idempotency-Key', registers: [registry],
  });
  const observer: BatchingObserver = {
    batch(records, bytes, _failed, seconds) {
      batchRecords.observe(records);
      batchBytes.observe(bytes);
      callLatency.observe(seconds);
    },
    retry: (reason) => retries.inc({ reason }),
    depth: (n) => bufferDepth.set(n),
    rejected: (reason) => streamRejects.inc({ reason }),
  };
  return { registry, requests, latency, batchRecords, batchBytes, callLatency, retries, streamRejects, bufferDepth, idempotentReplays, observer };
}
