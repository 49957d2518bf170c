import { CfnDeletionPolicy, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elasticache from 'aws-cdk-lib/aws-elasticache';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import type { RedisSettings } from '../config';

export interface HotReadCacheProps {
  readonly vpc: ec2.IVpc;
  readonly dataSubnets: ec2.SubnetSelection;
  readonly settings: RedisSettings;
  readonly encryptionKey: kms.IKey;
  readonly logRetention: logs.RetentionDays;
  /** Physical id prefix (lower case, <= 30 chars). */
  readonly name: string;
  /** Snapshot the group (and keep its token) when the stack is deleted. */
  readonly retain: boolean;
}

/**
 * The hot read model: a Redis replication group (cluster mode off, so the
 * services' single-endpoint client works), TLS + AUTH + at-rest encryption,
 * Multi-AZ automatic failover as soon as there is a replica.
 */
export class HotReadCache extends Construct {
  static readonly PORT = 6379;
  readonly replicationGroup: elasticache.CfnReplicationGroup;
  readonly securityGroup: ec2.SecurityGroup;
  /** AUTH token; injected into tasks as REDIS_AUTH_TOKEN. */
  readonly authToken: secretsmanager.Secret;
  /** `rediss://host:6379` (no credentials: those come from {@link authToken}). */
  readonly url: string;
  readonly replicationGroupId: string;
  /** Member clusters (cluster mode off: `<group>-001` … one per node); the primary is any of them after a failover. */
  readonly nodeIds: string[];

  constructor(scope: Construct, id: string, props: HotReadCacheProps) {
    super(scope, id);
    const s = props.settings;
    const multiAz = s.replicas > 0;

    this.securityGroup = new ec2.SecurityGroup(this, 'Sg', {
      vpc: props.vpc,
      description: 'Redis: 6379 from the services and processors only',
      allowAllOutbound: false,
    });

    this.authToken = new secretsmanager.Secret(this, 'AuthToken', {
      description: 'ElastiCache Redis AUTH token',
      encryptionKey: props.encryptionKey,
      // ElastiCache tokens: 16-128 printable chars, no @ " / - keep to alphanumerics.
      generateSecretString: { passwordLength: 64, excludePunctuation: true },
    });

    const subnetGroup = new elasticache.CfnSubnetGroup(this, 'Subnets', {
      description: 'Isolated data subnets',
      subnetIds: props.vpc.selectSubnets(props.dataSubnets).subnetIds,
    });

    const slowLog = new logs.LogGroup(this, 'SlowLog', {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.replicationGroupId = props.name;
    this.replicationGroup = new elasticache.CfnReplicationGroup(this, 'Redis', {
      replicationGroupId: props.name,
      replicationGroupDescription: 'Ackstream hot read model',
      engine: 'redis',
      engineVersion: s.engineVersion,
      cacheNodeType: s.nodeType,
      numNodeGroups: 1,
      replicasPerNodeGroup: s.replicas,
      automaticFailoverEnabled: multiAz,
      multiAzEnabled: multiAz,
      cacheSubnetGroupName: subnetGroup.ref,
      securityGroupIds: [this.securityGroup.securityGroupId],
      port: HotReadCache.PORT,
      transitEncryptionEnabled: true,
      transitEncryptionMode: 'required',
      atRestEncryptionEnabled: true,
      kmsKeyId: props.encryptionKey.keyArn,
      authToken: this.authToken.secretValue.unsafeUnwrap(),
      snapshotRetentionLimit: s.snapshotRetentionDays,
      autoMinorVersionUpgrade: true,
      logDeliveryConfigurations: [
        {
          destinationType: 'cloudwatch-logs',
          logFormat: 'json',
          logType: 'slow-log',
          destinationDetails: { cloudWatchLogsDetails: { logGroup: slowLog.logGroupName } },
        },
      ],
    });
    this.replicationGroup.addResourceDependency(subnetGroup);
    // Deleting the stack (or replacing the group) leaves a final snapshot in prod.
    const policy = props.retain ? CfnDeletionPolicy.SNAPSHOT : CfnDeletionPolicy.DELETE;
    this.replicationGroup.cfnOptions.deletionPolicy = policy;
    this.replicationGroup.cfnOptions.updateReplacePolicy = policy;
    this.authToken.applyRemovalPolicy(props.retain ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY);
    this.nodeIds = Array.from({ length: 1 + s.replicas }, (_, i) => `${props.name}-${String(i + 1).padStart(3, '0')}`);

    this.url = `rediss://${this.replicationGroup.attrPrimaryEndPointAddress}:${HotReadCache.PORT}`;
  }

  /**
   * The highest value of a per-node metric over all nodes: the primary is whichever node holds the
   * role now (a failover moves it), so "the primary's memory" is the maximum over the group.
   */
  maxOverNodes(metricName: string, label: string): cloudwatch.IMetric {
    const usingMetrics = Object.fromEntries(this.nodeIds.map((id, i) => [`n${i}`, new cloudwatch.Metric({
      namespace: 'AWS/ElastiCache', metricName, dimensionsMap: { CacheClusterId: id }, statistic: 'Maximum', period: Duration.minutes(5),
    })]));
    return new cloudwatch.MathExpression({ expression: `MAX([${Object.keys(usingMetrics).join(', ')}])`, usingMetrics, label, period: Duration.minutes(5) });
  }

  /** Opens 6379 to a client (the token is handed over separately, as a secret). */
  allowFrom(client: ec2.IConnectable, description: string): void {
    this.securityGroup.connections.allowFrom(client, ec2.Port.tcp(HotReadCache.PORT), description);
  }
}
