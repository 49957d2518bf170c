/**
 * Gauges read when /metrics is scraped (at most once a second by the operator console), for what
 * the processors do not count themselves:
 * - `ackstream_dlq_messages`: letters waiting in the SQS dead-letter queue (ApproximateNumberOfMessages);
 * - `ackstream_projection_live_version{projection}` and, while a rebuild runs,
 *   `ackstream_projection_rebuild_progress_ratio{projection,version}` (events folded ÷ events to fold)
 *   from the projection registry the rebuild writes (`npm run replay -- rebuild`).
 * A source that does not answer leaves its gauge empty (the console shows n/a), never a stale value.
 */
import { GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '../core/log';
import type { ProjectionRecord } from '../core/projections';

export function trackDeadLetterQueue(registry: Registry, sqs: SQSClient, queueUrl: string, log: Logger): void {
  new Gauge({
    name: 'ackstream_dlq_messages',
    help: 'Letters waiting in the dead-letter queue (SQS ApproximateNumberOfMessages), read at scrape time.',
    registers: [registry],
    async collect() {
      this.reset();
      try {
        const out = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages'] }), { abortSignal: AbortSignal.timeout(500) });
        this.set(Number(out.Attributes?.ApproximateNumberOfMessages ?? 0));
      } catch (err) {
        log.debug('dead-letter queue depth not read', { err });
      }
    },
  });
}

export function trackProjections(registry: Registry, list: () => Promise<ProjectionRecord[]>, log: Logger): void {
  let records: Promise<ProjectionRecord[] | undefined> | undefined;
  // Both gauges are collected in one scrape: one registry read serves them.
  const read = () => (records ??= list().catch((err: unknown) => {
    log.debug('projection registry not read', { err });
    return undefined;
  }).finally(() => setTimeout(() => (records = undefined), 200)));
  new Gauge({
    name: 'ackstream_projection_live_version',
    help: 'The version of each projection that readers are served from.',
    labelNames: ['projection'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const r of (await read()) ?? []) this.set({ projection: r.name }, r.live);
    },
  });
  new Gauge({
    name: 'ackstream_projection_rebuild_progress_ratio',
    help: 'Per projection version being rebuilt: events folded ÷ events to fold (0 until the rebuild knows its head).',
    labelNames: ['projection', 'version'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const r of (await read()) ?? []) {
        for (const v of Object.values(r.versions)) {
          if (v.state !== 'building') continue;
          this.set({ projection: r.name, version: String(v.n) }, v.total ? Math.min(1, (v.done ?? 0) / v.total) : v.total === 0 ? 1 : 0);
        }
      }
    },
  });
}
