import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { REQUEST_TTL_ATTRIBUTE } from '../../../core/request-retention';
import { registryTableName, versionItemsTable } from '../../../core/projections/registry';

export interface ReadModelTablesProps {
  /** Keep tables (and forbid deletion) when the stack goes away. */
  readonly retain: boolean;
}

/**
 * The durable read model: on-demand (no capacity to plan; cost follows
 * traffic) with point-in-time recovery. Key schema is fixed by the services.
 *
 * Besides the two tables, the code addresses tables by names DERIVED from the
 * items table (core/projections/registry.ts): the projection registry
 * `<items>-projections` (read on every item read and projection write; created
 * here) and a rebuild's version tables `<items>-v<n>` (created and dropped at
 * run time by `npm run replay -- rebuild`; granted by name pattern).
 */
export class ReadModelTables extends Construct {
  /** pk = `{tenant}#{collection}`, id; LSI byUpdatedAt on updatedAtId. */
  readonly items: dynamodb.Table;
  /** pk = `{tenant}#{requestId}`; rows expire through TTL on `expiresAt`. */
  readonly requests: dynamodb.Table;
  /** pk = projection name: the live version of each projection. */
  readonly registry: dynamodb.Table;

  constructor(scope: Construct, id: string, props: ReadModelTablesProps) {
    super(scope, id);
    const common = {
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      deletionProtection: props.retain,
      removalPolicy: props.retain ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    } as const;

    this.items = new dynamodb.Table(this, 'Items', {
      ...common,
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'id', type: dynamodb.AttributeType.STRING },
    });
    this.items.addLocalSecondaryIndex({
      indexName: 'byUpdatedAt',
      sortKey: { name: 'updatedAtId', type: dynamodb.AttributeType.STRING },
    });

    this.requests = new dynamodb.Table(this, 'Requests', {
      ...common,
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      timeToLiveAttribute: REQUEST_TTL_ATTRIBUTE,
    });

    this.registry = new dynamodb.Table(this, 'Registry', {
      ...common,
      tableName: registryTableName(this.items.tableName),
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
    });
  }

  /** ARNs of a rebuild's version tables (`<items>-v<n>`) and their indexes. */
  versionTableArns(): string[] {
    const arn = Stack.of(this).formatArn({ service: 'dynamodb', resource: 'table', resourceName: versionItemsTable(this.items.tableName, 0).replace(/0$/, '*') });
    return [arn, `${arn}/index/*`];
  }

  /** What the processors do: read and write every table, including version tables. */
  grantProjectionWriter(grantee: iam.IGrantable): void {
    for (const t of [this.items, this.requests]) t.grantReadWriteData(grantee);
    this.registry.grantReadData(grantee);
    grantee.grantPrincipal.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:BatchWriteItem', 'dynamodb:ConditionCheckItem', 'dynamodb:DescribeTable'],
      resources: this.versionTableArns(),
    }));
  }

  /** What the read API does: read items (of the live version), requests, the registry. */
  grantReader(grantee: iam.IGrantable): void {
    for (const t of [this.items, this.requests, this.registry]) t.grantReadData(grantee);
    grantee.grantPrincipal.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query', 'dynamodb:DescribeTable'],
      resources: this.versionTableArns(),
    }));
  }

  /** What operators do (replay rebuild/verify, dlq redrive): all of the above, plus version tables' lifecycle. */
  grantOperator(grantee: iam.IGrantable): void {
    for (const t of [this.items, this.requests, this.registry]) t.grantReadWriteData(grantee);
    grantee.grantPrincipal.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['dynamodb:CreateTable', 'dynamodb:DeleteTable', 'dynamodb:DescribeTable', 'dynamodb:Scan', 'dynamodb:GetItem', 'dynamodb:BatchGetItem',
        'dynamodb:Query', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:BatchWriteItem', 'dynamodb:ConditionCheckItem'],
      resources: this.versionTableArns(),
    }));
    // createItemsTableLike describes the items table it copies.
    this.items.grant(grantee, 'dynamodb:DescribeTable');
  }

  /** Throttled requests on any table (on-demand tables throttle too, past their partition limits). */
  throttleMetrics(): cloudwatch.IMetric[] {
    return [this.items, this.requests, this.registry].flatMap((t) =>
      ['ReadThrottleEvents', 'WriteThrottleEvents'].map((m) => t.metric(m, { statistic: 'Sum' })),
    );
  }
}
