/**
 * The attachment worker as a local process: the same handler as the Lambda, fed by the SQS runner.
 * ATTACHMENT_WORKER_EXIT_AT=<inspected|kept|queued> makes it exit at that step of its first upload
 * (tests use it to prove a worker killed mid-object and restarted processes the upload once).
 */
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { createSqs } from '../core/aws';
import { loadConfig, runMain } from '../core/config';
import { createLogger } from '../core/log';
import { closeOnSignals, type RunningService } from '../core/service';
import { composeWorker, WorkerConfig } from './composition';
import { SqsRunner } from './sqs-runner';

export async function startWorker(config: WorkerConfig): Promise<RunningService> {
  if (!config.WORK_QUEUE_URL) throw new Error('WORK_QUEUE_URL is required for the local worker runner');
  const log = createLogger(config.LOG_LEVEL, { service: 'attachment-worker' });
  const exitAt = config.ATTACHMENT_WORKER_EXIT_AT;
  const { worker, close } = composeWorker(config, log, exitAt ? {
    step: (name) => {
      if (name === exitAt) process.kill(process.pid, 'SIGKILL');
    },
  } : {});
  const sqs = createSqs({ region: config.AWS_REGION, endpoint: config.SQS_ENDPOINT });
  const attrs = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: config.WORK_QUEUE_URL, AttributeNames: ['QueueArn'] }));
  // Long polling at SQS's maximum (as Lambda's event source mapping does): a message is received
  // as soon as it is sent, and an idle worker asks once per 20 s instead of once a second (issue #17).
  const runner = new SqsRunner({
    sqs, queueUrl: config.WORK_QUEUE_URL, queueArn: attrs.Attributes?.QueueArn ?? '', region: config.AWS_REGION,
    handler: (e) => worker.handle(e), log, batchSize: config.WORKER_BATCH_SIZE, waitSeconds: 20,
  });
  runner.start();
  log.info('attachment worker running', { queue: config.WORK_QUEUE_URL });
  return {
    name: 'attachment-worker',
    port: 0,
    url: '',
    async close() {
      await runner.stop();
      sqs.destroy();
      close();
    },
  };
}

if (require.main === module) {
  runMain(async () => {
    const service = await startWorker(loadConfig(WorkerConfig));
    closeOnSignals([service]);
  });
}
