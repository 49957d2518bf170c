/**
 * The local stack's object store for attachments (issue #16): fauxqs emulates S3 on its SQS port,
 * but has no bucket notifications. So the local stack BRIDGES them: `NotificationBridge` lists the
 * bucket's `uploads/` prefix and, for each new (key, ETag), sends the work queue an S3 event
 * notification shaped like the one S3 sends (ObjectCreated:Put). It lists every `intervalMs` while
 * uploads land; after each scan that finds nothing new the wait doubles, up to `idleIntervalMs`, so
 * an idle stack lists about once per `idleIntervalMs` instead of 4 times a second (issue #17: idle
 * CPU), and the first upload after a quiet spell is announced at most `idleIntervalMs` late. On AWS the bucket
 * notifies the queue itself (infra/lib/constructs/attachments.ts); the worker cannot tell them apart.
 */
import { CreateBucketCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { CreateQueueCommand, GetQueueAttributesCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { Logger } from '../core/log';

export interface AttachmentQueues {
  workQueueUrl: string;
  workDlqUrl: string;
}

/** The bucket, the work queue and its DLQ (a message received `maxReceiveCount` times moves there). */
export async function provisionAttachments(
  s3: S3Client,
  sqs: SQSClient,
  o: { bucket: string; queueName: string; visibilityTimeoutSeconds?: number; maxReceiveCount?: number },
): Promise<AttachmentQueues> {
  try {
    await s3.send(new CreateBucketCommand({ Bucket: o.bucket }));
  } catch (err) {
    const name = (err as Error).name;
    if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw err;
  }
  const dlq = await sqs.send(new CreateQueueCommand({ QueueName: `${o.queueName}-dlq` }));
  const dlqArn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl!, AttributeNames: ['QueueArn'] }))).Attributes!.QueueArn!;
  const work = await sqs.send(new CreateQueueCommand({
    QueueName: o.queueName,
    Attributes: {
      VisibilityTimeout: String(o.visibilityTimeoutSeconds ?? 30),
      RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: o.maxReceiveCount ?? 5 }),
    },
  }));
  return { workQueueUrl: work.QueueUrl!, workDlqUrl: dlq.QueueUrl! };
}

export class NotificationBridge {
  private readonly seen = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly s3: S3Client,
    private readonly sqs: SQSClient,
    private readonly o: { bucket: string; queueUrl: string; region: string; intervalMs: number; idleIntervalMs?: number; log: Logger },
  ) {}

  start(): void {
    const idleMax = Math.max(this.o.intervalMs, this.o.idleIntervalMs ?? this.o.intervalMs);
    let wait = this.o.intervalMs;
    const tick = async () => {
      try {
        // Something new: uploads are landing, keep listing fast. Nothing new: back off.
        wait = (await this.scan()) > 0 ? this.o.intervalMs : Math.min(idleMax, wait * 2);
      } catch (err) {
        this.o.log.warn('notification bridge scan failed', { err });
      }
      if (!this.stopped) this.timer = setTimeout(() => void (this.running = tick()), wait);
    };
    this.running = tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One pass: a notification for every upload not announced yet (or replaced: a new ETag). */
  async scan(): Promise<number> {
    const listed = new Map<string, { etag: string; size: number }>();
    let token: string | undefined;
    do {
      const page = await this.s3.send(new ListObjectsV2Command({ Bucket: this.o.bucket, Prefix: 'uploads/', ...(token ? { ContinuationToken: token } : {}) }));
      for (const c of page.Contents ?? []) listed.set(c.Key!, { etag: c.ETag ?? '', size: c.Size ?? 0 });
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    let sent = 0;
    for (const [key, o] of listed) {
      if (this.seen.get(key) === o.etag) continue;
      await this.sqs.send(new SendMessageCommand({ QueueUrl: this.o.queueUrl, MessageBody: JSON.stringify(s3Event(this.o.bucket, this.o.region, key, o.size, o.etag)) }));
      this.seen.set(key, o.etag);
      sent++;
    }
    for (const key of this.seen.keys()) if (!listed.has(key)) this.seen.delete(key);
    return sent;
  }
}

/** An S3 event notification (version 2.1) for one created object, keys URL-encoded as S3 does. */
export function s3Event(bucket: string, region: string, key: string, size: number, etag: string) {
  return {
    Records: [{
      eventVersion: '2.1',
      eventSource: 'aws:s3',
      awsRegion: region,
      eventTime: new Date().toISOString(),
      eventName: 'ObjectCreated:Put',
      s3: {
        s3SchemaVersion: '1.0',
        configurationId: 'local-notification-bridge',
        bucket: { name: bucket, arn: `arn:aws:s3:::${bucket}` },
        object: { key: encodeURIComponent(key).replace(/%2F/g, '/').replace(/%20/g, '+'), size, eTag: etag.replace(/"/g, '') },
      },
    }],
  };
}
