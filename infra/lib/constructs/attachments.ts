import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3n from 'aws-cdk-lib/aws-s3-notifications';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { esbuildLambdaCode } from '../lambda-bundle';
import type { ProcessorSource } from './stream-processor';

export interface AttachmentsProps {
  /** The worker Lambda: `{ entry: 'worker/lambda.ts' }` in the app, prebuilt code in tests. */
  readonly worker: ProcessorSource;
  readonly stream: kinesis.IStream;
  readonly items: dynamodb.ITable;
  readonly requests: dynamodb.ITable;
  readonly logRetention: logs.RetentionDays;
  readonly retain: boolean;
  /** Per-object limit (MAX_ATTACHMENT_BYTES) for the worker. */
  readonly maxAttachmentBytes?: number;
  /** A PEM public key: CloudFront then only serves URLs signed with its private key (a key group). */
  readonly signingPublicKeyPem?: string;
}

/**
 * Attachments (issue #16): the bucket (uploads land under uploads/ via presigned PUTs; checked bytes
 * under objects/, thumbnails under thumbnails/), its ObjectCreated notifications to the SQS work
 * queue (+ DLQ), the worker Lambda (SQS event source, partial batch responses), CloudFront with
 * origin access control in front of the bucket, and the alarms that say the worker is behind or
 * failing. `grantGateway` gives the gateway's task role exactly what it signs and sends.
 */
export class Attachments extends Construct {
  readonly bucket: s3.Bucket;
  readonly workQueue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  readonly fn: lambda.Function;
  readonly distribution: cloudfront.Distribution;
  readonly alarms: cloudwatch.Alarm[];

