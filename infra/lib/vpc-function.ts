import type { RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';

export interface VpcFunctionOptions {
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  /** The security group's description: who it is for and where it may go. */
  readonly securityGroupDescription: string;
  readonly logRetention: logs.RetentionDays;
  /** @default CDK's default for log groups (retain) */
  readonly logRemovalPolicy?: RemovalPolicy;
}

/** The common part of a VPC function's props; the caller adds code, handler, memory, timeout. */
export type VpcFunctionProps = Pick<lambda.FunctionProps,
  'runtime' | 'architecture' | 'vpc' | 'vpcSubnets' | 'securityGroups' | 'logGroup' | 'environment'>;

export interface VpcFunctionBase {
  /** No ingress, all egress: the functions only call out (RDS Proxy, Redis, VPC endpoints). */
  readonly securityGroup: ec2.SecurityGroup;
  readonly logGroup: logs.LogGroup;
  /** Props for one function on this security group and log group, with `environment` + source maps. */
  functionProps(environment: Record<string, string>): VpcFunctionProps;
}

/**
 * What the project's Lambdas inside the VPC (the processors, the migrations) share: their own
 * security group (`Sg`) and log group (`Logs`) in `scope`, Node 24 on ARM, and stack traces
 * mapped to the TypeScript sources.
 */
export function vpcFunctionBase(scope: Construct, o: VpcFunctionOptions): VpcFunctionBase {
  const securityGroup = new ec2.SecurityGroup(scope, 'Sg', {
    vpc: o.vpc,
    description: o.securityGroupDescription,
    allowAllOutbound: true,
  });
  const logGroup = new logs.LogGroup(scope, 'Logs', {
    retention: o.logRetention,
    ...(o.logRemovalPolicy !== undefined ? { removalPolicy: o.logRemovalPolicy } : {}),
  });
  return {
    securityGroup,
    logGroup,
    functionProps: (environment) => ({
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      vpc: o.vpc,
      vpcSubnets: o.subnets,
      securityGroups: [securityGroup],
      logGroup,
      environment: { ...environment, NODE_OPTIONS: '--enable-source-maps' },
    }),
  };
}
