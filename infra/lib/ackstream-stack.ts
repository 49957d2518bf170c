import { Aspects, CfnOutput, CfnParameter, Duration, RemovalPolicy, Stack, StackProps, Tags } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type { StageConfig } from './config';
import { HotReadCache } from './constructs/cache';
import { Chaos } from './constructs/chaos';
import { EventStoreDatabase } from './constructs/database';
import { Attachments } from './constructs/attachments';
import { Migrations } from './constructs/migrations';
import { OperatorTask } from './constructs/operator-task';
import { Edge } from './constructs/edge';
import { Network } from './constructs/network';
import { Operations } from './constructs/operations';
import { ProcessorSource, StreamProcessor } from './constructs/stream-processor';
import { ReadModelTables } from './constructs/tables';
import { WebService } from './constructs/web-service';
import { CfnLintExceptions } from './cfn-lint-exceptions';
import { applyNagSuppressions } from './nag-suppressions';

export interface AckstreamStackProps extends StackProps {
  readonly config: StageConfig;
  /** The processors Lambda: `{ entry: 'processors/lambda.ts' }` in the app, prebuilt code in tests. */
  readonly processor: ProcessorSource;
  /** The attachment worker Lambda (`{ entry: 'worker/lambda.ts' }`); absent: no attachments (constructs/attachments.ts). */
  readonly attachmentWorker?: ProcessorSource;
  /** Directory with the Dockerfile of the one service image (the repo root in the app). */
  readonly imageDirectory: string;
  /** Repository root (the migration function's sources); defaults to {@link imageDirectory}. */
  readonly repoRoot?: string;
  /** Ready code for the migration function instead of bundling it (fast tests). */
  readonly migrationCode?: lambda.Code;
  /** Ready code for the CDN signing-key generator instead of bundling it (fast tests). */
  readonly attachmentSigningKeyCode?: lambda.Code;
}

/** Where the services listen inside their containers: every interface, so the ALB's health checks reach them. */
export const CONTAINER_HOST = '0.0.0.0';

/** Service ports, fixed by the services' defaults. */
export const PORTS = { gateway: 3000, readApi: 3001, ackService: 3002 } as const;

/**
 * The whole system for one stage. Sizes come from {@link StageConfig}; the
 * wiring (who may talk to whom, who may read what) is the same for every stage.
 */
export class AckstreamStack extends Stack {
  readonly network: Network;
  readonly edge: Edge;
  readonly processor: StreamProcessor;
  readonly database: EventStoreDatabase;
  readonly cache: HotReadCache;
  readonly tables: ReadModelTables;
  readonly services: { gateway: WebService; readApi: WebService; ackService: WebService };
  readonly operations: Operations;
  readonly migrations: Migrations;
  readonly operatorTask: OperatorTask;
  readonly chaos: Chaos;
  readonly cluster: ecs.Cluster;
  readonly authSecret: secretsmanager.Secret;
  readonly config: StageConfig;
  /** Attachments (bucket, worker, CDN), when the stack has them. */
  attachments?: Attachments;

