/**
 * The local stack's notification bridge (scripts/attachment-stack.ts) against a real fauxqs: it
 * lists the bucket fast while uploads land and backs off when nothing new does (an idle `npm start`
 * must stay under 5 % of a core, issue #17), yet still announces an upload that lands after a quiet
 * spell, within its idle interval.
 */
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { createSqs } from '../core/aws';
import { createLogger } from '../core/log';
import { createS3 } from '../core/object-store';
import { NotificationBridge, provisionAttachments } from '../scripts/attachment-stack';
import { type Emulators, startEmulators } from '../scripts/local-stack';

describe('attachments notification bridge (local stack)', () => {
  let emulators: Emulators;
  let s3: S3Client;
  let sqs: SQSClient;
  let listings = 0;
  let queueUrl: string;
  const bucket = 'bridge-idle';

  beforeAll(async () => {
    emulators = await startEmulators();
    s3 = createS3({ region: 'us-east-1', endpoint: emulators.sqsEndpoint });
    sqs = createSqs({ region: 'us-east-1', endpoint: emulators.sqsEndpoint });
    // Counts the bridge's ListObjectsV2 calls (the only command it sends on this client).
    s3.middlewareStack.add((next, context) => async (args) => {
      if (context.commandName === 'ListObjectsV2Command') listings++;
      return next(args);
    }, { step: 'initialize' });
    ({ workQueueUrl: queueUrl } = await provisionAttachments(s3, sqs, { bucket, queueName: 'bridge-idle-work' }));
  });

  afterAll(async () => {
    s3.destroy();
    sqs.destroy();
    await emulators.close();
  });

  it('backs off to its idle interval while nothing lands, and announces an upload made after the quiet spell within it', async () => {
    const bridge = new NotificationBridge(s3, sqs, {
      bucket, queueUrl, region: 'us-east-1', intervalMs: 50, idleIntervalMs: 400, log: createLogger('silent', {}),
    });
    bridge.start();
    try {
      await new Promise((r) => setTimeout(r, 100));
      const before = listings;
      await new Promise((r) => setTimeout(r, 2000));
      // Every 50 ms would be ~40 listings in 2 s; backing off to 400 ms leaves about 5.
      expect(listings - before).toBeLessThanOrEqual(8);

      const put = Date.now();
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'uploads/t/c/i/a1', Body: Buffer.from('x'), ContentType: 'text/plain' }));
      const got = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, WaitTimeSeconds: 2 }));
      expect(got.Messages).toHaveLength(1);
      expect(JSON.parse(got.Messages![0]!.Body!).Records[0].s3.object.key).toBe('uploads/t/c/i/a1');
      expect(Date.now() - put).toBeLessThan(400 + 300);
    } finally {
      await bridge.stop();
    }
  });
});
