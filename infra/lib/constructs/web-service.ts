import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { ServiceSizing } from '../config';

export interface WebServiceProps {
  readonly cluster: ecs.ICluster;
  readonly subnets: ec2.SubnetSelection;
  readonly image: ecs.ContainerImage;
  readonly architecture: 'x86_64' | 'arm64';
  /** Container command: one image, the entry file picks the service. */
  readonly command: string[];
  readonly port: number;
  readonly environment: Record<string, string>;
  readonly secrets: Record<string, ecs.Secret>;
  readonly sizing: ServiceSizing;
  /** HTTPS listener and the rule that sends traffic here. */
  readonly listener: elbv2.ApplicationListener;
  readonly priority: number;
  readonly conditions: elbv2.ListenerCondition[];
  /**
   * How long the ALB drains a deregistering task. Long for WebSockets so
   * clients get time to reconnect elsewhere.
   */
  readonly drainSeconds: number;
  readonly logRetention: logs.RetentionDays;
  readonly p99LatencyAlarmSeconds: number;
}

/**
 * A Fargate service behind the shared ALB: health check on /healthz, graceful
 * draining, deployment circuit breaker, CPU and request-count autoscaling, and
 * a p99 latency alarm on its target group.
 */
export class WebService extends Construct {
  readonly service: ecs.FargateService;
  readonly targetGroup: elbv2.ApplicationTargetGroup;
  readonly taskDefinition: ecs.FargateTaskDefinition;
  readonly alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: WebServiceProps) {
    super(scope, id);
    const z = props.sizing;

    this.taskDefinition = new ecs.FargateTaskDefinition(this, 'Task', {
      cpu: z.cpu,
      memoryLimitMiB: z.memoryMiB,
      runtimePlatform: {
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
        cpuArchitecture: props.architecture === 'arm64' ? ecs.CpuArchitecture.ARM64 : ecs.CpuArchitecture.X86_64,
      },
    });
    const logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.taskDefinition.addContainer('app', {
      image: props.image,
      command: props.command,
      environment: props.environment,
      secrets: props.secrets,
      portMappings: [{ containerPort: props.port }],
      logging: ecs.LogDrivers.awsLogs({ logGroup, streamPrefix: id }),
      // tini as PID 1 forwards SIGTERM so the service can close sockets and drain.
      linuxParameters: new ecs.LinuxParameters(this, 'Linux', { initProcessEnabled: true }),
      stopTimeout: Duration.seconds(Math.min(120, props.drainSeconds)),
      readonlyRootFilesystem: false,
    });

    this.service = new ecs.FargateService(this, 'Service', {
      cluster: props.cluster,
      taskDefinition: this.taskDefinition,
      desiredCount: z.minTasks,
      vpcSubnets: props.subnets,
      assignPublicIp: false,
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { rollback: true },
      healthCheckGracePeriod: Duration.seconds(30),
    });

    this.targetGroup = props.listener.addTargets(id, {
      priority: props.priority,
      conditions: props.conditions,
      port: props.port,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targets: [this.service],
      deregistrationDelay: Duration.seconds(props.drainSeconds),
      healthCheck: {
        path: '/healthz',
        healthyHttpCodes: '200',
        interval: Duration.seconds(10),
        timeout: Duration.seconds(5),
        healthyThresholdCount: 2,
        unhealthyThresholdCount: 3,
      },
    });

    const scaling = this.service.autoScaleTaskCount({ minCapacity: z.minTasks, maxCapacity: z.maxTasks });
    scaling.scaleOnCpuUtilization('Cpu', {
      targetUtilizationPercent: z.targetCpuPercent,
      scaleInCooldown: Duration.seconds(120),
      scaleOutCooldown: Duration.seconds(30),
    });
    if (z.targetRequestsPerTaskPerMinute !== undefined) {
      scaling.scaleOnRequestCount('Requests', {
        requestsPerTarget: z.targetRequestsPerTaskPerMinute,
        targetGroup: this.targetGroup,
        scaleInCooldown: Duration.seconds(120),
        scaleOutCooldown: Duration.seconds(30),
      });
    }

    this.alarms.push(
      new cloudwatch.Alarm(this, 'P99Latency', {
        alarmDescription: `${id}: p99 target response time too high`,
        metric: this.targetGroup.metrics.targetResponseTime({ statistic: 'p99', period: Duration.minutes(1) }),
        threshold: props.p99LatencyAlarmSeconds,
        evaluationPeriods: 5,
        datapointsToAlarm: 3,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      // No healthy target: the ALB answers 503 for this route. Missing data (no targets registered) is as bad.
      new cloudwatch.Alarm(this, 'HealthyHosts', {
        alarmDescription: `${id}: no healthy target behind the load balancer`,
        metric: this.targetGroup.metrics.healthyHostCount({ statistic: 'Minimum', period: Duration.minutes(1) }),
        threshold: 1,
        evaluationPeriods: 3,
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      }),
      // Fewer tasks than the autoscaling floor for 5 minutes: tasks crash or cannot be placed.
      new cloudwatch.Alarm(this, 'RunningTasks', {
        alarmDescription: `${id}: fewer running tasks than the minimum (${z.minTasks}) — crashing, or cannot be placed`,
        metric: new cloudwatch.Metric({
          namespace: 'ECS/ContainerInsights',
          metricName: 'RunningTaskCount',
          dimensionsMap: { ClusterName: props.cluster.clusterName, ServiceName: this.service.serviceName },
          statistic: 'Minimum',
          period: Duration.minutes(1),
        }),
        threshold: z.minTasks,
        evaluationPeriods: 5,
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      }),
    );
  }
}
