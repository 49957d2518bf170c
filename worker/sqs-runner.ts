/**
 * Local runner with the semantics of Lambda's SQS event source mapping (ReportBatchItemFailures):
 * long-polls the work queue, hands the handler Lambda-shaped batches, deletes the messages that
 * succeeded and leaves the reported failures to reappear after the visibility timeout (the
 * queue's redrive policy moves them to its DLQ after maxReceiveCount receives).
 */
import { DeleteMessageBatchCommand, ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import type { Logger } from '../core/log';

export interface SqsRunnerOptions {
  sqs: SQSClient;
  queueUrl: string;
  queueArn: string;
  region: string;
  handler: (event: SQSEvent) => Promise<SQSBatchResponse>;
  log: Logger;
  batchSize: number;
  waitSeconds: number;
}

export class SqsRunner {
  private stopped = false;
  private loop: Promise<void> | undefined;
  private abort = new AbortController();

  constructor(private readonly o: SqsRunnerOptions) {}

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        const out = await this.o.sqs.send(new ReceiveMessageCommand({
          QueueUrl: this.o.queueUrl, MaxNumberOfMessages: this.o.batchSize, WaitTimeSeconds: this.o.waitSeconds,
          MessageSystemAttributeNames: ['ApproximateReceiveCount', 'SentTimestamp'],
        }), { abortSignal: this.abort.signal });
        const messages = out.Messages ?? [];
        if (!messages.length) continue;
        const records: SQSRecord[] = messages.map((m) => ({
          messageId: m.MessageId!, receiptHandle: m.ReceiptHandle!, body: m.Body ?? '',
          attributes: {
            ApproximateReceiveCount: m.Attributes?.ApproximateReceiveCount ?? '1', SentTimestamp: m.Attributes?.SentTimestamp ?? String(Date.now()),
            SenderId: 'local', ApproximateFirstReceiveTimestamp: String(Date.now()),
          },
          messageAttributes: {}, md5OfBody: m.MD5OfBody ?? '', eventSource: 'aws:sqs', eventSourceARN: this.o.queueArn, awsRegion: this.o.region,
        }));
        const result = await this.o.handler({ Records: records });
        const failed = new Set(result.batchItemFailures.map((f) => f.itemIdentifier));
        const done = records.filter((r) => !failed.has(r.messageId));
        if (done.length) {
          await this.o.sqs.send(new DeleteMessageBatchCommand({
            QueueUrl: this.o.queueUrl, Entries: done.map((r, i) => ({ Id: String(i), ReceiptHandle: r.receiptHandle })),
          }));
        }
      } catch (err) {
        if (this.stopped) return;
        this.o.log.warn('work queue poll failed', { err });
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }
}
