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
    signingKeyCode: lambda.Code.fromAsset(path.join(FIXTURES, 'lambda')),
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

test('CloudFront serves the bucket through origin access control, HTTPS only, signed URLs only (the key group of the generated key)', () => {
  const oac = template.findResources('AWS::CloudFront::OriginAccessControl');
  expect(Object.values(oac).map((r) => r.Properties.OriginAccessControlConfig)).toEqual([
    expect.objectContaining({ OriginAccessControlOriginType: 's3', SigningBehavior: 'always', SigningProtocol: 'sigv4' }),
  ]);
  const [distribution] = Object.values(template.findResources('AWS::CloudFront::Distribution'));
  const cfg = distribution!.Properties.DistributionConfig;
  expect(cfg.Origins).toHaveLength(1);
  expect(cfg.Origins[0].OriginAccessControlId).toEqual({ 'Fn::GetAtt': [Object.keys(oac)[0], 'Id'] });
  expect(cfg.Origins[0].S3OriginConfig).toEqual({ OriginAccessIdentity: '' }); // no legacy OAI
  expect(cfg.CacheBehaviors).toBeUndefined(); // one behaviour, the default: every path needs a signature
  const behaviour = cfg.DefaultCacheBehavior;
  expect(behaviour.ViewerProtocolPolicy).toBe('https-only');
  expect(behaviour.AllowedMethods).toEqual(['GET', 'HEAD']);
  // The key group holds exactly the public key whose PEM the generator returned.
  const [keyGroupId] = Object.keys(template.findResources('AWS::CloudFront::KeyGroup'));
  expect(behaviour.TrustedKeyGroups).toEqual([{ Ref: keyGroupId }]);
  const keyGroup = template.toJSON().Resources[keyGroupId!];
  const [publicKeyId, publicKey] = Object.entries(template.findResources('AWS::CloudFront::PublicKey'))[0]!;
  expect(keyGroup.Properties.KeyGroupConfig.Items).toEqual([{ Ref: publicKeyId }]);
  const [generatorId] = Object.keys(template.findResources('Custom::CdnSigningKeyPair'));
  expect(publicKey.Properties.PublicKeyConfig.EncodedKey).toEqual({ 'Fn::GetAtt': [generatorId, 'PublicKeyPem'] });
  // The cache key (and what S3 gets) is the path plus the download's file name and type: never the signature parameters.
  const policy = Object.values(template.findResources('AWS::CloudFront::CachePolicy'))[0]!.Properties.CachePolicyConfig;
  expect(behaviour.CachePolicyId).toEqual({ Ref: Object.keys(template.findResources('AWS::CloudFront::CachePolicy'))[0] });
  expect(policy.ParametersInCacheKeyAndForwardedToOrigin.QueryStringsConfig).toEqual({
    QueryStringBehavior: 'whitelist', QueryStrings: ['response-content-disposition', 'response-content-type'],
  });
  expect(policy.ParametersInCacheKeyAndForwardedToOrigin.CookiesConfig).toEqual({ CookieBehavior: 'none' });
});

