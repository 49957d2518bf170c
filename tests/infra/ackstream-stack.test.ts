/**
 * The contract of the CDK app, checked on the synthesized CloudFormation of
 * both stages: what is deployed, where it sits, how it is protected, and that
 * cdk-nag's AwsSolutions pack has nothing left unexplained.
 */
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import { devConfig, prodConfig, StageConfig } from '../../infra/lib/config';
import { idsOf, refs, resourcesOf, subnetIds, synthStage, Synthesized, target } from './support';

const stages: [string, StageConfig][] = [
  ['dev', devConfig()],
  ['prod', prodConfig()],
];

describe.each(stages)('%s stage', (_name, cfg) => {
  let s: Synthesized;
  beforeAll(() => {
    s = synthStage(cfg);
  });

  const azCount = cfg.availabilityZones.length;
  const byLogicalId = (id: string | undefined) => s.json.Resources[id ?? '']!;

  describe('cdk-nag AwsSolutions', () => {
    test('has no unsuppressed errors or warnings', () => {
      const errors = Annotations.fromStack(s.stack).findError('*', Match.stringLikeRegexp('AwsSolutions-.*'));
      const warnings = Annotations.fromStack(s.stack).findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*'));
      expect(errors.map((e) => `${e.id}: ${String(e.entry.data)}`)).toEqual([]);
      expect(warnings.map((e) => `${e.id}: ${String(e.entry.data)}`)).toEqual([]);
    });

    test('every suppression carries a written reason', () => {
      const suppressions = Object.values(s.json.Resources).flatMap(
        (r) => (r.Metadata?.['cdk_nag']?.rules_to_suppress ?? []) as { id: string; reason: string }[],
      );
      expect(suppressions.length).toBeGreaterThan(0);
      for (const sup of suppressions) {
        expect(sup.id).toMatch(/^(AwsSolutions-|CdkNagValidationFailure)/);
        expect(sup.reason.trim().length).toBeGreaterThanOrEqual(30);
      }
    });
  });

  describe('network', () => {
    test(`VPC spans ${azCount} AZs with public, app (private) and data (isolated) subnets`, () => {
      s.template.resourceCountIs('AWS::EC2::VPC', 1);
      expect(subnetIds(s.json, 'public')).toHaveLength(azCount);
      expect(subnetIds(s.json, 'app')).toHaveLength(azCount);
      expect(subnetIds(s.json, 'data')).toHaveLength(azCount);
      const azs = resourcesOf(s.json, 'AWS::EC2::Subnet').map((r) => r.Properties!['AvailabilityZone']);
      expect(new Set(azs)).toEqual(new Set(cfg.availabilityZones));
      s.template.resourceCountIs('AWS::EC2::NatGateway', cfg.natGateways);
    });

    test('data subnets have no route to the internet', () => {
      const data = new Set(subnetIds(s.json, 'data'));
      const dataTables = new Set(
        resourcesOf(s.json, 'AWS::EC2::SubnetRouteTableAssociation')
          .filter((a) => data.has(target(a.Properties!['SubnetId'])!))
          .map((a) => target(a.Properties!['RouteTableId'])),
      );
      const routesOut = resourcesOf(s.json, 'AWS::EC2::Route').filter((r) => dataTables.has(target(r.Properties!['RouteTableId'])));
      expect(routesOut).toEqual([]);
    });

    test('VPC endpoints for Kinesis, SQS, Secrets Manager (interface) and DynamoDB (gateway)', () => {
      const endpoints = resourcesOf(s.json, 'AWS::EC2::VPCEndpoint').map(
        (r) => `${r.Properties!['VpcEndpointType']}:${JSON.stringify(r.Properties!['ServiceName']).replace(/.*\./, '').replace(/"\]*\}*$/, '')}`,
      );
      expect(endpoints).toEqual(
        expect.arrayContaining(['Interface:kinesis-streams', 'Interface:sqs', 'Interface:secretsmanager', 'Gateway:dynamodb']),
      );
    });

    test('only the ALB is open to the internet, and every opening is a single port', () => {
      const ingress = [
        ...resourcesOf(s.json, 'AWS::EC2::SecurityGroupIngress').map((r) => ({ sg: target(r.Properties!['GroupId']), ...r.Properties })),
        ...Object.entries(s.json.Resources)
          .filter(([, r]) => r.Type === 'AWS::EC2::SecurityGroup')
          .flatMap(([id, r]) => ((r.Properties!['SecurityGroupIngress'] ?? []) as object[]).map((rule) => ({ sg: id, ...rule }))),
      ] as { sg: string; CidrIp?: string; FromPort?: number; ToPort?: number; IpProtocol: string }[];
      const albSg = target(s.template.findResources('AWS::ElasticLoadBalancingV2::LoadBalancer')[
        idsOf(s.json, 'AWS::ElasticLoadBalancingV2::LoadBalancer')[0]!
      ]!.Properties.SecurityGroups[0]);
      for (const rule of ingress) {
        expect(rule.IpProtocol).toBe('tcp');
        expect(rule.FromPort).toEqual(rule.ToPort);
        if (rule.CidrIp === '0.0.0.0/0') {
          expect(rule.sg).toBe(albSg);
          expect([80, 443]).toContain(rule.FromPort);
        }
      }
    });

    test('PostgreSQL and Redis accept connections only from named security groups on their port', () => {
      const dbId = idsOf(s.json, 'AWS::RDS::DBInstance', (r) => !r.Properties!['SourceDBInstanceIdentifier'])[0]!;
      const dbSg = target(byLogicalId(dbId).Properties!['VPCSecurityGroups'][0]);
      // CDK wires the DB port as the instance's Endpoint.Port attribute (5432).
      const dbPort = { 'Fn::GetAtt': [dbId, 'Endpoint.Port'] };
      const redisSg = target(resourcesOf(s.json, 'AWS::ElastiCache::ReplicationGroup')[0]!.Properties!['SecurityGroupIds'][0]);
      const rulesInto = (sg: string | undefined) =>
        resourcesOf(s.json, 'AWS::EC2::SecurityGroupIngress').filter((r) => target(r.Properties!['GroupId']) === sg);
      for (const [sg, port, expected] of [
        [dbSg, dbPort, 2], // RDS Proxy + secret rotation
        [redisSg, 6379, 5], // gateway, read API, ack service, processors, operator task
      ] as const) {
        const rules = rulesInto(sg);
        expect(rules).toHaveLength(expected);
        for (const r of rules) {
          expect(r.Properties!['FromPort']).toEqual(port);
          expect(r.Properties!['SourceSecurityGroupId']).toBeDefined();
          expect(r.Properties!['CidrIp']).toBeUndefined();
        }
      }
    });
  });

  describe('edge', () => {
    test('internet-facing ALB in the public subnets with a raised idle timeout and access logs', () => {
      const [alb] = resourcesOf(s.json, 'AWS::ElasticLoadBalancingV2::LoadBalancer');
      expect(alb!.Properties!['Scheme']).toBe('internet-facing');
      expect(refs(alb!.Properties!['Subnets'])).toEqual(subnetIds(s.json, 'public').sort());
      expect(alb!.Properties!['LoadBalancerAttributes']).toEqual(
        expect.arrayContaining([
          { Key: 'idle_timeout.timeout_seconds', Value: String(cfg.albIdleTimeoutSeconds) },
          { Key: 'access_logs.s3.enabled', Value: 'true' },
          { Key: 'routing.http.drop_invalid_header_fields.enabled', Value: 'true' },
          { Key: 'deletion_protection.enabled', Value: String(cfg.retainData) },
        ]),
      );
      expect(cfg.albIdleTimeoutSeconds).toBeGreaterThan(60);
    });

    test('HTTPS on 443 with the certificate parameter; HTTP 80 only redirects', () => {
      s.template.hasParameter('CertificateArn', { Type: 'String' });
      s.template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
        Port: 443,
        Protocol: 'HTTPS',
        Certificates: [{ CertificateArn: { Ref: 'CertificateArn' } }],
        SslPolicy: Match.stringLikeRegexp('TLS13'),
      });
      s.template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
        Port: 80,
        Protocol: 'HTTP',
        DefaultActions: [{ Type: 'redirect', RedirectConfig: { Protocol: 'HTTPS', Port: '443', StatusCode: 'HTTP_301' } }],
      });
    });

    test('routes /v1/acks to the ack service, writes to the gateway, reads to the read API', () => {
      const rules = resourcesOf(s.json, 'AWS::ElasticLoadBalancingV2::ListenerRule').map((r) => ({
        group: target(r.Properties!['Actions'][0].TargetGroupArn)!,
        conditions: Object.fromEntries(
          (r.Properties!['Conditions'] as any[]).map((c) => [
            c.Field,
            (c.PathPatternConfig ?? c.HttpRequestMethodConfig).Values,
          ]),
        ),
      }));
      const port = (group: string) => byLogicalId(group).Properties!['Port'];
      const byPort = Object.fromEntries(rules.map((r) => [port(r.group), r.conditions]));
      expect(byPort[3002]).toEqual({ 'path-pattern': ['/v1/acks', '/v1/acks/*'] });
      expect(byPort[3000]).toEqual({ 'path-pattern': ['/v1/collections/*'], 'http-request-method': ['PUT', 'PATCH', 'DELETE'] });
      expect(byPort[3001]).toEqual({
        'path-pattern': ['/v1/collections/*', '/v1/requests/*'],
        'http-request-method': ['GET', 'HEAD'],
      });
    });

    test(cfg.wafRateLimitPer5Min ? 'WAF with a per-IP rate rule guards the ALB' : 'no WAF in this stage', () => {
      if (cfg.wafRateLimitPer5Min === undefined) {
        s.template.resourceCountIs('AWS::WAFv2::WebACL', 0);
        return;
      }
      s.template.hasResourceProperties('AWS::WAFv2::WebACL', {
        Scope: 'REGIONAL',
        Rules: Match.arrayWith([
          Match.objectLike({
            Action: { Block: {} },
            Statement: { RateBasedStatement: { Limit: cfg.wafRateLimitPer5Min, AggregateKeyType: 'IP' } },
          }),
        ]),
      });
      s.template.resourceCountIs('AWS::WAFv2::WebACLAssociation', 1);
    });
  });

  describe('compute: Fargate services', () => {
    const services = [
      { name: 'Gateway', port: 3000, entry: 'gateway/main.ts', sizing: cfg.gateway, env: ['GATEWAY_PORT', 'KINESIS_STREAM'] },
      { name: 'ReadApi', port: 3001, entry: 'read-model/main.ts', sizing: cfg.readApi, env: ['READ_PORT', 'ITEMS_TABLE', 'REQUESTS_TABLE'] },
      { name: 'AckService', port: 3002, entry: 'ack-service/main.ts', sizing: cfg.ackService, env: ['ACK_PORT'] },
    ];

    test.each(services)('$name runs the shared image on Fargate in the app subnets, with secrets injected', (svc) => {
      const serviceId = idsOf(s.json, 'AWS::ECS::Service').find((id) => id.startsWith(svc.name))!;
      const service = byLogicalId(serviceId).Properties!;
      expect(service['LaunchType']).toBe('FARGATE');
      expect(service['NetworkConfiguration'].AwsvpcConfiguration.AssignPublicIp).toBe('DISABLED');
      expect(refs(service['NetworkConfiguration'].AwsvpcConfiguration.Subnets)).toEqual(subnetIds(s.json, 'app').sort());
      expect(service['DeploymentConfiguration']).toMatchObject({ DeploymentCircuitBreaker: { Enable: true, Rollback: true }, MinimumHealthyPercent: 100 });
      expect(service['LoadBalancers'][0].ContainerPort).toBe(svc.port);

      const task = byLogicalId(target(service['TaskDefinition'])).Properties!;
      expect(task['Cpu']).toBe(String(svc.sizing.cpu));
      expect(task['Memory']).toBe(String(svc.sizing.memoryMiB));
      const container = task['ContainerDefinitions'][0];
      expect(container.Command).toEqual(['node', '--import', 'tsx', svc.entry]);
      expect(container.LinuxParameters.InitProcessEnabled).toBe(true);
      const envNames = (container.Environment as { Name: string }[]).map((e) => e.Name);
      expect(envNames).toEqual(expect.arrayContaining(['AWS_REGION', 'LOG_LEVEL', 'REDIS_URL', 'REDIS_PREFIX', ...svc.env]));
      expect((container.Secrets as { Name: string }[]).map((x) => x.Name).sort()).toEqual(['AUTH_SECRET', 'REDIS_AUTH_TOKEN']);
      expect(JSON.stringify(container.Environment)).not.toMatch(/AUTH_SECRET"|REDIS_AUTH_TOKEN"/);
    });

    test.each(services)('$name: /healthz health check and graceful draining', (svc) => {
      s.template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
        Port: svc.port,
        HealthCheckPath: '/healthz',
        TargetGroupAttributes: Match.arrayWith([
          { Key: 'deregistration_delay.timeout_seconds', Value: svc.name === 'AckService' ? '120' : '30' },
        ]),
      });
    });

    test.each(services)('$name autoscales on CPU (and request count for HTTP APIs)', (svc) => {
      const targetId = idsOf(s.json, 'AWS::ApplicationAutoScaling::ScalableTarget').find((id) => id.startsWith(svc.name))!;
      expect(byLogicalId(targetId).Properties).toMatchObject({ MinCapacity: svc.sizing.minTasks, MaxCapacity: svc.sizing.maxTasks });
      const metrics = resourcesOf(s.json, 'AWS::ApplicationAutoScaling::ScalingPolicy')
        .filter((p) => target(p.Properties!['ScalingTargetId']) === targetId)
        .map((p) => p.Properties!['TargetTrackingScalingPolicyConfiguration'].PredefinedMetricSpecification.PredefinedMetricType)
        .sort();
      const expected = svc.sizing.targetRequestsPerTaskPerMinute
        ? ['ALBRequestCountPerTarget', 'ECSServiceAverageCPUUtilization']
        : ['ECSServiceAverageCPUUtilization'];
      expect(metrics).toEqual(expected);
    });

    test('cluster has Container Insights', () => {
      s.template.hasResourceProperties('AWS::ECS::Cluster', {
        ClusterSettings: [{ Name: 'containerInsights', Value: 'enabled' }],
      });
    });
  });

  describe('stream processing', () => {
    test(cfg.streamShardCount ? `Kinesis stream: ${cfg.streamShardCount} provisioned shards, KMS` : 'Kinesis stream: on-demand, KMS', () => {
      s.template.hasResourceProperties('AWS::Kinesis::Stream', {
        StreamModeDetails: { StreamMode: cfg.streamShardCount ? 'PROVISIONED' : 'ON_DEMAND' },
        ...(cfg.streamShardCount ? { ShardCount: cfg.streamShardCount } : {}),
        RetentionPeriodHours: cfg.streamRetentionHours,
        StreamEncryption: { EncryptionType: 'KMS', KeyId: Match.anyValue() },
      });
    });

    test('processor Lambda: Node 22+, ARM64, in the app subnets, with its environment', () => {
      const fnId = idsOf(s.json, 'AWS::Lambda::Function', (r) => JSON.stringify(r.Properties).includes('DB_SECRET_ARN'))[0]!;
      const fn = byLogicalId(fnId).Properties!;
      expect(Number(/^nodejs(\d+)\.x$/.exec(fn['Runtime'])![1])).toBeGreaterThanOrEqual(22);
      expect(fn['Architectures']).toEqual(['arm64']);
      expect(fn['MemorySize']).toBe(cfg.processor.memoryMiB);
      expect(refs(fn['VpcConfig'].SubnetIds)).toEqual(subnetIds(s.json, 'app').sort());
      expect(Object.keys(fn['Environment'].Variables)).toEqual(
        expect.arrayContaining([
          'DB_SECRET_ARN', 'DB_HOST', 'DB_NAME', 'ITEMS_TABLE', 'REQUESTS_TABLE', 'DLQ_URL', 'KINESIS_STREAM', 'REDIS_URL', 'REDIS_PREFIX',
        ]),
      );
      expect(fn['Environment'].Variables.DB_HOST).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/Proxy/), 'Endpoint'] });
      if (cfg.processor.reservedConcurrency !== undefined) {
        expect(fn['ReservedConcurrentExecutions']).toBe(cfg.processor.reservedConcurrency);
      }
    });

    test('event source mapping: batching, partial failures, UNBOUNDED retries and record age, no on-failure skip', () => {
      // The handlers retry infrastructure errors until they pass and park poison records themselves;
      // a bound would skip records (metadata-only letters): lost acks, holes in the read model.
      const p = cfg.processor;
      const esms = resourcesOf(s.json, 'AWS::Lambda::EventSourceMapping');
      expect(esms).toHaveLength(2);
      for (const esm of esms) {
        const projection = byLogicalId(target(esm.Properties!['FunctionName'])).Properties!['Handler'] === 'index.projectionHandler';
        expect(esm.Properties).toMatchObject({
          BatchSize: p.batchSize,
          // Each mapping its own window: the commit mapping's delays acks, the projection's only the read model.
          MaximumBatchingWindowInSeconds: projection ? p.projectionMaxBatchingWindowSeconds : p.maxBatchingWindowSeconds,
          FunctionResponseTypes: ['ReportBatchItemFailures'],
          MaximumRetryAttempts: -1,
          MaximumRecordAgeInSeconds: -1,
          ParallelizationFactor: p.parallelizationFactor,
          StartingPosition: 'TRIM_HORIZON',
        });
        expect(esm.Properties!['DestinationConfig']).toBeUndefined();
      }
    });

    test(cfg.processor.enhancedFanOut ? 'reads through an enhanced fan-out consumer' : 'reads the stream directly (shared throughput)', () => {
      const esms = resourcesOf(s.json, 'AWS::Lambda::EventSourceMapping');
      expect(esms).toHaveLength(2);
      s.template.resourceCountIs('AWS::Kinesis::StreamConsumer', cfg.processor.enhancedFanOut ? 2 : 0);
      for (const esm of esms) {
        const source = byLogicalId(target(esm.Properties!['EventSourceArn']));
        expect(source.Type).toBe(cfg.processor.enhancedFanOut ? 'AWS::Kinesis::StreamConsumer' : 'AWS::Kinesis::Stream');
      }
    });

    test('two consumers of the stream: commits + acks, and the projection into the read model, each with its own mapping', () => {
      const esms = resourcesOf(s.json, 'AWS::Lambda::EventSourceMapping');
      const handlers = esms.map((esm) => byLogicalId(target(esm.Properties!['FunctionName'])).Properties!['Handler']).sort();
      expect(handlers).toEqual(['index.handler', 'index.projectionHandler']);
    });

    test('the dead-letter queue is KMS-encrypted and TLS-only', () => {
      s.template.hasResourceProperties('AWS::SQS::Queue', { KmsMasterKeyId: Match.anyValue(), MessageRetentionPeriod: 14 * 24 * 3600 });
      s.template.hasResourceProperties('AWS::SQS::QueuePolicy', {
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          ]),
        },
      });
    });
  });

  describe('data', () => {
    test(`RDS PostgreSQL: ${cfg.database.multiAz ? 'Multi-AZ' : 'single-AZ'}, encrypted, isolated subnets, backups`, () => {
      s.template.hasResourceProperties('AWS::RDS::DBInstance', {
        SourceDBInstanceIdentifier: Match.absent(),
        Engine: 'postgres',
        DBInstanceClass: `db.${cfg.database.instanceType}`,
        MultiAZ: cfg.database.multiAz,
        StorageEncrypted: true,
        KmsKeyId: Match.anyValue(),
        StorageType: 'gp3',
        AllocatedStorage: String(cfg.database.allocatedStorageGiB),
        MaxAllocatedStorage: cfg.database.maxAllocatedStorageGiB,
        BackupRetentionPeriod: cfg.database.backupRetentionDays,
        DeletionProtection: cfg.retainData,
        PubliclyAccessible: false,
      });
      const [group] = resourcesOf(s.json, 'AWS::RDS::DBSubnetGroup');
      expect(refs(group!.Properties!['SubnetIds'])).toEqual(subnetIds(s.json, 'data').sort());
    });

    test('migrations run in the deploy (CDK trigger) before the mappings exist and before the app password rotates', () => {
      const [trigger] = idsOf(s.json, 'Custom::Trigger');
      expect(trigger).toBeDefined();
      const dependsOnTrigger = (r: { DependsOn?: string[] } & object) => (r.DependsOn ?? []).includes(trigger!);
      const esms = resourcesOf(s.json, 'AWS::Lambda::EventSourceMapping');
      expect(esms).toHaveLength(2);
      for (const esm of esms) expect(dependsOnTrigger(esm as never)).toBe(true);
      const rotations = Object.values(s.json.Resources).filter((r) => r.Type === 'AWS::SecretsManager::RotationSchedule');
      expect(rotations.filter((r) => dependsOnTrigger(r as never))).toHaveLength(1); // the application secret's
      // The migration function logs in as master and sets the app role's password: both secrets, through the proxy.
      const fn = Object.values(s.json.Resources).find((r) => r.Type === 'AWS::Lambda::Function' && r.Properties!['Environment']?.Variables?.APP_DB_SECRET_ARN)!;
      expect(Object.keys(fn.Properties!['Environment'].Variables).sort()).toEqual(['APP_DB_SECRET_ARN', 'DB_HOST', 'DB_NAME', 'DB_SECRET_ARN', 'NODE_OPTIONS']);
    });

    test('no read replica: nothing would read it (docs/DEPLOY.md, "What is not deployed")', () => {
      const replicas = resourcesOf(s.json, 'AWS::RDS::DBInstance').filter((r) => r.Properties!['SourceDBInstanceIdentifier']);
      expect(replicas).toHaveLength(0);
    });

    test('RDS Proxy (TLS required) fronts the database for the Lambda; credentials rotate', () => {
      s.template.hasResourceProperties('AWS::RDS::DBProxy', {
        EngineFamily: 'POSTGRESQL',
        RequireTLS: true,
        // master (migrations) and the application role (processors, operators)
        Auth: [Match.objectLike({ AuthScheme: 'SECRETS' }), Match.objectLike({ AuthScheme: 'SECRETS' })],
      });
      s.template.hasResourceProperties('AWS::SecretsManager::RotationSchedule', {
        RotationRules: { ScheduleExpression: `rate(${cfg.database.rotationDays} days)` },
      });
    });

    test(`ElastiCache Redis: TLS, at-rest encryption, AUTH; ${cfg.redis.replicas} replica(s)`, () => {
      const multiAz = cfg.redis.replicas > 0;
      s.template.hasResourceProperties('AWS::ElastiCache::ReplicationGroup', {
        Engine: 'redis',
        CacheNodeType: cfg.redis.nodeType,
        TransitEncryptionEnabled: true,
        AtRestEncryptionEnabled: true,
        KmsKeyId: Match.anyValue(),
        AuthToken: { 'Fn::Join': ['', Match.arrayWith([Match.stringLikeRegexp('resolve:secretsmanager')])] },
        ReplicasPerNodeGroup: cfg.redis.replicas,
        MultiAZEnabled: multiAz,
        AutomaticFailoverEnabled: multiAz,
      });
      const [group] = resourcesOf(s.json, 'AWS::ElastiCache::SubnetGroup');
      expect(refs(group!.Properties!['SubnetIds'])).toEqual(subnetIds(s.json, 'data').sort());
    });

    test('DynamoDB items, requests (TTL) and projection-registry tables: on-demand, PITR, the services\' key schema', () => {
      s.template.resourceCountIs('AWS::DynamoDB::Table', 3);
      s.template.hasResourceProperties('AWS::DynamoDB::Table', { TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true } });
      const items = idsOf(s.json, 'AWS::DynamoDB::Table', (r) => (r.Properties!['KeySchema'] as unknown[]).length === 2)[0]!;
      // The registry's name is derived from the items table's, exactly as core/projections/registry.ts derives it.
      s.template.hasResourceProperties('AWS::DynamoDB::Table', { TableName: { 'Fn::Join': ['', [{ Ref: items }, '-projections']] } });
      s.template.hasResourceProperties('AWS::DynamoDB::Table', {
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'id', KeyType: 'RANGE' },
        ],
        LocalSecondaryIndexes: [
          Match.objectLike({
            IndexName: 'byUpdatedAt',
            KeySchema: [
              { AttributeName: 'pk', KeyType: 'HASH' },
              { AttributeName: 'updatedAtId', KeyType: 'RANGE' },
            ],
          }),
        ],
      });
      s.template.hasResourceProperties('AWS::DynamoDB::Table', {
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      });
    });

    test('the JWT secret lives in Secrets Manager; the data key rotates', () => {
      s.template.hasResourceProperties('AWS::SecretsManager::Secret', {
        Description: Match.stringLikeRegexp('JWT'),
        GenerateSecretString: Match.objectLike({ PasswordLength: 64 }),
        KmsKeyId: Match.anyValue(),
      });
      s.template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    });
  });

  describe('least privilege', () => {
    const policyOf = (rolePrefix: string) =>
      JSON.stringify(
        resourcesOf(s.json, 'AWS::IAM::Policy')
          .filter((p) => refs(p.Properties!['Roles']).some((r) => r.startsWith(rolePrefix)))
          .map((p) => p.Properties!['PolicyDocument']),
      );

    test('gateway task may put records to the stream, and touch no table', () => {
      const p = policyOf('GatewayTaskTaskRole');
      expect(p).toMatch(/kinesis:PutRecords?/);
      expect(p).not.toMatch(/dynamodb:/);
    });

    test('read API task may read the tables, not write them', () => {
      const p = policyOf('ReadApiTaskTaskRole');
      expect(p).toMatch(/dynamodb:GetItem/);
      expect(p).toMatch(/dynamodb:Query/);
      expect(p).not.toMatch(/dynamodb:(PutItem|UpdateItem|DeleteItem|BatchWriteItem)/);
      expect(p).not.toMatch(/kinesis:/);
    });

    test('ack service task has no data-plane grants', () => {
      expect(policyOf('AckServiceTaskTaskRole')).toBe('[]');
    });

    test('processor may write the tables, read the DB secret and send to its DLQ', () => {
      const p = policyOf('ProcessorFnServiceRole');
      expect(p).toMatch(/dynamodb:PutItem/);
      expect(p).toMatch(/secretsmanager:GetSecretValue/);
      expect(p).toMatch(/sqs:SendMessage/);
      expect(p).toMatch(/kinesis:GetRecords|kinesis:SubscribeToShard/);
    });
  });

  describe('operations', () => {
    const alarmMetrics = () =>
      resourcesOf(s.json, 'AWS::CloudWatch::Alarm').map((a) => ({
        name: a.Properties!['MetricName'] ?? 'math',
        stat: a.Properties!['ExtendedStatistic'] ?? a.Properties!['Statistic'],
        actions: a.Properties!['AlarmActions'] as unknown[],
        math: JSON.stringify(a.Properties!['Metrics'] ?? ''),
      }));

    test('alarms: iterator age, DLQ depth, failed records, throttles, 5xx rate, p99 latency, healthy hosts, running tasks, RDS, Redis, DynamoDB', () => {
      const names = alarmMetrics().map((a) => a.name);
      for (const m of ['IteratorAge', 'ApproximateNumberOfMessagesVisible', 'CPUUtilization', 'DatabaseConnections', 'ProcessorFailedRecords', 'HealthyHostCount', 'RunningTaskCount']) {
        expect(names).toContain(m);
      }
      // Lambda Errors cannot fire (handlers report failed records instead of throwing): not an alarm.
      expect(alarmMetrics().some((a) => a.name === 'Errors' || a.math.includes('"Errors"'))).toBe(false);
      const maths = alarmMetrics().map((a) => a.math).join(' ');
      for (const m of ['Throttles', 'ReadThrottleEvents', 'WriteThrottleEvents', 'EngineCPUUtilization']) expect(maths).toContain(m);
      // Redis memory: the maximum over every node, so the primary is covered after a failover too.
      const memory = alarmMetrics().find((a) => a.math.includes('DatabaseMemoryUsagePercentage'))!;
      for (let n = 1; n <= 1 + cfg.redis.replicas; n++) expect(memory.math).toContain(`ackstream-${cfg.stage}-00${n}`);
      expect(maths.includes('ReplicationLag')).toBe(cfg.redis.replicas > 0);
      expect(alarmMetrics().filter((a) => a.name === 'TargetResponseTime' && a.stat === 'p99')).toHaveLength(3);
      expect(alarmMetrics().some((a) => a.math.includes('HTTPCode_Target_5XX_Count') && a.math.includes('RequestCount'))).toBe(true);
    });

    test('every alarm notifies the alarm topic', () => {
      const topic = idsOf(s.json, 'AWS::SNS::Topic')[0];
      for (const a of alarmMetrics()) expect(a.actions.map(target)).toEqual([topic]);
      s.template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    });

    test('one dashboard', () => {
      s.template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
      s.template.hasResourceProperties('AWS::CloudWatch::Dashboard', { DashboardName: `ackstream-${cfg.stage}` });
    });

    test(`every log group keeps logs for ${cfg.logRetentionDays} days`, () => {
      const groups = [...resourcesOf(s.json, 'AWS::Logs::LogGroup'), ...resourcesOf(s.json, 'Custom::LogRetention')];
      expect(groups.length).toBeGreaterThanOrEqual(6);
      for (const g of groups) expect(g.Properties!['RetentionInDays']).toBe(cfg.logRetentionDays);
    });
  });
});

describe('the two event source mappings', () => {
  test('each has its own batching window: the commit mapping\'s delays acks, the projection\'s only the read model', () => {
    const base = devConfig();
    const s = synthStage({ ...base, processor: { ...base.processor, maxBatchingWindowSeconds: 0, projectionMaxBatchingWindowSeconds: 5 } });
    const windows = Object.fromEntries(resourcesOf(s.json, 'AWS::Lambda::EventSourceMapping').map((esm) => [
      s.json.Resources[target(esm.Properties!['FunctionName'])!]!.Properties!['Handler'],
      esm.Properties!['MaximumBatchingWindowInSeconds'],
    ]));
    expect(windows).toEqual({ 'index.handler': 0, 'index.projectionHandler': 5 });
  });
});
