/**
 * Listing consistency. Listings are served from the durable copy (DynamoDB), which the projection
 * consumer fills behind the commit consumer: a `committed` ack means the write is in PostgreSQL
 * and readable by id, not yet that it is in listings. A client that must see its writes in a
 * listing passes their consistency tokens; the read API answers once the projection consumer has
 * projected every shard at least up to them (bounded wait, else 409).
 *
 * A token is a write's place on the stream, `<shardId>:<sequenceNumber>` — the `consistencyToken`
 * of its `committed` ack, or the `shardId` and `sequenceNumber` of its 202. The projection consumer
 * records, per shard, the last sequence number it projected into every deployed version of the
 * items table (`ProjectionWatermark.advance`, after the writes, so the mark never runs ahead of
 * them); it lives in the requests table under `pk = "#projected#<shardId>"`.
 */
import { GetCommand, type DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';

/** A shard and a sequence number (decimal string). */
export interface StreamPosition {
  shardId: string;
  sequenceNumber: string;
}

export const MAX_TOKENS = 64;
const TOKEN = /^([A-Za-z0-9_.-]{1,128}):([0-9]{1,128})$/;

export class InvalidTokenError extends Error {
  override name = 'InvalidTokenError';
}

export const formatToken = (p: StreamPosition) => `${p.shardId}:${p.sequenceNumber}`;

/**
 * `consistentWith`: comma-separated tokens (up to MAX_TOKENS); several on one shard reduce to the
 * highest, which covers the others (a shard's sequence numbers grow).
 */
export function parseTokens(raw: string): StreamPosition[] {
  const parts = raw.split(',');
  if (parts.length > MAX_TOKENS) throw new InvalidTokenError(`at most ${MAX_TOKENS} tokens (send the highest per shard)`);
  const highest = new Map<string, bigint>();
  for (const part of parts) {
    const m = TOKEN.exec(part.trim());
    if (!m) throw new InvalidTokenError('each token is "<shardId>:<sequenceNumber>", as in a committed ack\'s consistencyToken');
    const seq = BigInt(m[2]!);
    const prev = highest.get(m[1]!);
    if (prev === undefined || seq > prev) highest.set(m[1]!, seq);
  }
  return [...highest].map(([shardId, seq]) => ({ shardId, sequenceNumber: seq.toString() }));
}

/** Port: how far the projection consumer got, per shard. */
export interface ProjectionWatermark {
  /** Records that everything up to these positions is projected (never moves a shard back). */
  advance(positions: StreamPosition[]): Promise<void>;
  /** Whether every position is projected. */
  reached(positions: StreamPosition[]): Promise<boolean>;
}

/** Sequence numbers are decimal strings of varying length: padded, they compare as strings in a condition. */
const padded = (seq: string) => seq.padStart(128, '0');
const key = (shardId: string) => ({ pk: `#projected#${shardId}` });

export class DynamoProjectionWatermark implements ProjectionWatermark {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  async advance(positions: StreamPosition[]): Promise<void> {
    await Promise.all(positions.map(async (p) => {
      try {
        await this.doc.send(new UpdateCommand({
          TableName: this.table,
          Key: key(p.shardId),
          UpdateExpression: 'SET seq = :p, sequenceNumber = :s, updatedAt = :t',
          ConditionExpression: 'attribute_not_exists(seq) OR seq < :p',
          ExpressionAttributeValues: { ':p': padded(p.sequenceNumber), ':s': p.sequenceNumber, ':t': new Date().toISOString() },
        }));
      } catch (err) {
        if ((err as Error).name !== 'ConditionalCheckFailedException') throw err; // already further
      }
    }));
  }

  async reached(positions: StreamPosition[]): Promise<boolean> {
    const marks = await Promise.all(positions.map((p) =>
      this.doc.send(new GetCommand({ TableName: this.table, Key: key(p.shardId), ConsistentRead: true, ProjectionExpression: 'seq' }))));
    return positions.every((p, i) => {
      const seq = marks[i]!.Item?.seq as string | undefined;
      return seq !== undefined && seq >= padded(p.sequenceNumber);
    });
  }
}

/** The last record of each shard in a run of records (what a projected batch advances the mark to). */
export function lastPerShard(records: Array<{ shardId: string; sequenceNumber: string }>): StreamPosition[] {
  const last = new Map<string, string>();
  for (const r of records) last.set(r.shardId, r.sequenceNumber);
  return [...last].map(([shardId, sequenceNumber]) => ({ shardId, sequenceNumber }));
}