test('the bucket policy: only the distribution may read (through OAC), every request without TLS is denied, public access blocked', () => {
  const [policy] = Object.values(template.findResources('AWS::S3::BucketPolicy'));
  const statements = policy!.Properties.PolicyDocument.Statement as Array<Record<string, any>>;
  const allows = statements.filter((st) => st.Effect === 'Allow');
  const [distributionId] = Object.keys(template.findResources('AWS::CloudFront::Distribution'));
  expect(allows).toEqual([expect.objectContaining({
    Principal: { Service: 'cloudfront.amazonaws.com' },
    Action: 's3:GetObject',
    Condition: { StringEquals: { 'AWS:SourceArn': { 'Fn::Join': ['', expect.arrayContaining([{ Ref: distributionId }])] } } },
  })]);
  expect(statements.filter((st) => st.Effect === 'Deny')).toEqual([
    expect.objectContaining({ Action: 's3:*', Principal: { AWS: '*' }, Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
    expect.objectContaining({ Action: 's3:*', Principal: { AWS: '*' }, Condition: { NumericLessThan: { 's3:TlsVersion': 1.2 } } }),
  ]);
  template.hasResourceProperties('AWS::S3::Bucket', {
    PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
    OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
  });
});

test('the signing key: generated at deploy time into its own secret (encrypted), which only the generator may write', () => {
  const [secretId] = Object.keys(template.findResources('AWS::SecretsManager::Secret'));
  const [generator] = Object.values(template.findResources('Custom::CdnSigningKeyPair'));
  expect(generator!.Properties.SecretArn).toEqual({ Ref: secretId });
  const writers = Object.values(template.findResources('AWS::IAM::Policy'))
    .filter((p) => JSON.stringify(p.Properties.PolicyDocument).includes('secretsmanager:PutSecretValue'))
    .map((p) => JSON.stringify(p.Properties.Roles));
  expect(writers).toHaveLength(1);
  expect(writers[0]).toMatch(/SigningKeyFn/);
});

test('alarms on queue age, DLQ depth and worker errors', () => {
  for (const metric of ['ApproximateAgeOfOldestMessage', 'ApproximateNumberOfMessagesVisible', 'Errors']) {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: metric });
  }
});

const statementsOf = (roleMatch: RegExp) => Object.values(template.findResources('AWS::IAM::Policy'))
  .filter((p) => roleMatch.test(JSON.stringify(p.Properties.Roles)))
  .flatMap((p) => p.Properties.PolicyDocument.Statement as Array<{ Action: string | string[]; Resource: unknown }>);
const s3Grants = (statements: Array<{ Action: string | string[]; Resource: unknown }>) => statements
  .filter((st) => [st.Action].flat().some((a) => a.startsWith('s3:')))
  .map((st) => ({ actions: [st.Action].flat().sort(), resources: JSON.stringify(st.Resource) }));

test('least privilege: the gateway may only put under uploads/ and send to the work queue (downloads are CDN-signed: no read of the bucket)', () => {
  const statements = statementsOf(/GatewayRole/);
  const s3 = s3Grants(statements);
  expect(s3).toHaveLength(1);
  expect(s3[0]!.actions.every((a) => a.startsWith('s3:PutObject') || a === 's3:Abort*')).toBe(true);
  expect(s3[0]!.resources).toContain('/uploads/*');
  expect(JSON.stringify(statements)).not.toMatch(/s3:GetObject|s3:DeleteObject|s3:List/);
  expect(statements.flatMap((st) => [st.Action].flat()).filter((a) => a.startsWith('sqs:')).sort()).toEqual(['sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:SendMessage']);
});

