import * as path from 'node:path';
import { Duration } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as triggers from 'aws-cdk-lib/triggers';
import { Construct, type IConstruct } from 'constructs';
import { esbuildLambdaCode } from '../lambda-bundle';
import { vpcFunctionBase } from '../vpc-function';
import type { EventStoreDatabase } from './database';

export interface MigrationsProps {
  /** Repository root: the handler is infra/runtime/migrate-handler.ts, the SQL processors/migrations. */
  readonly repoRoot: string;
  /** Ready code instead (tests without bundling). */
  readonly code?: lambda.Code;
  readonly database: EventStoreDatabase;
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  readonly logRetention: logs.RetentionDays;
  /** What must not start before the schema exists (the event source mappings, the app secret's rotation). */
  readonly before: IConstruct[];
}

/**
 * Database migrations as part of `cdk deploy`: a Lambda (node-pg-migrate + the SQL files, bundled
 * with esbuild) invoked by a CDK trigger during the deployment, through the RDS Proxy — the network
 * path, TLS and security groups the processors use. It runs when its bundle changes (new
 * migrations), before the event source mappings are created: no batch ever meets a missing table.
 * A failed migration fails the deployment (CloudFormation rolls back), never the processors.
 */
export class Migrations extends Construct {
  readonly fn: lambda.Function;
  readonly trigger: triggers.Trigger;
  readonly securityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: MigrationsProps) {
    super(scope, id);
    const db = props.database;
    const base = vpcFunctionBase(this, {
      vpc: props.vpc,
      subnets: props.subnets,
      securityGroupDescription: 'Migration function: no ingress; egress to the RDS Proxy and Secrets Manager',
      logRetention: props.logRetention,
    });
    this.securityGroup = base.securityGroup;
    const code = props.code ?? esbuildLambdaCode(path.join(props.repoRoot, 'infra/runtime/migrate-handler.ts'), {
      copyDirs: [{ from: path.join(props.repoRoot, 'processors/migrations'), to: 'migrations' }],
    });
    this.fn = new lambda.Function(this, 'Fn', {
      ...base.functionProps({
        DB_SECRET_ARN: db.secret.secretArn,
        APP_DB_SECRET_ARN: db.appSecret.secretArn,
        DB_HOST: db.proxy.endpoint,
        DB_NAME: db.databaseName,
      }),
      code,
      handler: 'index.handler',
      memorySize: 256,
      timeout: Duration.minutes(10),
    });
    db.proxy.connections.allowFrom(this.fn, ec2.Port.tcp(5432), 'from the migration function');
    db.secret.grantRead(this.fn);
    db.appSecret.grantRead(this.fn);

    this.trigger = new triggers.Trigger(this, 'Run', {
      handler: this.fn,
      timeout: Duration.minutes(10),
      invocationType: triggers.InvocationType.REQUEST_RESPONSE,
      executeOnHandlerChange: true,
      // The proxy answers only once its target (the instance) is registered; the function reaches
      // it only once the proxy's ingress rules exist, and Secrets Manager through the VPC endpoints.
      executeAfter: [db.proxy, db.instance, db.proxySecurityGroup, props.vpc],
      executeBefore: props.before,
    });
  }
}
