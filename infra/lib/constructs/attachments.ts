import { CustomResource, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3n from 'aws-cdk-lib/aws-s3-notifications';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as cr from 'aws-cdk-lib/custom-resources';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import * as path from 'node:path';
import { esbuildLambdaCode, lambdaPlatform, nearestNodeModules } from '../lambda-bundle';
import type { ProcessorSource } from './stream-processor';

export interface AttachmentsProps {
  /** The worker Lambda: `{ entry: 'worker/lambda.ts' }` in the app, prebuilt code in tests. */
  readonly worker: ProcessorSource;
  readonly stream: kinesis.IStream;
  readonly items: dynamodb.ITable;
  readonly requests: dynamodb.ITable;
  readonly logRetention: logs.RetentionDays;
  readonly retain: boolean;
  /**
   * The worker's architecture. It must be the one whose sharp binaries are installed
   * (`node_modules/@img/sharp-linux-<cpu>`): synth fails otherwise. Default x86_64, what `npm ci`
   * installs on the x86_64 build machines this repo is tested on.
   */
  readonly architecture?: lambda.Architecture;
  /** Per-object limit (MAX_ATTACHMENT_BYTES) for the worker. */
  readonly maxAttachmentBytes?: number;
  /** Encrypts the CDN signing key's secret (the stack's data key); default: Secrets Manager's own key. */
  readonly encryptionKey?: kms.IKey;
  /** Ready code for the signing-key generator instead of bundling infra/runtime/signing-key-handler.ts (fast tests). */
  readonly signingKeyCode?: lambda.Code;
}

/** Query parameters the CDN forwards to S3 and keys its cache on: the download's file name and type (gateway/download-urls.ts). */
export const CDN_FORWARDED_QUERY = ['response-content-disposition', 'response-content-type'] as const;

/**
 * The worker's bundle: esbuild for the code, and sharp (native: libvips + its Node addon) copied
 * beside it as npm installs it, with only the platform packages of the function's architecture
 * (`@img/sharp-linux-<cpu>`, `@img/sharp-libvips-linux-<cpu>`). tests/infra/deployed.test.ts runs the
 * asset from the cloud assembly in a fresh Node process, away from the repo's node_modules.
 */
export function workerCode(entry: string, architecture: lambda.Architecture): lambda.Code {
  const platform = lambdaPlatform(architecture);
  return esbuildLambdaCode(entry, {
    conditions: ['module-sync'], // file-type is ESM only; worker/inspect.ts requires it
    nativeModules: {
      packages: ['sharp'],
      platform,
      required: [`@img/sharp-${platform.os}-${platform.cpu}`, `@img/sharp-libvips-${platform.os}-${platform.cpu}`],
      nodeModules: nearestNodeModules(path.dirname(entry)),
    },
  });
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
  /** The private half of the CDN's signing key (PEM), written by the generator; the gateway gets it from here. */
  readonly signingKeySecret: secretsmanager.Secret;
  /** The CloudFront public key (its id is the signed URLs' Key-Pair-Id). */
  readonly signingPublicKey: cloudfront.PublicKey;
  /** The generator's resource: whatever reads the secret starts after it. */
  readonly signingKeyPair: CustomResource;
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

    const architecture = props.architecture ?? lambda.Architecture.X86_64;
    const code = 'entry' in props.worker ? workerCode(props.worker.entry, architecture) : props.worker.code;
    this.fn = new lambda.Function(this, 'Worker', {
      // Amazon Linux 2023 (glibc 2.34): sharp's prebuilt linux binaries need glibc >= 2.28.
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture,
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

    // The CDN's signing key pair, generated at deploy time (infra/runtime/signing-key-handler.ts):
    // the private key goes straight into this secret, the public key into the key group.
    this.signingKeySecret = new secretsmanager.Secret(this, 'CdnSigningKey', {
      description: 'PEM RSA private key that signs attachment download URLs (CloudFront key group); written by the SigningKeyPair custom resource',
      ...(props.encryptionKey ? { encryptionKey: props.encryptionKey } : {}),
      removalPolicy,
    });
    const keyFn = new lambda.Function(this, 'SigningKeyFn', {
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      code: props.signingKeyCode ?? esbuildLambdaCode(path.join(__dirname, '..', '..', 'runtime', 'signing-key-handler.ts')),
      handler: 'index.handler',
      memorySize: 256,
      timeout: Duration.seconds(60),
      logGroup: new logs.LogGroup(this, 'SigningKeyLogs', { retention: props.logRetention, removalPolicy: RemovalPolicy.DESTROY }),
    });
    this.signingKeySecret.grantRead(keyFn);
    this.signingKeySecret.grantWrite(keyFn);
    const provider = new cr.Provider(this, 'SigningKeyProvider', {
      onEventHandler: keyFn,
      logGroup: new logs.LogGroup(this, 'SigningKeyProviderLogs', { retention: props.logRetention, removalPolicy: RemovalPolicy.DESTROY }),
    });
    this.signingKeyPair = new CustomResource(this, 'SigningKeyPair', {
      serviceToken: provider.serviceToken,
      resourceType: 'Custom::CdnSigningKeyPair',
      properties: { SecretArn: this.signingKeySecret.secretArn },
    });
    this.signingPublicKey = new cloudfront.PublicKey(this, 'SigningKey', {
      encodedKey: this.signingKeyPair.getAttString('PublicKeyPem'),
      comment: 'Verifies attachment download URLs signed by the gateway',
    });
    const keyGroup = new cloudfront.KeyGroup(this, 'SigningKeys', { items: [this.signingPublicKey] });

    // Origin access control: CloudFront signs its requests to S3; the bucket policy lets only this distribution read.
    const origin = origins.S3BucketOrigin.withOriginAccessControl(this.bucket, { originAccessLevels: [cloudfront.AccessLevel.READ] });
    // Attachment ids are never reused: an object at a key never changes, so it may be cached long.
    const cachePolicy = new cloudfront.CachePolicy(this, 'CachePolicy', {
      comment: 'Attachments: cache key = path + the file name and type of the download (forwarded to S3)',
      queryStringBehavior: cloudfront.CacheQueryStringBehavior.allowList(...CDN_FORWARDED_QUERY),
      headerBehavior: cloudfront.CacheHeaderBehavior.none(),
      cookieBehavior: cloudfront.CacheCookieBehavior.none(),
      defaultTtl: Duration.days(1),
      maxTtl: Duration.days(365),
      minTtl: Duration.seconds(0),
      enableAcceptEncodingGzip: true,
      enableAcceptEncodingBrotli: true,
    });
    this.distribution = new cloudfront.Distribution(this, 'Cdn', {
      comment: 'Ackstream attachments (signed URLs only)',
      defaultBehavior: {
        origin,
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
        allowedMethods: cloudfront.AllowedMethods.ALLOW_GET_HEAD,
        cachePolicy,
        trustedKeyGroups: [keyGroup],
      },
    });

    this.alarms = [
      new cloudwatch.Alarm(this, 'QueueAge', {
        alarmDescription: 'Attachment work queue: oldest message older than 5 min (worker behind or failing)',
        metric: this.workQueue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(1), statistic: 'Maximum' }),
        threshold: 300,
        evaluationPeriods: 5,
      }),
      this.anyAlarm('DlqDepth', 'Attachment work DLQ has messages (poison notifications or purge jobs)',
        this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: 'Maximum' })),
      this.anyAlarm('WorkerErrors', 'Attachment worker invocations failing',
        this.fn.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' })),
    ];

    NagSuppressions.addResourceSuppressions(this, [
      { id: 'AwsSolutions-S1', reason: 'Object access is audited through CloudTrail data events of the account; server access logs would need a second bucket per stage.' },
      { id: 'AwsSolutions-CFR1', reason: 'Attachments are served worldwide to authenticated users via signed URLs; no geo restriction is in the contract.' },
      { id: 'AwsSolutions-CFR2', reason: 'Only signed URLs are served (key group); WAF sits in front of the API, where the URLs are issued.' },
      { id: 'AwsSolutions-CFR3', reason: 'Access logging of the CDN is left to the deployment (a log bucket per account).' },
      { id: 'AwsSolutions-CFR4', reason: 'The default *.cloudfront.net certificate (its security policy is fixed by CloudFront); a TLS 1.2 minimum needs a custom domain and certificate, which the deployment does not assume. Viewers are HTTPS only.' },
      { id: 'AwsSolutions-SMG4', reason: 'The CDN signing key is rotated by replacing the key pair (docs/DEPLOY.md), not by a Secrets Manager rotation function: the public half must change in the key group at the same time.' },
      { id: 'AwsSolutions-IAM5', reason: 'Grants are scoped to one bucket and a key prefix (uploads/*, objects/*, thumbnails/*); object keys are per item.' },
      { id: 'AwsSolutions-IAM4', reason: 'AWSLambdaBasicExecutionRole is the managed policy for the worker\'s, the key generator\'s and CDK\'s custom-resource provider\'s logs.' },
      { id: 'AwsSolutions-L1', reason: 'The runtime is pinned to the project\'s Node version (24.x) like the processors; the custom-resource provider\'s is CDK\'s.' },
    ], true);
  }

  /** Fires on the first one the metric counts in one period: a parked message or a failed invocation is never noise. */
  private anyAlarm(id: string, description: string, metric: cloudwatch.IMetric): cloudwatch.Alarm {
    return new cloudwatch.Alarm(this, id, {
      alarmDescription: description,
      metric,
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
    });
  }

  /**
   * The gateway signs upload URLs (PutObject on uploads/) and sends purge jobs. Downloads are
   * CloudFront-signed with the key in {@link signingKeySecret} (injected by ECS: the task's
   * execution role reads it, see {@link gatewaySecrets}): the gateway needs no read of the bucket.
   */
  grantGateway(role: iam.IGrantable): void {
    this.bucket.grantPut(role, 'uploads/*');
    this.workQueue.grantSendMessages(role);
    if (role instanceof Construct) {
      NagSuppressions.addResourceSuppressions(role, [
        { id: 'AwsSolutions-IAM5', reason: 'The attachment grant is scoped to one bucket and one key prefix (uploads/* put).' },
      ], true);
    }
  }

  /** The gateway's environment for attachments: the bucket, the work queue, CloudFront-signed downloads (gateway/download-urls.ts). */
  gatewayEnvironment(): Record<string, string> {
    return {
      ATTACHMENTS_BUCKET: this.bucket.bucketName,
      WORK_QUEUE_URL: this.workQueue.queueUrl,
      ATTACHMENT_DOWNLOADS: 'cloudfront',
      ATTACHMENT_CDN_DOMAIN: this.distribution.distributionDomainName,
      ATTACHMENT_CDN_KEY_PAIR_ID: this.signingPublicKey.publicKeyId,
    };
  }

  /** The gateway's secrets: the CDN signing key, as ATTACHMENT_CDN_PRIVATE_KEY. */
  gatewaySecrets(): Record<string, secretsmanager.ISecret> {
    return { ATTACHMENT_CDN_PRIVATE_KEY: this.signingKeySecret };
  }
}
