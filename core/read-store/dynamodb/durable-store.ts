/** The durable copy in DynamoDB: an items table (with the `byUpdatedAt` listing index) and a requests table. */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { decodeUtf8, parseDocumentText } from '../../document';
import { itemsPk, requestsPk } from '../../keys';
import { type DurableStore, InvalidCursorError } from '../durable-store';
import type { ItemWrite, Page, RequestWrite, StoredItem } from '../writes';
import { DynamoItemBatchWriter } from './batch-writers';
import { itemKey, itemRow, requestRow, storedItemOf } from './rows';

export class DynamoDurableStore implements DurableStore {
  private readonly batchItems: DynamoItemBatchWriter;

  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly itemsTable: string,
    private readonly requestsTable: string,
  ) {
    this.batchItems = new DynamoItemBatchWriter(doc, itemsTable);
  }

  async getItem(tenant: string, collection: string, id: string): Promise<StoredItem | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.itemsTable, Key: itemKey(tenant, collection, id), ConsistentRead: true }),
    );
    return out.Item ? storedItemOf(out.Item) : undefined;
  }

  async putItem(w: ItemWrite): Promise<boolean> {
    return this.conditionalPut(this.itemsTable, itemRow(w), 'attribute_not_exists(version) OR version < :v', { ':v': w.version });
  }

  /** Read-then-batch (BatchGetItem + BatchWriteItem of 25): see DynamoItemBatchWriter for when it is safe. */
  putItemsNewer(writes: ItemWrite[]): Promise<void> {
    return this.batchItems.putNewer(writes);
  }

  /**
   * Newest first (updatedAt, then id, descending: a total order, so pages never overlap). One item
   * more than asked is read, so `nextCursor` is null exactly on the last page.
   */
  async listItems(tenant: string, collection: string, limit: number, cursor: string | undefined, consistent = false): Promise<Page> {
    const pk = itemsPk(tenant, collection);
    const out = await this.doc.send(
      new QueryCommand({
        TableName: this.itemsTable,
        IndexName: 'byUpdatedAt',
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': pk },
        ProjectionExpression: 'id, updatedAtId, doc',
        ScanIndexForward: false,
        ...(consistent ? { ConsistentRead: true } : {}),
        Limit: limit + 1,
        ...(cursor ? { ExclusiveStartKey: decodeCursor(cursor, pk) } : {}),
      }),
    );
    const rows = out.Items ?? [];
    const page = rows.length > limit ? rows.slice(0, limit) : rows;
    const last = page[page.length - 1];
    // LastEvaluatedKey without an extra row: DynamoDB stopped at its 1 MB page size, so there may be more.
    const more = rows.length > limit || out.LastEvaluatedKey !== undefined;
    return { items: page.map((i) => String(i.doc)), nextCursor: more && last ? encodeCursor(last) : null };
  }

  async getRequest(tenant: string, requestId: string): Promise<string | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.requestsTable, Key: { pk: requestsPk(tenant, requestId) }, ConsistentRead: true }),
    );
    return out.Item ? String(out.Item.doc) : undefined;
  }

  async putRequest(w: RequestWrite): Promise<boolean> {
    return this.conditionalPut(
      this.requestsTable,
      requestRow(w),
      'attribute_not_exists(#r) OR #r < :r',
      { ':r': w.rank },
      { '#r': 'rank' },
    );
  }

  private async conditionalPut(
    table: string,
    item: Record<string, unknown>,
    condition: string,
    values: Record<string, unknown>,
    names?: Record<string, string>,
  ): Promise<boolean> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: table,
          Item: item,
          ConditionExpression: condition,
          ExpressionAttributeValues: values,
          ...(names ? { ExpressionAttributeNames: names } : {}),
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException || (err as Error).name === 'ConditionalCheckFailedException') return false;
      throw err;
    }
  }
}

function encodeCursor(key: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify([key.updatedAtId, key.id])).toString('base64url');
}

function decodeCursor(cursor: string, pk: string): Record<string, unknown> {
  try {
    // Under the document rules (core/document.ts): a cursor holding a lone surrogate or U+0000 is not ours.
    const text = decodeUtf8(Buffer.from(cursor, 'base64url'));
    const doc = typeof text === 'string' ? parseDocumentText(text, { maxDepth: 1 }) : undefined;
    const parsed = doc && 'value' in doc ? doc.value : undefined;
    // Key attributes may not be empty in DynamoDB: an empty part would be a 500, not a bad cursor.
    if (Array.isArray(parsed) && parsed.length === 2 && typeof parsed[0] === 'string' && typeof parsed[1] === 'string' && parsed[0] && parsed[1]) {
      return { pk, updatedAtId: parsed[0], id: parsed[1] };
    }
  } catch {
    // fall through
  }
  throw new InvalidCursorError('The cursor is not one this API returned.');
}
