/**
 * The attachments construct (infra/lib/constructs/attachments.ts), synthesized in a small stack:
 * what the bucket, queues, worker and CDN must be, read from the CloudFormation template.
 */
import path from 'node:path';
import { App, Aspects, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Annotations } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { AckstreamStack } from '../../infra/lib/ackstream-stack';
import { devConfig } from '../../infra/lib/config';
import { Attachments } from '../../infra/lib/constructs/attachments';
import { FIXTURES } from './support';

function synth() {
  const app = new App();
  const stack = new Stack(app, 'AttachmentsTest', { env: { account: '123456789012', region: 'eu-west-1' } });
  const stream = new kinesis.Stream(stack, 'Stream');
  const key = { partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING } };
  const items = new dynamodb.Table(stack, 'Items', key);
  const requests = new dynamodb.Table(stack, 'Requests', key);
  const gatewayRole = new iam.Role(stack, 'GatewayRole', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
  const att = new Attachments(stack, 'Attachments', {
    worker: { code: lambda.Code.fromAsset(path.join(FIXTURES, 'lambda')) },
    stream, items, requests, logRetention: logs.RetentionDays.ONE_MONTH, retain: true,
    signingPublicKeyPem: '-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAudf8/iNkQgdvjEdm6xYS\n-----END PUBLIC KEY-----',
  });
  att.grantGateway(gatewayRole);
  Aspects.of(app).add(new AwsSolutionsChecks());
  return { stack, template: Template.fromStack(stack) };
}

const { stack, template } = synth();

test('the bucket is encrypted, private, TLS only, with lifecycle rules for incomplete uploads, stale uploads and thumbnails', () => {
  template.hasResourceProperties('AWS::S3::Bucket', {
    BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
    PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
    LifecycleConfiguration: {
      Rules: Match.arrayWith([
        Match.objectLike({ Id: 'incomplete-uploads', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } }),
        Match.objectLike({ Id: 'stale-uploads', Prefix: 'uploads/', ExpirationInDays: 2 }),
        Match.objectLike({ Id: 'thumbnails-cold', Prefix: 'thumbnails/', Transitions: [{ StorageClass: 'STANDARD_IA', TransitionInDays: 30 }] }),
      ]),
    },
  });
  template.hasResourceProperties('AWS::S3::BucketPolicy', {
    PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
  });
});

test('uploads/ notifications go to the work queue, whose DLQ takes a message after 5 receives', () => {
  template.hasResourceProperties('Custom::S3BucketNotifications', {
    NotificationConfiguration: {
      QueueConfigurations: [Match.objectLike({
        Events: ['s3:ObjectCreated:*'],
        Filter: { Key: { FilterRules: [{ Name: 'prefix', Value: 'uploads/' }] } },
      })],
    },
  });
  template.hasResourceProperties('AWS::SQS::Queue', {
    RedrivePolicy: { deadLetterTargetArn: Match.anyValue(), maxReceiveCount: 5 },
    VisibilityTimeout: 360,
    SqsManagedSseEnabled: true,
  });
});

test('the worker Lambda reads the queue with partial batch responses', () => {
  template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
    BatchSize: 10,
    FunctionResponseTypes: ['ReportBatchItemFailures'],
    EventSourceArn: Match.anyValue(),
  });
  template.hasResourceProperties('AWS::Lambda::Function', {
    Timeout: 60,
    Environment: { Variables: Match.objectLike({ ATTACHMENTS_BUCKET: Match.anyValue(), KINESIS_STREAM: Match.anyValue(), MAX_ATTACHMENT_BYTES: String(10 * 1024 * 1024) }) },
  });
});

test('CloudFront serves the bucket through origin access control, HTTPS only, signed URLs only', () => {
  template.resourceCountIs('AWS::CloudFront::OriginAccessControl', 1);
  template.hasResourceProperties('AWS::CloudFront::Distribution', {
    DistributionConfig: Match.objectLike({
      DefaultCacheBehavior: Match.objectLike({ ViewerProtocolPolicy: 'https-only', TrustedKeyGroups: [Match.anyValue()] }),
    }),
  });
});

test('alarms on queue age, DLQ depth and worker errors', () => {
  for (const metric of ['ApproximateAgeOfOldestMessage', 'ApproximateNumberOfMessagesVisible', 'Errors']) {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: metric });
  }
});

test('least privilege: the gateway may put only under uploads/ and read only objects/ and thumbnails/', () => {
  const policies = template.findResources('AWS::IAM::Policy');
  const gateway = Object.values(policies).find((p) => JSON.stringify(p.Properties.Roles).includes('GatewayRole'))!;
  const statements = gateway.Properties.PolicyDocument.Statement as Array<{ Action: string | string[]; Resource: unknown }>;
  const puts = statements.filter((s) => [s.Action].flat().some((a) => a.startsWith('s3:PutObject')));
  expect(puts).toHaveLength(1);
  expect(JSON.stringify(puts[0]!.Resource)).toContain('/uploads/*');
  const reads = statements.filter((s) => [s.Action].flat().includes('s3:GetObject*'));
  expect(JSON.stringify(reads.map((s) => s.Resource))).not.toContain('/uploads/*');
  expect(JSON.stringify(statements)).not.toContain('s3:DeleteObject');
});

test('no unsuppressed cdk-nag errors', () => {
  const errors = Annotations.fromStack(stack).findError('*', Match.stringLikeRegexp('AwsSolutions-.*'));
  expect(errors.map((e) => `${e.id}: ${String(e.entry.data).slice(0, 80)}`)).toEqual([]);
});

test('in the whole stack: the gateway gets the bucket and queue settings, and the ALB sends every attachment route to it', () => {
  const app = new App();
  const config = devConfig();
  const full = new AckstreamStack(app, 'Ackstream-dev', {
    env: { account: '123456789012', region: config.region },
    config,
    processor: { code: lambda.Code.fromAsset(path.join(FIXTURES, 'lambda')) },
    attachmentWorker: { code: lambda.Code.fromAsset(path.join(FIXTURES, 'lambda')) },
    migrationCode: lambda.Code.fromAsset(path.join(FIXTURES, 'lambda')),
    imageDirectory: path.join(FIXTURES, 'image'),
  });
  const t = Template.fromStack(full);
  t.hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', {
    Priority: 15,
    Conditions: [{ Field: 'path-pattern', PathPatternConfig: { Values: ['/v1/collections/*/items/*/attachments', '/v1/collections/*/items/*/attachments/*'] } }],
  });
  const gatewayTask = Object.values(t.findResources('AWS::ECS::TaskDefinition'))
    .find((r) => JSON.stringify(r.Properties.ContainerDefinitions).includes('gateway/main.ts'))!;
  const names = (gatewayTask.Properties.ContainerDefinitions[0].Environment as Array<{ Name: string }>).map((e) => e.Name);
  expect(names).toEqual(expect.arrayContaining(['ATTACHMENTS_BUCKET', 'WORK_QUEUE_URL']));
});
