/**
 * Every key a write touches is built here, and every one starts with the tenant: isolation is
 * structural, not a filter someone can forget.
 */
import { createHash } from 'node:crypto';

const MAX_PARTITION_KEY = 256; // Kinesis limit (Unicode chars)

/** One item's writes share a partition key, so they land on one shard, in order. */
export function partitionKey(tenant: string, collection: string, id: string): string {
  const key = `${tenant}/${collection}/${id}`;
  if (key.length <= MAX_PARTITION_KEY) return key;
  return `h/${createHash('sha256').update(key).digest('hex')}`;
}

/** DynamoDB: items of one tenant's collection share a partition. `#` cannot occur in either part. */
export const itemsPk = (tenant: string, collection: string) => `${tenant}#${collection}`;
export const requestsPk = (tenant: string, requestId: string) => `${tenant}#${requestId}`;
/** Listing sort key: newest first by update time, id breaks ties. */
export const updatedAtId = (updatedAt: string, id: string) => `${updatedAt}#${id}`;

/** Redis keys, all under one prefix so tests and deployments never collide. */
export class RedisKeys {
  constructor(readonly prefix: string) {}
  item(tenant: string, collection: string, id: string) {
    return `${this.prefix}item:${tenant}:${collection}:${id}`;
  }
  request(tenant: string, requestId: string) {
    return `${this.prefix}req:${tenant}:${requestId}`;
  }
  /** The hash tag keeps a principal's ack keys in one cluster slot for the append script. */
  private route(tenant: string, principal: string) {
    return `{${tenant}:${principal.replace(/[{}]/g, '_')}}`;
  }
  ackStream(tenant: string, principal: string) {
    return `${this.prefix}acks:${this.route(tenant, principal)}`;
  }
  ackCounter(tenant: string, principal: string) {
    return `${this.prefix}ackseq:${this.route(tenant, principal)}`;
  }
  ackFinal(tenant: string, principal: string, requestId: string) {
    return `${this.prefix}ackfinal:${this.route(tenant, principal)}:${requestId}`;
  }
  ackChannel() {
    return `${this.prefix}acks`;
  }
}
