/**
 * How long the durable read model keeps a request's final status (GET /v1/requests/{id}). DynamoDB
 * deletes a row some time after its `expiresAt` (epoch seconds; the requests table's TTL attribute,
 * infra/lib/constructs/tables.ts), so the table does not grow with every write ever made.
 */
export const REQUEST_STATUS_RETENTION_SECONDS = 30 * 24 * 3600;
export const REQUEST_TTL_ATTRIBUTE = 'expiresAt';

export const requestExpiresAt = (nowMs: number = Date.now()): number =>
  Math.floor(nowMs / 1000) + REQUEST_STATUS_RETENTION_SECONDS;
