import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import type { DatabaseSettings } from '../config';

export interface EventStoreDatabaseProps {
  readonly vpc: ec2.IVpc;
  /** Isolated subnets for the instance(s). */
  readonly dataSubnets: ec2.SubnetSelection;
  /** Subnets for the proxy and the rotation function (they need the Secrets Manager endpoint). */
  readonly appSubnets: ec2.SubnetSelection;
  readonly settings: DatabaseSettings;
  readonly encryptionKey: kms.IKey;
  readonly retain: boolean;
  readonly logRetention: logs.RetentionDays;
}

/**
 * The event log and write-side state: PostgreSQL, reached only through an RDS
 * Proxy, because a Kinesis fan-out of Lambdas would otherwise open a
 * connection per concurrent invocation.
 */
export class EventStoreDatabase extends Construct {
  readonly instance: rds.DatabaseInstance;
  readonly proxy: rds.DatabaseProxy;
  readonly secret: secretsmanager.ISecret;
  readonly replicas: rds.DatabaseInstanceReadReplica[] = [];
  readonly proxySecurityGroup: ec2.SecurityGroup;
  readonly databaseName: string;

  constructor(scope: Construct, id: string, props: EventStoreDatabaseProps) {
    super(scope, id);
    const s = props.settings;
    this.databaseName = s.databaseName;

    const dbSg = new ec2.SecurityGroup(this, 'DbSg', {
      vpc: props.vpc,
      description: 'PostgreSQL: only from the RDS Proxy and the rotation function',
      allowAllOutbound: false,
    });
    this.proxySecurityGroup = new ec2.SecurityGroup(this, 'ProxySg', {
      vpc: props.vpc,
      description: 'RDS Proxy: PostgreSQL from the processors only',
      allowAllOutbound: false,
    });
    // The proxy->DB and rotation->DB rules are added by addProxy / addRotationSingleUser.

    const parameterGroup = new rds.ParameterGroup(this, 'Params', {
      engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_17_9 }),
      parameters: {
        // TLS only, so the proxy->DB hop is encrypted too.
        'rds.force_ssl': '1',
        'log_min_duration_statement': '500',
      },
    });

    this.instance = new rds.DatabaseInstance(this, 'Postgres', {
      engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_17_9 }),
      instanceType: new ec2.InstanceType(s.instanceType),
      vpc: props.vpc,
      vpcSubnets: props.dataSubnets,
      securityGroups: [dbSg],
      multiAz: s.multiAz,
      databaseName: s.databaseName,
      credentials: rds.Credentials.fromGeneratedSecret('ackstream', { encryptionKey: props.encryptionKey }),
      storageType: rds.StorageType.GP3,
      allocatedStorage: s.allocatedStorageGiB,
      maxAllocatedStorage: s.maxAllocatedStorageGiB,
      storageEncrypted: true,
      storageEncryptionKey: props.encryptionKey,
      parameterGroup,
      backupRetention: Duration.days(s.backupRetentionDays),
      deletionProtection: props.retain,
      removalPolicy: props.retain ? RemovalPolicy.SNAPSHOT : RemovalPolicy.DESTROY,
      iamAuthentication: true,
      enablePerformanceInsights: true,
      performanceInsightEncryptionKey: props.encryptionKey,
      monitoringInterval: Duration.seconds(60),
      cloudwatchLogsExports: ['postgresql'],
      cloudwatchLogsRetention: props.logRetention,
      autoMinorVersionUpgrade: true,
    });
    this.secret = this.instance.secret!;

    for (let i = 0; i < s.readReplicas; i++) {
      this.replicas.push(
        new rds.DatabaseInstanceReadReplica(this, `Replica${i + 1}`, {
          sourceDatabaseInstance: this.instance,
          instanceType: new ec2.InstanceType(s.instanceType),
          vpc: props.vpc,
          vpcSubnets: props.dataSubnets,
          securityGroups: [dbSg],
          storageType: rds.StorageType.GP3,
          // Encryption (and key) is inherited from the encrypted source instance.
          parameterGroup,
          deletionProtection: props.retain,
          removalPolicy: props.retain ? RemovalPolicy.SNAPSHOT : RemovalPolicy.DESTROY,
          enablePerformanceInsights: true,
          performanceInsightEncryptionKey: props.encryptionKey,
          monitoringInterval: Duration.seconds(60),
          cloudwatchLogsExports: ['postgresql'],
          cloudwatchLogsRetention: props.logRetention,
          autoMinorVersionUpgrade: true,
        }),
      );
    }

    this.proxy = this.instance.addProxy('Proxy', {
      vpc: props.vpc,
      vpcSubnets: props.appSubnets,
      securityGroups: [this.proxySecurityGroup],
      secrets: [this.secret],
      requireTLS: true,
      // Each Lambda holds one connection; a bounded borrow timeout fails fast under overload.
      borrowTimeout: Duration.seconds(30),
      maxConnectionsPercent: 90,
      debugLogging: false,
    });

    // Hosted rotation function: lives next to the proxy so it reaches Secrets Manager via the endpoint.
    const rotationSg = new ec2.SecurityGroup(this, 'RotationSg', {
      vpc: props.vpc,
      description: 'Secret rotation function',
      allowAllOutbound: true,
    });
    this.instance.addRotationSingleUser({
      automaticallyAfter: Duration.days(s.rotationDays),
      vpcSubnets: props.appSubnets,
      securityGroup: rotationSg,
    });
  }

  /** Opens the proxy port to a client and lets it read the credentials. */
  allowClient(client: ec2.IConnectable & { grantPrincipal: iam.IPrincipal }): void {
    this.proxy.connections.allowFrom(client, ec2.Port.tcp(5432), 'from processors');
    this.secret.grantRead(client);
  }
}