test('least privilege: the worker reads and deletes uploads/, writes objects/ and thumbnails/, puts on the stream; no bucket-wide grant', () => {
  const s3 = s3Grants(statementsOf(/Worker/));
  expect(s3.length).toBeGreaterThan(0);
  for (const g of s3) expect(g.resources).toMatch(/\/(uploads|objects|thumbnails)\/\*/);
  const puts = s3.filter((g) => g.actions.some((a) => a.startsWith('s3:PutObject')));
  expect(puts.map((g) => g.resources).join()).not.toContain('/uploads/*'); // it never writes an upload
  expect(JSON.stringify(statementsOf(/Worker/))).toContain('kinesis:PutRecord');
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
    attachmentSigningKeyCode: lambda.Code.fromAsset(path.join(FIXTURES, 'lambda')),
    imageDirectory: path.join(FIXTURES, 'image'),
  });
  const t = Template.fromStack(full);
  t.hasResourceProperties('AWS::ElasticLoadBalancingV2::ListenerRule', {
    Priority: 15,
    Conditions: [{ Field: 'path-pattern', PathPatternConfig: { Values: ['/v1/collections/*/items/*/attachments', '/v1/collections/*/items/*/attachments/*'] } }],
  });
  const gatewayTask = Object.values(t.findResources('AWS::ECS::TaskDefinition'))
    .find((r) => JSON.stringify(r.Properties.ContainerDefinitions).includes('gateway/main.ts'))!;
  const container = gatewayTask.Properties.ContainerDefinitions[0];
  const env = Object.fromEntries((container.Environment as Array<{ Name: string; Value: unknown }>).map((e) => [e.Name, e.Value]));
  expect(Object.keys(env)).toEqual(expect.arrayContaining(['ATTACHMENTS_BUCKET', 'WORK_QUEUE_URL']));
  // Downloads: CloudFront-signed, on the attachments distribution, with the generated key (its id; the private half from the secret).
  const json = t.toJSON();
  const [cdn] = Object.keys(t.findResources('AWS::CloudFront::Distribution'));
  const [publicKey] = Object.keys(t.findResources('AWS::CloudFront::PublicKey'));
  const [generator] = Object.keys(t.findResources('Custom::CdnSigningKeyPair'));
  const keySecret = json.Resources[generator!].Properties.SecretArn.Ref as string;
  expect(env['ATTACHMENT_DOWNLOADS']).toBe('cloudfront');
  expect(env['ATTACHMENT_CDN_DOMAIN']).toEqual({ 'Fn::GetAtt': [cdn, 'DomainName'] });
  expect(env['ATTACHMENT_CDN_KEY_PAIR_ID']).toEqual({ Ref: publicKey });
  expect(container.Secrets).toEqual(expect.arrayContaining([{ Name: 'ATTACHMENT_CDN_PRIVATE_KEY', ValueFrom: { Ref: keySecret } }]));
  // Tasks start only once the generator has put the key in the secret.
  const [service] = Object.entries(t.findResources('AWS::ECS::Service')).find(([id]) => id.startsWith('Gateway'))!;
  expect(json.Resources[service].DependsOn).toEqual(expect.arrayContaining([generator]));
  // The attachment quota is in PostgreSQL: the gateway reaches the proxy as the application role,
  // reading that role's rotating secret itself (its task role may read it; nothing stale is injected).
  // The application role's secret: the one the migration sets the role's password from.
  const [migrationEnv] = Object.values(t.findResources('AWS::Lambda::Function'))
    .map((r) => r.Properties.Environment?.Variables as Record<string, unknown> | undefined)
    .filter((v) => v?.['APP_DB_SECRET_ARN'] !== undefined);
  const appSecret = (migrationEnv!['APP_DB_SECRET_ARN'] as { Ref: string }).Ref;
  const [proxy] = Object.keys(t.findResources('AWS::RDS::DBProxy'));
  expect(env['DB_SECRET_ARN']).toEqual({ Ref: appSecret });
  expect(env['DB_HOST']).toEqual({ 'Fn::GetAtt': [proxy, 'Endpoint'] });
  const taskRole = gatewayTask.Properties.TaskRoleArn['Fn::GetAtt'][0] as string;
  const reads = Object.values(t.findResources('AWS::IAM::Policy'))
    .filter((p) => (p.Properties.Roles as Array<{ Ref: string }>).some((r) => r.Ref === taskRole))
    .flatMap((p) => p.Properties.PolicyDocument.Statement as Array<{ Action: string | string[]; Resource: unknown }>)
    .filter((st) => [st.Action].flat().includes('secretsmanager:GetSecretValue'));
  expect(reads.map((st) => st.Resource)).toContainEqual({ Ref: appSecret });
  const gatewaySg = json.Resources[service].Properties.NetworkConfiguration.AwsvpcConfiguration.SecurityGroups[0]['Fn::GetAtt'][0] as string;
  const ingress = Object.values(t.findResources('AWS::EC2::SecurityGroupIngress'))
    .filter((r) => JSON.stringify(r.Properties.SourceSecurityGroupId ?? '').includes(gatewaySg) && r.Properties.FromPort === 5432);
  expect(ingress.length).toBe(1);
});
