import { Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as fis from 'aws-cdk-lib/aws-fis';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';

export interface ChaosProps {
  readonly cluster: ecs.ICluster;
  /** ECS services whose tasks an experiment stops, by a short name (gateway, read-api, ack-service). */
  readonly services: Record<string, ecs.FargateService>;
  readonly database: rds.DatabaseInstance;
  readonly multiAz: boolean;
  readonly processors: lambda.Function[];
  /** Reserved concurrency to restore after a pause (`undefined`: the functions are unreserved). */
  readonly reservedConcurrency?: number;
  /** Stop conditions: user-facing errors, and anything parked (nothing may be lost). */
  readonly userErrorsAlarm: cloudwatch.IAlarm;
  readonly lossAlarm: cloudwatch.IAlarm;
  readonly logRetention: logs.RetentionDays;
}

/**
 * Chaos with the platform's own tools: AWS FIS experiment templates that break what hosts the system
 * through AWS APIs (docs/RUNBOOK.md, "Chaos experiments"). Each stops by itself when a stop condition
 * alarm fires: the 5xx-rate alarm (users see errors) or the DLQ alarm (a record was parked).
 * Templates cost nothing until an experiment is started.
 */
export class Chaos extends Construct {
  readonly templates: Record<string, fis.CfnExperimentTemplate> = {};
  readonly role: iam.Role;

  constructor(scope: Construct, id: string, props: ChaosProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.role = new iam.Role(this, 'Role', { assumedBy: new iam.ServicePrincipal('fis.amazonaws.com'), description: 'AWS FIS experiments of Ackstream' });
    const logGroup = new logs.LogGroup(this, 'Logs', { retention: props.logRetention });
    logGroup.grantWrite(this.role);
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['logs:CreateLogDelivery', 'logs:DescribeLogGroups', 'logs:DescribeResourcePolicies', 'logs:PutResourcePolicy'], resources: ['*'] }));
    const logConfiguration = { logSchemaVersion: 2, cloudWatchLogsConfiguration: { LogGroupArn: logGroup.logGroupArn } };
    const stop = (...alarms: cloudwatch.IAlarm[]) => alarms.map((a) => ({ source: 'aws:cloudwatch:alarm', value: a.alarmArn }));

    // ---- stop half the tasks of one service ----
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['ecs:StopTask'], resources: ['*'], conditions: { ArnEquals: { 'ecs:cluster': props.cluster.clusterArn } } }));
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['ecs:DescribeTasks', 'ecs:ListTasks'], resources: ['*'] }));
    for (const [name, service] of Object.entries(props.services)) {
      this.templates[`stop-${name}-tasks`] = new fis.CfnExperimentTemplate(this, `Stop${pascal(name)}Tasks`, {
        description: `Stop 50% of the ${name} tasks: the ALB routes around them, ECS replaces them, no write is lost`,
        roleArn: this.role.roleArn,
        stopConditions: stop(props.userErrorsAlarm, props.lossAlarm),
        targets: {
          tasks: {
            resourceType: 'aws:ecs:task',
            selectionMode: 'PERCENT(50)',
            parameters: { cluster: props.cluster.clusterName, service: service.serviceName },
          },
        },
        actions: { stopTasks: { actionId: 'aws:ecs:stop-task', targets: { Tasks: 'tasks' } } },
        logConfiguration,
        tags: { Name: `ackstream-stop-${name}-tasks` },
      });
    }

    // ---- database failover (Multi-AZ) / reboot (single-AZ) ----
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['rds:RebootDBInstance', 'rds:DescribeDBInstances'], resources: [props.database.instanceArn] }));
    this.templates['rds-failover'] = new fis.CfnExperimentTemplate(this, 'RdsFailover', {
      description: props.multiAz
        ? 'Reboot the PostgreSQL primary with failover to the standby: processors retry through the proxy, every write is committed once'
        : 'Reboot the single-AZ PostgreSQL instance: processors retry through the proxy, every write is committed once',
      roleArn: this.role.roleArn,
      stopConditions: stop(props.lossAlarm),
      targets: { db: { resourceType: 'aws:rds:db', resourceArns: [props.database.instanceArn], selectionMode: 'ALL' } },
      actions: { reboot: { actionId: 'aws:rds:reboot-db-instances', parameters: { forceFailover: String(props.multiAz) }, targets: { DBInstances: 'db' } } },
      logConfiguration,
      tags: { Name: 'ackstream-rds-failover' },
    });

    // ---- pause the processors: reserved concurrency 0 for a while, then restore ----
    const automationRole = new iam.Role(this, 'AutomationRole', { assumedBy: new iam.ServicePrincipal('ssm.amazonaws.com'), description: 'Pauses and restores the processors (FIS experiment)' });
    automationRole.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['lambda:PutFunctionConcurrency', 'lambda:DeleteFunctionConcurrency'],
      resources: props.processors.map((f) => f.functionArn),
    }));
    const restore = (fnParam: string, i: number) =>
      props.reservedConcurrency === undefined
        ? { name: `restore${i}`, action: 'aws:executeAwsApi', inputs: { Service: 'lambda', Api: 'DeleteFunctionConcurrency', FunctionName: `{{ ${fnParam} }}` } }
        : { name: `restore${i}`, action: 'aws:executeAwsApi', inputs: { Service: 'lambda', Api: 'PutFunctionConcurrency', FunctionName: `{{ ${fnParam} }}`, ReservedConcurrentExecutions: props.reservedConcurrency } };
    const fnParams = props.processors.map((_, i) => `Function${i}`);
    const document = new ssm.CfnDocument(this, 'PauseProcessors', {
      documentType: 'Automation',
      content: {
        schemaVersion: '0.3',
        description: 'Throttles the processors (reserved concurrency 0), waits, restores them; restores on cancel too',
        assumeRole: '{{ AutomationAssumeRole }}',
        parameters: {
          AutomationAssumeRole: { type: 'String' },
          Duration: { type: 'String', default: 'PT5M' },
          ...Object.fromEntries(fnParams.map((p) => [p, { type: 'String' }])),
        },
        mainSteps: [
          ...fnParams.map((p, i) => ({ name: `pause${i}`, action: 'aws:executeAwsApi', onFailure: 'step:restore0', inputs: { Service: 'lambda', Api: 'PutFunctionConcurrency', FunctionName: `{{ ${p} }}`, ReservedConcurrentExecutions: 0 } })),
          { name: 'wait', action: 'aws:sleep', onFailure: 'step:restore0', onCancel: 'step:restore0', inputs: { Duration: '{{ Duration }}' } },
          ...fnParams.map((p, i) => ({ ...restore(p, i), ...(i < fnParams.length - 1 ? {} : { isEnd: true }) })),
        ],
      },
    });
    const documentArn = stack.formatArn({ service: 'ssm', resource: 'document', resourceName: document.ref });
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['ssm:StartAutomationExecution'], resources: [`${documentArn}`, `${documentArn}:*`] }));
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['ssm:GetAutomationExecution', 'ssm:StopAutomationExecution'], resources: ['*'] }));
    automationRole.grantPassRole(this.role);
    this.templates['pause-processors'] = new fis.CfnExperimentTemplate(this, 'PauseProcessorsExperiment', {
      description: 'Throttle both processor functions for 5 minutes: records wait in the stream (iterator age climbs), none is lost, acks resume',
      roleArn: this.role.roleArn,
      stopConditions: stop(props.lossAlarm),
      targets: {},
      actions: {
        pause: {
          actionId: 'aws:ssm:start-automation-execution',
          parameters: {
            documentArn,
            documentParameters: stack.toJsonString({
              AutomationAssumeRole: automationRole.roleArn,
              Duration: 'PT5M',
              ...Object.fromEntries(props.processors.map((f, i) => [fnParams[i]!, f.functionName])),
            }),
            maxDuration: 'PT10M',
          },
        },
      },
      logConfiguration,
      tags: { Name: 'ackstream-pause-processors' },
    });
  }
}

const pascal = (s: string) => s.replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase());
