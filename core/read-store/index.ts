/**
 * Read-model storage, shared by the gateway (queued statuses), the processors (projections) and
 * the read API: ports here, one adapter folder per backend (redis/, memory/, dynamodb/). The read
 * API's near cache stays in read-model/; a Redis hot store only sees it through NearCacheLink.
 */
export * from './writes';
export * from './item-answer';
export * from './hot-store';
export * from './durable-store';
export * from './batch-writer';
export { RedisHotStore } from './redis/hot-store';
export { MemoryHotStore } from './memory/hot-store';
export { DynamoDurableStore } from './dynamodb/durable-store';
export { DynamoItemBatchWriter, DynamoRequestBatchWriter } from './dynamodb/batch-writers';
export { itemKey, itemRow, requestRow, storedItemOf } from './dynamodb/rows';
export { ensureTable, itemsTableDefinition, requestsTableDefinition } from './dynamodb/tables';
