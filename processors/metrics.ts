/** The processors' Prometheus metrics, and the small HTTP server that exposes them on /metrics. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Logger } from '../core/log';
import { EVENT_LOOP_PRECISION_MS } from '../core/metrics';

export class ProcessorMetrics {
  readonly registry = new Registry();
  readonly millisBehind = new Gauge({
    name: 'ackstream_processor_millis_behind_latest',
    help: 'Per consumer and shard: how far the last GetRecords is behind the tip of the shard (Kinesis MillisBehindLatest).',
    labelNames: ['shard', 'consumer'],
    registers: [this.registry],
  });
  readonly iteratorAge = new Gauge({
    name: 'ackstream_processor_iterator_age_ms',
    help: 'Per consumer and shard: age of the newest record handed to the handler (like Lambda IteratorAge).',
    labelNames: ['shard', 'consumer'],
    registers: [this.registry],
  });
  readonly records = new Counter({
    name: 'ackstream_processor_records_total',
    help: 'Records handled, by outcome (committed, rejected, held, redelivered, malformed, parked).',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  readonly batchFailures = new Counter({
    name: 'ackstream_processor_batch_failures_total',
    help: 'Batches retried from a failed record, per consumer and shard.',
    labelNames: ['shard', 'consumer'],
    registers: [this.registry],
  });
  readonly projected = new Counter({
    name: 'ackstream_processor_projected_total',
    help: 'Decided records written to the read model by the projection consumer.',
    registers: [this.registry],
  });
  // The read cadence per consumer (issue #17): what each batch costs in calls is fixed, so these
  // say how many of those fixed costs the stream's traffic turns into.
  readonly getRecords = new Counter({
    name: 'ackstream_processor_get_records_total',
    help: 'GetRecords calls, per consumer.',
    labelNames: ['consumer'],
    registers: [this.registry],
  });
  readonly followWaits = new Counter({
    name: 'ackstream_processor_follow_waits_total',
    help: 'Batches held until the consumer followed (the commit consumer) had finished them, per consumer.',
    labelNames: ['consumer'],
    registers: [this.registry],
  });
  readonly batches = new Counter({
    name: 'ackstream_processor_batches_total',
    help: 'Batches handed to the handler, per consumer.',
    labelNames: ['consumer'],
    registers: [this.registry],
  });
  readonly batchRecords = new Counter({
    name: 'ackstream_processor_batch_records_total',
    help: 'Records in the batches handed to the handler, per consumer (÷ batches: records per batch).',
    labelNames: ['consumer'],
    registers: [this.registry],
  });
  readonly checkpointSaves = new Counter({
    name: 'ackstream_processor_checkpoint_saves_total',
    help: 'Checkpoints written, per consumer.',
    labelNames: ['consumer'],
    registers: [this.registry],
  });
  readonly dynamoCalls = new Counter({
    name: 'ackstream_processor_dynamodb_calls_total',
    help: 'DynamoDB API calls sent by this process (both consumers), per operation.',
    labelNames: ['operation'],
    registers: [this.registry],
  });
  readonly batchSeconds = new Histogram({
    name: 'ackstream_processor_batch_seconds',
    help: 'Handler time per batch.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  constructor(withDefaults = false) {
    if (withDefaults) collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_PRECISION_MS });
  }
}

/** Counts every call a DynamoDB client sends (also those of a document client over it), by operation. */
export function countDynamoCalls(client: DynamoDBClient, metrics: ProcessorMetrics): void {
  client.middlewareStack.add(
    (next, context) => (args) => {
      metrics.dynamoCalls.inc({ operation: (context.commandName ?? 'unknown').replace(/Command$/, '') });
      return next(args);
    },
    { step: 'initialize', name: 'ackstreamCountCalls' },
  );
}

/**
 * Serves GET /metrics. A port already taken (another local process) is logged, not fatal: metrics
 * must never stop the processors from committing.
 */
export async function serveMetrics(metrics: ProcessorMetrics, port: number, log: Logger): Promise<{ url?: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url?.split('?')[0] === '/metrics') {
      metrics.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
        (err: Error) => res.writeHead(500).end(err.message),
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  });
  const ok = await new Promise<boolean>((resolve) => {
    server.once('error', (err) => {
      log.warn('metrics server not started', { port, err });
      resolve(false);
    });
    server.listen(port, '0.0.0.0', () => resolve(true));
  });
  if (!ok) return { close: async () => undefined };
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  log.info('metrics served', { url: `${url}/metrics` });
  return { url, close: () => new Promise<void>((r) => server.close(() => r())) };
}
