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

/** The application's login role: created by the migrations (processors/migrations), least privilege. */
export const APP_DB_USER = 'ackstream_app';

/**
 * The event log and write-side state: PostgreSQL, reached only through an RDS
 * Proxy, because a Kinesis fan-out of Lambdas would otherwise open a
 * connection per concurrent invocation.
 *
 * Two credentials, both rotated: the master user (migrations only) and the
 * application role {@link APP_DB_USER} (the processors and the operator task),
 * whose password the migration function sets from {@link appSecret}.
 */
export class EventStoreDatabase extends Construct {
  readonly instance: rds.DatabaseInstance;
  readonly proxy: rds.DatabaseProxy;
  /** Master credentials: used by the migration function only. */
  readonly secret: secretsmanager.ISecret;
  /** Credentials of {@link APP_DB_USER}: what the processors and operators connect with. */
  readonly appSecret: secretsmanager.ISecret;
  /** Rotation of {@link appSecret}; it must not start before the migrations created the role. */
  readonly appRotation: secretsmanager.SecretRotation;
  readonly appRotationSchedule: secretsmanager.RotationSchedule;
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
      credentials: rds.Credentials.fromGeneratedSecret('ackstream', {
        encryptionKey: props.encryptionKey,
      }),
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

    // The application role's credentials; attached, so the rotation function finds host and port.
    const appSecret = new rds.DatabaseSecret(this, 'AppSecret', {
      username: APP_DB_USER,
      encryptionKey: props.encryptionKey,
    });
    this.appSecret = appSecret.attach(this.instance);
    // Secrets live as long as the data: prod keeps the database as a snapshot, so it keeps the
    // credentials too (a restored snapshot still has the master and application passwords).
    const secretPolicy = props.retain ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
    appSecret.applyRemovalPolicy(secretPolicy);
    (this.instance.node.findChild('Secret') as rds.DatabaseSecret).applyRemovalPolicy(secretPolicy);

    this.proxy = this.instance.addProxy('Proxy', {
      vpc: props.vpc,
      vpcSubnets: props.appSubnets,
      securityGroups: [this.proxySecurityGroup],
      // Migrations log in as master, everything else as the application role.
      secrets: [this.secret, this.appSecret],
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
    // Single-user: the role changes its own password (any PostgreSQL role may), no master needed.
    this.appRotation = new secretsmanager.SecretRotation(this, 'AppRotation', {
      application: secretsmanager.SecretRotationApplication.POSTGRES_ROTATION_SINGLE_USER,
      secret: this.appSecret,
      target: this.instance,
      vpc: props.vpc,
      vpcSubnets: props.appSubnets,
      securityGroup: rotationSg,
      automaticallyAfter: Duration.days(s.rotationDays),
    });
    // The schedule (which rotates at once when created) lives on the secret, not under the rotation.
    this.appRotationSchedule = this.node.findAll().find(
      (c): c is secretsmanager.RotationSchedule => c instanceof secretsmanager.RotationSchedule && c.node.path.includes('/AppSecret'),
    )!;
  }

  /** Opens the proxy port to a client and lets it read the application credentials. */
  allowClient(client: ec2.IConnectable & { grantPrincipal: iam.IPrincipal }, description: string): void {
    this.proxy.connections.allowFrom(client, ec2.Port.tcp(5432), description);
    this.appSecret.grantRead(client);
  }
}