  constructor(scope: Construct, id: string, props: AckstreamStackProps) {
    super(scope, id, props);
    const cfg = props.config;
    this.config = cfg;
    const logRetention = cfg.logRetentionDays as logs.RetentionDays;
    Tags.of(this).add('app', 'ackstream');
    Tags.of(this).add('stage', cfg.stage);

    // One customer-managed key for data at rest: stream, queues, secrets, RDS, Redis, alarms topic.
    const key = new kms.Key(this, 'DataKey', {
      description: `Ackstream ${cfg.stage} data at rest`,
      enableKeyRotation: true,
    });

    this.network = new Network(this, 'Network', {
      availabilityZones: cfg.availabilityZones,
      natGateways: cfg.natGateways,
      logRetention,
    });
    const { vpc, appSubnets, dataSubnets } = this.network;

    this.authSecret = new secretsmanager.Secret(this, 'AuthSecret', {
      description: 'HS256 JWT signing secret (AUTH_SECRET)',
      encryptionKey: key,
      generateSecretString: { passwordLength: 64, excludePunctuation: true },
    });
    this.authSecret.applyRemovalPolicy(cfg.retainData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY);

    this.tables = new ReadModelTables(this, 'Tables', { retain: cfg.retainData });

    this.database = new EventStoreDatabase(this, 'Database', {
      vpc,
      dataSubnets,
      appSubnets,
      settings: cfg.database,
      encryptionKey: key,
      retain: cfg.retainData,
      logRetention,
    });

    this.cache = new HotReadCache(this, 'Cache', {
      vpc,
      dataSubnets,
      settings: cfg.redis,
      encryptionKey: key,
      logRetention,
      name: `ackstream-${cfg.stage}`,
      retain: cfg.retainData,
    });

    const common = {
      LOG_LEVEL: 'info',
      REDIS_URL: this.cache.url,
      REDIS_PREFIX: 'ackstream:',
    };

    // ---- write path: stream + processors ----
    this.processor = new StreamProcessor(this, 'Processor', {
      source: props.processor,
      settings: cfg.processor,
      shardCount: cfg.streamShardCount,
      retentionHours: cfg.streamRetentionHours,
      encryptionKey: key,
      vpc,
      subnets: appSubnets,
      logRetention,
      retain: cfg.retainData,
      iteratorAgeAlarmSeconds: cfg.alarms.iteratorAgeSeconds,
      failedRecordsPer5Min: cfg.alarms.failedRecordsPer5Min,
      environment: {
        ...common,
        // The application role's credentials (not the master's), re-read when rotated.
        DB_SECRET_ARN: this.database.appSecret.secretArn,
        DB_HOST: this.database.proxy.endpoint,
        DB_NAME: this.database.databaseName,
        ITEMS_TABLE: this.tables.items.tableName,
        REQUESTS_TABLE: this.tables.requests.tableName,
        // Lambda has no ECS-style secret injection: it resolves this ARN at cold start.
        REDIS_AUTH_TOKEN_SECRET_ARN: this.cache.authToken.secretArn,
      },
    });
    for (const fn of [this.processor.fn, this.processor.projectionFn]) {
      this.database.allowClient(fn, 'from processors');
      this.cache.allowFrom(fn, 'from processors');
      this.tables.grantProjectionWriter(fn);
      this.cache.authToken.grantRead(fn);
    }

    // Schema first: the migration function runs during the deploy, before the mappings exist
    // (and before the application password's first rotation, which needs the role).
    this.migrations = new Migrations(this, 'Migrations', {
      repoRoot: props.repoRoot ?? props.imageDirectory,
      ...(props.migrationCode ? { code: props.migrationCode } : {}),
      database: this.database,
      vpc,
      subnets: appSubnets,
      logRetention,
      before: [...this.processor.mappings, this.database.appRotationSchedule],
    });

    // ---- edge + services ----
    const certificateArn =
      cfg.certificateArn ??
      new CfnParameter(this, 'CertificateArn', {
        type: 'String',
        description: 'ACM certificate ARN (same region) for the HTTPS listener',
        allowedPattern: '^arn:aws[a-z-]*:acm:[a-z0-9-]+:\\d{12}:certificate/.+$',
      }).valueAsString;
    this.edge = new Edge(this, 'Edge', {
      vpc,
      certificateArn,
      idleTimeoutSeconds: cfg.albIdleTimeoutSeconds,
      wafRateLimitPer5Min: cfg.wafRateLimitPer5Min,
      http5xxAlarmPercent: cfg.alarms.http5xxPercent,
      deletionProtection: cfg.retainData,
    });

    const cluster = this.cluster = new ecs.Cluster(this, 'Cluster', {
      vpc,
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
    });
    // One image for all three services; staged (not built) at synth, built by `cdk deploy`.
    const imageAsset = new ecrAssets.DockerImageAsset(this, 'Image', {
      directory: props.imageDirectory,
      platform: cfg.containerArchitecture === 'arm64' ? ecrAssets.Platform.LINUX_ARM64 : ecrAssets.Platform.LINUX_AMD64,
    });
    const image = ecs.ContainerImage.fromDockerImageAsset(imageAsset);
    const secrets = {
      AUTH_SECRET: ecs.Secret.fromSecretsManager(this.authSecret),
      REDIS_AUTH_TOKEN: ecs.Secret.fromSecretsManager(this.cache.authToken),
    };
    const shared = {
      cluster,
      subnets: appSubnets,
      image,
      architecture: cfg.containerArchitecture,
      listener: this.edge.httpsListener,
      logRetention,
      secrets,
      p99LatencyAlarmSeconds: cfg.alarms.p99LatencySeconds,
    };
    const env = {
      ...common,
      AWS_REGION: this.region,
      NODE_ENV: 'production',
      HOST: CONTAINER_HOST,
      // Idle keep-alive connections outlive the ALB's idle timeout: the ALB closes them first.
      HTTP_KEEP_ALIVE_MS: String((cfg.albIdleTimeoutSeconds + 5) * 1000),
    };
    const collections = elbv2.ListenerCondition.pathPatterns(['/v1/collections/*']);

    const ackService = new WebService(this, 'AckService', {
      ...shared,
      command: ['node', '--import', 'tsx', 'ack-service/main.ts'],
      port: PORTS.ackService,
      environment: { ...env, ACK_PORT: String(PORTS.ackService) },
      sizing: cfg.ackService,
      priority: 10,
      conditions: [elbv2.ListenerCondition.pathPatterns(['/v1/acks', '/v1/acks/*'])],
      // Sockets are long-lived: give clients two minutes to move before the task stops.
      drainSeconds: 120,
    });
    const gateway = new WebService(this, 'Gateway', {
      ...shared,
      command: ['node', '--import', 'tsx', 'gateway/main.ts'],
      port: PORTS.gateway,
      environment: { ...env, GATEWAY_PORT: String(PORTS.gateway), KINESIS_STREAM: this.processor.stream.streamName },
      sizing: cfg.gateway,
      priority: 20,
      conditions: [collections, elbv2.ListenerCondition.httpRequestMethods(['PUT', 'PATCH', 'DELETE'])],
      drainSeconds: 30,
    });
    const readApi = new WebService(this, 'ReadApi', {
      ...shared,
      command: ['node', '--import', 'tsx', 'read-model/main.ts'],
      port: PORTS.readApi,
      environment: {
        ...env,
        READ_PORT: String(PORTS.readApi),
        ITEMS_TABLE: this.tables.items.tableName,
        REQUESTS_TABLE: this.tables.requests.tableName,
      },
      sizing: cfg.readApi,
      priority: 30,
      conditions: [
        elbv2.ListenerCondition.pathPatterns(['/v1/collections/*', '/v1/requests/*']),
        elbv2.ListenerCondition.httpRequestMethods(['GET', 'HEAD']),
      ],
      drainSeconds: 30,
    });
    this.services = { gateway, readApi, ackService };
    if (props.attachmentWorker) {
      const att = new Attachments(this, 'Attachments', {
        worker: props.attachmentWorker, stream: this.processor.stream, items: this.tables.items, requests: this.tables.requests, logRetention, retain: cfg.retainData,
        encryptionKey: key,
        ...(props.attachmentSigningKeyCode ? { signingKeyCode: props.attachmentSigningKeyCode } : {}),
      });
      att.grantGateway(gateway.taskDefinition.taskRole);
      const container = gateway.taskDefinition.defaultContainer!;
      for (const [k, v] of Object.entries(att.gatewayEnvironment())) container.addEnvironment(k, v);
      // ECS injects the CDN signing key (its execution role reads the secret); tasks start once the generator has written it.
      for (const [k, secret] of Object.entries(att.gatewaySecrets())) container.addSecret(k, ecs.Secret.fromSecretsManager(secret));
      gateway.service.node.addDependency(att.signingKeyPair);
      // The tenants' attachment quota lives in PostgreSQL: the gateway connects as the application role
      // through the proxy, reading the rotating secret itself (core/db-credentials.ts openDbPool).
      container.addEnvironment('DB_SECRET_ARN', this.database.appSecret.secretArn);
      container.addEnvironment('DB_HOST', this.database.proxy.endpoint);
      container.addEnvironment('DB_NAME', this.database.databaseName);
      this.database.appSecret.grantRead(gateway.taskDefinition.taskRole);
      this.database.proxy.connections.allowFrom(gateway.service, ec2.Port.tcp(5432), 'from the gateway (attachment quota)');
      this.attachments = att;
      // Every method of the attachment routes (POST, GET → 302, DELETE) is the gateway's.
      new elbv2.ApplicationListenerRule(this, 'AttachmentRoutes', {
        listener: this.edge.httpsListener, priority: 15, action: elbv2.ListenerAction.forward([gateway.targetGroup]),
        conditions: [elbv2.ListenerCondition.pathPatterns(['/v1/collections/*/items/*/attachments', '/v1/collections/*/items/*/attachments/*'])],
      });
    }

    // Least privilege: each task role gets exactly what its service calls.
    this.processor.stream.grantWrite(gateway.taskDefinition.taskRole);
    this.tables.grantReader(readApi.taskDefinition.taskRole);
    for (const svc of [gateway, readApi, ackService]) this.cache.allowFrom(svc.service, `from ${svc.node.id}`);

    // ---- operator task: `npm run dlq` / `npm run replay` inside the VPC ----
    this.operatorTask = new OperatorTask(this, 'OperatorTask', {
      vpc,
      image,
      architecture: cfg.containerArchitecture,
      logRetention,
      environment: {
        ...common,
        AWS_REGION: this.region,
        NODE_ENV: 'production',
        DB_HOST: this.database.proxy.endpoint,
        DB_NAME: this.database.databaseName,
        DB_SSL: 'require',
        ITEMS_TABLE: this.tables.items.tableName,
        REQUESTS_TABLE: this.tables.requests.tableName,
        KINESIS_STREAM: this.processor.stream.streamName,
        DLQ_URL: this.processor.deadLetterQueue.queueUrl,
      },
      secrets: {
        REDIS_AUTH_TOKEN: ecs.Secret.fromSecretsManager(this.cache.authToken),
        DB_USER: ecs.Secret.fromSecretsManager(this.database.appSecret, 'username'),
        DB_PASSWORD: ecs.Secret.fromSecretsManager(this.database.appSecret, 'password'),
      },
    });
    const opsRole = this.operatorTask.taskDefinition.taskRole;
    this.database.proxy.connections.allowFrom(this.operatorTask.securityGroup, ec2.Port.tcp(5432), 'from the operator task');
    this.cache.allowFrom(this.operatorTask.securityGroup, 'from the operator task');
    this.tables.grantOperator(opsRole);
    this.processor.stream.grantReadWrite(opsRole);
    this.processor.deadLetterQueue.grantConsumeMessages(opsRole);
    this.processor.deadLetterQueue.grantSendMessages(opsRole);

    // ---- operations ----
    this.operations = new Operations(this, 'Operations', {
      encryptionKey: key,
      alarmEmail: cfg.alarmEmail,
      dashboardName: `ackstream-${cfg.stage}`,
    });
    const a = cfg.alarms;
    const db = this.database.instance;
    const dbAlarms = [
      new cloudwatch.Alarm(this, 'DbCpu', {
        alarmDescription: 'RDS CPU high: scale the instance class',
        metric: db.metricCPUUtilization({ period: Duration.minutes(5) }),
        threshold: a.dbCpuPercent,
        evaluationPeriods: 3,
      }),
      new cloudwatch.Alarm(this, 'DbConnections', {
        alarmDescription: 'RDS connections close to the class limit',
        metric: db.metricDatabaseConnections({ period: Duration.minutes(5), statistic: 'Maximum' }),
        threshold: a.dbConnections,
        evaluationPeriods: 3,
      }),
      new cloudwatch.Alarm(this, 'DbFreeStorage', {
        alarmDescription: 'RDS free storage below 10 GiB (autoscaling ceiling near?)',
        metric: db.metricFreeStorageSpace({ period: Duration.minutes(5) }),
        threshold: 10 * 1024 ** 3,
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        evaluationPeriods: 3,
      }),
    ];
    const redisMemory = new cloudwatch.Alarm(this, 'RedisMemory', {
      alarmDescription: 'Redis memory high on the primary (the highest node): evictions of the hot read model are near',
      metric: this.cache.maxOverNodes('DatabaseMemoryUsagePercentage', 'Redis memory % (max node)'),
      threshold: a.redisMemoryPercent,
      evaluationPeriods: 3,
    });
    const cacheAlarms = [
      redisMemory,
      new cloudwatch.Alarm(this, 'RedisCpu', {
        alarmDescription: 'Redis engine CPU high (single-threaded engine): reads and acks slow down; scale the node type',
        metric: this.cache.maxOverNodes('EngineCPUUtilization', 'Redis engine CPU % (max node)'),
        threshold: a.redisCpuPercent,
        evaluationPeriods: 3,
      }),
    ];
    if (cfg.redis.replicas > 0) {
      cacheAlarms.push(new cloudwatch.Alarm(this, 'RedisReplicationLag', {
        alarmDescription: 'Redis replicas lag the primary: a failover now would lose recent hot-model writes and acks',
        metric: this.cache.maxOverNodes('ReplicationLag', 'Redis replication lag s (max node)'),
        threshold: a.redisReplicationLagSeconds,
        evaluationPeriods: 3,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }));
    }
    const tableThrottles = this.tables.throttleMetrics();
    const dynamoThrottles = new cloudwatch.Alarm(this, 'DynamoDbThrottles', {
      alarmDescription: 'DynamoDB throttles read-model requests (hot partition or account limit)',
      metric: new cloudwatch.MathExpression({
        expression: tableThrottles.map((_, i) => `FILL(t${i}, 0)`).join(' + '),
        usingMetrics: Object.fromEntries(tableThrottles.map((m, i) => [`t${i}`, m])),
        period: Duration.minutes(5),
      }),
      threshold: 0,
      evaluationPeriods: 2,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    const ops = this.operations;
    ops.watch('Edge', this.edge.alarms);
    ops.watch('Services (p99 latency, healthy hosts, running tasks)', [gateway, readApi, ackService].flatMap((s) => s.alarms));
    ops.watch('Stream processing', this.processor.alarms);
    ops.watch('Data stores', [...dbAlarms, ...cacheAlarms, dynamoThrottles]);
    ops.graph(
      'Requests and writes',
      [this.edge.alb.metrics.requestCount({ period: Duration.minutes(1) })],
      [this.processor.stream.metricIncomingRecords({ period: Duration.minutes(1), statistic: 'Sum' })],
    );
    ops.graph(
      'Processor',
      [...[this.processor.fn, this.processor.projectionFn].map((fn) => fn.metricInvocations({ period: Duration.minutes(1) })), this.processor.failedRecordsMetric()],
      [this.processor.fn, this.processor.projectionFn].map((fn) => fn.metric('ConcurrentExecutions', { statistic: 'Maximum', period: Duration.minutes(1) })),
    );

    new CfnOutput(this, 'LoadBalancerDns', { value: this.edge.alb.loadBalancerDnsName });
    new CfnOutput(this, 'StreamName', { value: this.processor.stream.streamName });
    new CfnOutput(this, 'DlqUrl', { value: this.processor.deadLetterQueue.queueUrl });
    new CfnOutput(this, 'DashboardName', { value: `ackstream-${cfg.stage}` });
    new CfnOutput(this, 'ClusterName', { value: cluster.clusterName });
    new CfnOutput(this, 'OperatorTaskDefinition', { value: this.operatorTask.taskDefinition.taskDefinitionArn });
    new CfnOutput(this, 'OperatorSecurityGroup', { value: this.operatorTask.securityGroup.securityGroupId });
    new CfnOutput(this, 'AppSubnets', { value: vpc.selectSubnets(appSubnets).subnetIds.join(',') });

    // ---- chaos: FIS experiment templates, stopped by the user-error and loss alarms ----
    const dlqAlarm = this.processor.alarms.find((al) => al.node.id === 'DlqDepth')!;
    const http5xx = this.edge.alarms.find((al) => al.node.id === 'Http5xxRate')!;
    this.chaos = new Chaos(this, 'Chaos', {
      cluster,
      services: { gateway: gateway.service, 'read-api': readApi.service, 'ack-service': ackService.service },
      database: this.database.instance,
      multiAz: cfg.database.multiAz,
      processors: [this.processor.fn, this.processor.projectionFn],
      ...(cfg.processor.reservedConcurrency !== undefined ? { reservedConcurrency: cfg.processor.reservedConcurrency } : {}),
      userErrorsAlarm: http5xx,
      lossAlarm: dlqAlarm,
      logRetention,
    });
    for (const [name, t] of Object.entries(this.chaos.templates)) new CfnOutput(this, `Fis${name.replace(/(^|-)([a-z])/g, (_m, _d, c: string) => c.toUpperCase())}`, { value: t.attrId });

    applyNagSuppressions(this);
    Aspects.of(this).add(new CfnLintExceptions());
  }
}
