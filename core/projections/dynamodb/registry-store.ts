/** The projection registry's DynamoDB table (`<ITEMS_TABLE>-projections`, one row per projection). */
import {
  CreateTableCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  ResourceInUseException,
} from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, GetCommand, PutCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { defaultRecord, type ProjectionRecord, type ProjectionRegistry, type ProjectionVersion, RegistryConflictError, type RegistryDefaults } from '../registry';

export class DynamoProjectionRegistry implements ProjectionRegistry {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    readonly table: string,
    private readonly defaults: RegistryDefaults,
  ) {}

  async get(name: string): Promise<ProjectionRecord> {
    try {
      const out = await this.doc.send(new GetCommand({ TableName: this.table, Key: { pk: name }, ConsistentRead: true }));
      if (!out.Item) return defaultRecord(name, this.defaults);
      return fromItem(out.Item);
    } catch (err) {
      if ((err as Error).name === 'ResourceNotFoundException') return defaultRecord(name, this.defaults);
      throw err;
    }
  }

  async list(): Promise<ProjectionRecord[]> {
    try {
      const out = await this.doc.send(new ScanCommand({ TableName: this.table, ConsistentRead: true }));
      return (out.Items ?? []).map(fromItem);
    } catch (err) {
      if ((err as Error).name === 'ResourceNotFoundException') return [];
      throw err;
    }
  }

  /** Writes `rec` if nobody changed it since it was read (rev), and returns it with the next rev. */
  async save(rec: ProjectionRecord): Promise<ProjectionRecord> {
    const next = { ...rec, rev: rec.rev + 1 };
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.table,
          Item: { pk: rec.name, rev: next.rev, live: next.live, versions: JSON.stringify(next.versions) },
          ConditionExpression: rec.rev === 0 ? 'attribute_not_exists(pk)' : 'rev = :rev',
          ...(rec.rev === 0 ? {} : { ExpressionAttributeValues: { ':rev': rec.rev } }),
        }),
      );
    } catch (err) {
      if ((err as Error).name === 'ConditionalCheckFailedException') {
        throw new RegistryConflictError(`projection ${rec.name} was changed by someone else (rev ${rec.rev}); run the command again`);
      }
      throw err;
    }
    return next;
  }

  async ensureTable(dynamo: DynamoDBClient): Promise<void> {
    try {
      await dynamo.send(
        new CreateTableCommand({
          TableName: this.table,
          BillingMode: 'PAY_PER_REQUEST',
          AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
          KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
        }),
      );
    } catch (err) {
      if (!(err instanceof ResourceInUseException) && (err as Error).name !== 'ResourceInUseException') throw err;
    }
    await waitActive(dynamo, this.table);
  }
}

export async function waitActive(dynamo: DynamoDBClient, table: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const d = await dynamo.send(new DescribeTableCommand({ TableName: table }));
    if (d.Table?.TableStatus === 'ACTIVE') return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`table ${table} did not become ACTIVE`);
}

function fromItem(item: Record<string, unknown>): ProjectionRecord {
  return {
    name: String(item.pk),
    rev: Number(item.rev),
    live: Number(item.live),
    versions: JSON.parse(String(item.versions)) as Record<string, ProjectionVersion>,
  };
}

