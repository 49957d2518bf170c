/**
 * The read model's DynamoDB tables, defined once next to their row layout (rows.ts): the local stack
 * (scripts/local-stack.ts), a rebuild's new version table (processors/replay/rebuild.ts) and the read
 * bench create them from here. infra/ declares the same tables for AWS in CDK.
 */
import { CreateTableCommand, type CreateTableCommandInput, DescribeTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';

/** Items: pk (tenant#collection) + id; the `byUpdatedAt` LSI (sparse: tombstones have no updatedAtId) serves listings. */
export function itemsTableDefinition(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      { AttributeName: 'pk', AttributeType: 'S' },
      { AttributeName: 'id', AttributeType: 'S' },
      { AttributeName: 'updatedAtId', AttributeType: 'S' },
    ],
    KeySchema: [
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'id', KeyType: 'RANGE' },
    ],
    LocalSecondaryIndexes: [
      {
        IndexName: 'byUpdatedAt',
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'updatedAtId', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
    ],
  };
}

/** Requests: pk (tenant#requestId) only. */
export function requestsTableDefinition(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
    KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
  };
}

/** Creates the table unless it exists, then waits until it is ACTIVE. */
export async function ensureTable(dynamo: DynamoDBClient, input: CreateTableCommandInput): Promise<void> {
  try {
    await dynamo.send(new CreateTableCommand(input));
  } catch (err) {
    if ((err as Error).name !== 'ResourceInUseException') throw err;
  }
  for (let i = 0; i < 200; i++) {
    const d = await dynamo.send(new DescribeTableCommand({ TableName: input.TableName }));
    if (d.Table?.TableStatus === 'ACTIVE') return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`table ${input.TableName} did not become ACTIVE`);
}