  constructor(scope: Construct, id: string, props: AttachmentsProps) {
    super(scope, id);
    const removalPolicy = props.retain ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;

    this.bucket = new s3.Bucket(this, 'Bucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      removalPolicy,
      autoDeleteObjects: !props.retain,
      lifecycleRules: [
        // Multipart uploads never completed, and uploads never handled (the worker deletes each one it handles).
        { id: 'incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
        { id: 'stale-uploads', prefix: 'uploads/', expiration: Duration.days(2) },
        // Thumbnails are derived (rebuildable from objects/): cheaper storage once cold.
        { id: 'thumbnails-cold', prefix: 'thumbnails/', transitions: [{ storageClass: s3.StorageClass.INFREQUENT_ACCESS, transitionAfter: Duration.days(30) }] },
      ],
    });

    this.deadLetterQueue = new sqs.Queue(this, 'WorkDlq', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    const timeout = Duration.seconds(60);
    this.workQueue = new sqs.Queue(this, 'WorkQueue', {
      // SQS-managed keys: S3 notifications cannot publish to a queue under a customer key without a key policy for s3.amazonaws.com.
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // Six times the function timeout, as Lambda's SQS event source recommends.
      visibilityTimeout: Duration.seconds(timeout.toSeconds() * 6),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: 5 },
    });
    this.bucket.addEventNotification(s3.EventType.OBJECT_CREATED, new s3n.SqsDestination(this.workQueue), { prefix: 'uploads/' });
    // CDK's singleton handler that configures bucket notifications (a stack-level custom resource).
    for (const child of Stack.of(this).node.children) {
      if (child.node.id.startsWith('BucketNotificationsHandler')) {
        NagSuppressions.addResourceSuppressions(child, [
          { id: 'AwsSolutions-IAM4', reason: 'CDK\'s bucket-notifications custom resource uses the Lambda basic execution managed policy.' },
          { id: 'AwsSolutions-IAM5', reason: 'CDK\'s bucket-notifications custom resource needs s3:PutBucketNotification on the bucket.' },
        ], true);
      }
    }

    const code = 'entry' in props.worker ? esbuildLambdaCode(props.worker.entry) : props.worker.code;
    this.fn = new lambda.Function(this, 'Worker', {
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      code,
      handler: 'entry' in props.worker ? 'index.handler' : (props.worker.handler ?? 'index.handler'),
      memorySize: 1024, // sharp and one object of up to MAX_ATTACHMENT_BYTES in memory
      timeout,
      logGroup: new logs.LogGroup(this, 'WorkerLogs', { retention: props.logRetention, removalPolicy }),
      tracing: lambda.Tracing.ACTIVE,
      environment: {
        ATTACHMENTS_BUCKET: this.bucket.bucketName,
        KINESIS_STREAM: props.stream.streamName,
        ITEMS_TABLE: props.items.tableName,
        REQUESTS_TABLE: props.requests.tableName,
        MAX_ATTACHMENT_BYTES: String(props.maxAttachmentBytes ?? 10 * 1024 * 1024),
        LOG_LEVEL: 'info',
      },
    });
    this.fn.addEventSource(new sources.SqsEventSource(this.workQueue, {
      batchSize: 10,
      maxBatchingWindow: Duration.seconds(1),
      reportBatchItemFailures: true,
    }));

    // Least privilege, per prefix: read and delete uploads, write kept objects and thumbnails, delete what a purge removes.
    this.bucket.grantRead(this.fn, 'uploads/*');
    this.bucket.grantDelete(this.fn, 'uploads/*');
    for (const prefix of ['objects/*', 'thumbnails/*']) {
      this.bucket.grantPut(this.fn, prefix);
      this.bucket.grantRead(this.fn, prefix);
      this.bucket.grantDelete(this.fn, prefix);
    }
    props.stream.grantWrite(this.fn);
    props.items.grantReadData(this.fn);
    props.requests.grantReadData(this.fn);

    const origin = origins.S3BucketOrigin.withOriginAccessControl(this.bucket, { originAccessLevels: [cloudfront.AccessLevel.READ] });
    const keyGroup = props.signingPublicKeyPem
      ? new cloudfront.KeyGroup(this, 'SigningKeys', { items: [new cloudfront.PublicKey(this, 'SigningKey', { encodedKey: props.signingPublicKeyPem })] })
      : undefined;
    this.distribution = new cloudfront.Distribution(this, 'Cdn', {
      comment: 'Ackstream attachments (signed URLs only)',
      minimumProtocolVersion: cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
      defaultBehavior: {
        origin,
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
        allowedMethods: cloudfront.AllowedMethods.ALLOW_GET_HEAD,
        cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED,
        ...(keyGroup ? { trustedKeyGroups: [keyGroup] } : {}),
      },
    });

    this.alarms = [
      new cloudwatch.Alarm(this, 'QueueAge', {
        alarmDescription: 'Attachment work queue: oldest message older than 5 min (worker behind or failing)',
        metric: this.workQueue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(1), statistic: 'Maximum' }),
        threshold: 300,
        evaluationPeriods: 5,
      }),
      new cloudwatch.Alarm(this, 'DlqDepth', {
        alarmDescription: 'Attachment work DLQ has messages (poison notifications or purge jobs)',
        metric: this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: 'Maximum' }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
      }),
      new cloudwatch.Alarm(this, 'WorkerErrors', {
        alarmDescription: 'Attachment worker invocations failing',
        metric: this.fn.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
      }),
    ];

    NagSuppressions.addResourceSuppressions(this, [
      { id: 'AwsSolutions-S1', reason: 'Object access is audited through CloudTrail data events of the account; server access logs would need a second bucket per stage.' },
      { id: 'AwsSolutions-CFR1', reason: 'Attachments are served worldwide to authenticated users via signed URLs; no geo restriction is in the contract.' },
      { id: 'AwsSolutions-CFR2', reason: 'Only signed URLs are served (key group); WAF sits in front of the API, where the URLs are issued.' },
      { id: 'AwsSolutions-CFR3', reason: 'Access logging of the CDN is left to the deployment (a log bucket per account).' },
      { id: 'AwsSolutions-CFR4', reason: 'The default CloudFront certificate: TLS 1.2 minimum is set; a custom domain is optional.' },
      { id: 'AwsSolutions-IAM5', reason: 'Grants are scoped to one bucket and a key prefix (uploads/*, objects/*, thumbnails/*); object keys are per item.' },
      { id: 'AwsSolutions-IAM4', reason: 'AWSLambdaBasicExecutionRole is the managed policy for the worker\'s logs.' },
      { id: 'AwsSolutions-L1', reason: 'The runtime is pinned to the project\'s Node version (24.x) like the processors.' },
    ], true);
  }

  /** The gateway signs upload URLs (PutObject on uploads/) and download URLs (GetObject on objects/, thumbnails/), and sends purge jobs. */
  grantGateway(role: iam.IGrantable): void {
    this.bucket.grantPut(role, 'uploads/*');
    this.bucket.grantRead(role, 'objects/*');
    this.bucket.grantRead(role, 'thumbnails/*');
    this.workQueue.grantSendMessages(role);
    if (role instanceof Construct) {
      NagSuppressions.addResourceSuppressions(role, [
        { id: 'AwsSolutions-IAM5', reason: 'Attachment grants are scoped to one bucket and one key prefix each (uploads/* put; objects/*, thumbnails/* read).' },
      ], true);
    }
  }

  /** The gateway's environment for attachments. */
  gatewayEnvironment(): Record<string, string> {
    return { ATTACHMENTS_BUCKET: this.bucket.bucketName, WORK_QUEUE_URL: this.workQueue.queueUrl };
  }
}
