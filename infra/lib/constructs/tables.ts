import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';

export interface ReadModelTablesProps {
  /** Keep tables (and forbid deletion) when the stack goes away. */
  readonly retain: boolean;
}

/**
 * The durable read model: on-demand (no capacity to plan; cost follows
 * traffic) with point-in-time recovery. Key schema is fixed by the services.
 */
export class ReadModelTables extends Construct {
  /** pk = `{tenant}#{collection}`, id; LSI byUpdatedAt on updatedAtId. */
  readonly items: dynamodb.Table;
  /** pk = `{tenant}#{requestId}`. */
  readonly requests: dynamodb.Table;

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
    });
  }
}
