import { RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

export interface OperatorTaskProps {
  readonly vpc: ec2.IVpc;
  readonly image: ecs.ContainerImage;
  readonly architecture: 'x86_64' | 'arm64';
  readonly environment: Record<string, string>;
  readonly secrets: Record<string, ecs.Secret>;
  readonly logRetention: logs.RetentionDays;
}

/**
 * Operator access to a deployed stack: a Fargate task definition (the services' image) whose entry
 * point is scripts/ops-run.ts, so `aws ecs run-task ... --overrides '{"containerOverrides":[{"name":"ops",
 * "command":["dlq","list"]}]}'` runs `npm run dlq -- list` (or `replay ...`) inside the VPC, where the
 * RDS Proxy, Redis and the VPC endpoints are reachable, with the processors' configuration. The
 * `idle` command keeps a task up for ECS Exec. docs/RUNBOOK.md has the commands.
 */
export class OperatorTask extends Construct {
  static readonly CONTAINER = 'ops';
  readonly taskDefinition: ecs.FargateTaskDefinition;
  readonly securityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: OperatorTaskProps) {
    super(scope, id);
    this.taskDefinition = new ecs.FargateTaskDefinition(this, 'Task', {
      cpu: 512,
      memoryLimitMiB: 1024,
      runtimePlatform: {
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
        cpuArchitecture: props.architecture === 'arm64' ? ecs.CpuArchitecture.ARM64 : ecs.CpuArchitecture.X86_64,
      },
    });
    const logGroup = new logs.LogGroup(this, 'Logs', { retention: props.logRetention, removalPolicy: RemovalPolicy.DESTROY });
    this.taskDefinition.addContainer(OperatorTask.CONTAINER, {
      image: props.image,
      entryPoint: ['node', '--import', 'tsx', 'scripts/ops-run.ts'],
      command: ['dlq', 'list'],
      environment: props.environment,
      secrets: props.secrets,
      logging: ecs.LogDrivers.awsLogs({ logGroup, streamPrefix: 'ops' }),
      linuxParameters: new ecs.LinuxParameters(this, 'Linux', { initProcessEnabled: true }),
    });
    // ECS Exec (`aws ecs run-task --enable-execute-command`, then `aws ecs execute-command`).
    this.taskDefinition.taskRole.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['ssmmessages:CreateControlChannel', 'ssmmessages:CreateDataChannel', 'ssmmessages:OpenControlChannel', 'ssmmessages:OpenDataChannel'],
      resources: ['*'],
    }));
    this.securityGroup = new ec2.SecurityGroup(this, 'Sg', {
      vpc: props.vpc,
      description: 'Operator task: no ingress; egress to the RDS Proxy, Redis and AWS endpoints',
      allowAllOutbound: true,
    });
  }
}
