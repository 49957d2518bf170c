import { Stack } from 'aws-cdk-lib';
import { NagPackSuppression, NagSuppressions } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import type { AckstreamStack } from './ackstream-stack';

/**
 * Every accepted cdk-nag AwsSolutions finding, each with the reason it is
 * accepted. Stage-dependent ones (single-AZ, no deletion protection) are only
 * suppressed when the stage config actually chooses them, so a prod stack that
 * regresses fails the nag test.
 */
export function applyNagSuppressions(stack: AckstreamStack): void {
  const s = (scope: IConstruct, rules: NagPackSuppression[]): void =>
    NagSuppressions.addResourceSuppressions(scope, rules, true);

  // ---- IAM: wildcards that come from CDK grant* methods or AWS API shape ----
  const kmsWildcards: NagPackSuppression = {
    id: 'AwsSolutions-IAM5',
    reason:
      'kms:GenerateDataKey* / kms:ReEncrypt* come from grant* on KMS-encrypted resources (stream, queue, secrets) and are scoped to the one data key.',
    appliesTo: ['Action::kms:GenerateDataKey*', 'Action::kms:ReEncrypt*'],
  };
  const indexWildcard: NagPackSuppression = {
    id: 'AwsSolutions-IAM5',
    reason: 'Table grant covers the table\'s own indexes (the items LSI byUpdatedAt), nothing else.',
    appliesTo: [{ regex: '/^Resource::<Tables(Items|Requests)[0-9A-F]+\\.Arn>\\/index\\/\\*$/g' }],
  };
  const lambdaManaged: NagPackSuppression = {
    id: 'AwsSolutions-IAM4',
    reason:
      'AWSLambdaBasicExecutionRole / AWSLambdaVPCAccessExecutionRole are the AWS-maintained minimal policies for logging and VPC ENIs.',
    appliesTo: [
      'Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole',
      'Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole',
    ],
  };

  for (const fn of [stack.processor.fn, stack.processor.projectionFn]) {
    s(fn, [
      kmsWildcards,
      indexWildcard,
      lambdaManaged,
      {
        id: 'AwsSolutions-IAM5',
        reason: 'X-Ray PutTraceSegments/PutTelemetryRecords and ENI management support no resource-level permissions.',
        appliesTo: ['Resource::*'],
      },
    ]);
  }
  s(stack.processor.deadLetterQueue, [
    { id: 'AwsSolutions-SQS3', reason: 'This queue is the dead-letter destination of the processors; a DLQ of a DLQ adds nothing.' },
  ]);
  s(stack.processor.stream, [
    {
      id: 'AwsSolutions-KDS3',
      reason: 'A customer-managed key (rotation on) is used deliberately: key policy and audit are under our control.',
    },
  ]);

  for (const svc of Object.values(stack.services)) {
    s(svc.taskDefinition, [
      kmsWildcards,
      indexWildcard,
      {
        id: 'AwsSolutions-IAM5',
        reason: 'Execution role: ecr:GetAuthorizationToken only supports Resource "*".',
        appliesTo: ['Resource::*'],
      },
      {
        id: 'AwsSolutions-ECS2',
        reason: 'Plain environment holds only non-secret config (ports, table names, endpoints); secrets are injected from Secrets Manager.',
      },
    ]);
  }

  const versionTables: NagPackSuppression = {
    id: 'AwsSolutions-IAM5',
    reason: 'A rebuild\'s version tables are named <items table>-v<n> at run time (core/projections/registry.ts versionItemsTable); the grant is that name pattern and its indexes only.',
    appliesTo: [{ regex: '/^Resource::arn:.*:table\\/<TablesItems[0-9A-F]+>-v\\*(\\/index\\/\\*)?$/g' }],
  };
  for (const fn of [stack.processor.fn, stack.processor.projectionFn]) s(fn, [versionTables]);
  s(stack.services.readApi.taskDefinition, [versionTables]);
  s(stack.operatorTask.taskDefinition, [
    kmsWildcards,
    indexWildcard,
    versionTables,
    {
      id: 'AwsSolutions-IAM5',
      reason: 'ECS Exec (ssmmessages:*Channel) and ecr:GetAuthorizationToken support no resource-level permissions.',
      appliesTo: ['Resource::*'],
    },
    { id: 'AwsSolutions-ECS2', reason: 'Plain environment holds only non-secret config (endpoints, table names); credentials are injected from Secrets Manager.' },
  ]);
  s(stack.migrations.fn, [lambdaManaged]);
  s(stack.chaos.role, [
    {
      id: 'AwsSolutions-IAM5',
      reason: 'FIS: ecs:StopTask is limited to this cluster by condition; ListTasks/DescribeTasks, SSM automation status and log delivery support no resource-level permissions; the automation ARN pattern covers versions of our one document.',
      appliesTo: ['Resource::*', { regex: '/^Resource::arn:.*:document\\/<ChaosPauseProcessors[0-9A-F]+>:\\*$/g' }],
    },
  ]);

  // ---- network / edge ----
  s(stack.edge, [
    { id: 'AwsSolutions-EC23', reason: 'Internet-facing ALB: 443 (and 80, redirect only) must be open to all clients; WAF fronts it in prod.' },
  ]);
  s(stack.edge.accessLogs, [
    { id: 'AwsSolutions-S1', reason: 'This is the access-log bucket itself; logging it to another bucket would recurse.' },
  ]);
  s(stack.network, [
    {
      id: 'CdkNagValidationFailure',
      reason: 'Endpoint SG ingress is the VPC CIDR (a token at synth), not 0.0.0.0/0; EC23 cannot evaluate tokens.',
    },
  ]);

  // ---- data ----
  const db = stack.database;
  const dbRules: NagPackSuppression[] = [
    { id: 'AwsSolutions-RDS11', reason: 'Default port 5432: only the RDS Proxy and rotation SGs can reach it; a custom port adds no security.' },
    {
      id: 'AwsSolutions-IAM4',
      reason: 'AmazonRDSEnhancedMonitoringRole is the AWS-maintained policy for enhanced monitoring.',
      appliesTo: ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole'],
    },
  ];
  if (!stack.config.database.multiAz) {
    dbRules.push({ id: 'AwsSolutions-RDS3', reason: 'dev stage: single-AZ by config to keep cost down (prod is Multi-AZ).' });
  }
  if (!stack.config.retainData) {
    dbRules.push({ id: 'AwsSolutions-RDS10', reason: 'dev stage: no deletion protection so the stage can be torn down (prod has it).' });
  }
  s(db, dbRules);

  const cacheRules: NagPackSuppression[] = [
    { id: 'AwsSolutions-AEC5', reason: 'Default port 6379: SG-restricted to the services and processors; TLS + AUTH required.' },
    {
      id: 'AwsSolutions-SMG4',
      reason:
        'Redis AUTH token rotation needs the ROTATE/SET strategy coordinated with client reconnects; rotated by runbook (docs/DEPLOY.md).',
    },
  ];
  if (stack.config.redis.replicas === 0) {
    cacheRules.push({ id: 'AwsSolutions-AEC4', reason: 'dev stage: single node by config (prod runs replicas with Multi-AZ failover).' });
  }
  s(stack.cache, cacheRules);

  s(stack.authSecret, [
    {
      id: 'AwsSolutions-SMG4',
      reason: 'HS256 signing key: rotation needs services to accept old and new keys during the overlap; rotated by runbook (docs/DEPLOY.md).',
    },
  ]);

  // CDK's singleton that sets RDS log-group retention.
  for (const child of Stack.of(stack).node.children) {
    if (child.node.id.startsWith('LogRetention')) {
      s(child, [
        { ...lambdaManaged, reason: 'CDK-managed log retention function: ' + lambdaManaged.reason },
        {
          id: 'AwsSolutions-IAM5',
          reason: 'CDK-managed log retention function must manage retention on log groups it does not know at synth.',
          appliesTo: ['Resource::*'],
        },
      ]);
    }
  }
}
