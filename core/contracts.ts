/**
 * The shared contracts of Ackstream (API contract v1): commands on the stream, events in the log,
 * acks on the WebSocket, request status and item documents in the read model.
 * Every service imports these; nothing here knows an SDK.
 */
import { z } from 'zod';

/** Collection and item ids as the contract allows them in paths. */
export const NAME_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;
/** Tenants become part of every key, so they are kept short and separator-free. */
export const TENANT_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
/** Principals (JWT `sub`): printable ASCII without spaces. */
export const SUBJECT_PATTERN = /^[\x21-\x7E]{1,256}$/;

export const CollectionName = z.string().regex(NAME_PATTERN, 'must match ^[A-Za-z0-9_.-]{1,128}$');
export const ItemId = z.string().regex(NAME_PATTERN, 'must match ^[A-Za-z0-9_.-]{1,128}$');
export const Tenant = z.string().regex(TENANT_PATTERN, 'must match ^[A-Za-z0-9_.-]{1,64}$');
export const Subject = z.string().regex(SUBJECT_PATTERN, 'must be 1-256 printable ASCII characters');

export type JsonObject = { [key: string]: unknown };
/**
 * A JSON object, passed through as it is: z.record would rebuild it with `out[key] = value`, and
 * a member named `__proto__` would become a prototype and vanish (core/document.ts).
 */
export const JsonObjectSchema = z.custom<JsonObject>(
  (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
  { message: 'must be a JSON object' },
);

/** `attach`/`detach`: an attachment's metadata added (by the attachment worker) or removed (core/attachments.ts). */
export const CommandKind = z.enum(['put', 'patch', 'delete', 'attach', 'detach']);
export type CommandKind = z.infer<typeof CommandKind>;

/** A write as the gateway puts it on the stream (one Kinesis record, JSON). */
export const CommandSchema = z.object({
  v: z.literal(1),
  requestId: z.string().min(1).max(64),
  kind: CommandKind,
  tenant: Tenant,
  principal: Subject,
  collection: CollectionName,
  id: ItemId,
  /** Full document for `put`, a JSON merge patch (RFC 7396) for `patch`, absent for `delete`. */
  data: JsonObjectSchema.optional(),
  ifMatch: z.number().int().positive().optional(),
  ifNoneMatch: z.literal(true).optional(),
  idempotencyKey: z.string().min(1).max(255).optional(),
  /** `attach` only: the worker refused the upload; the command is decided as this rejection. */
  reject: z.object({ code: z.string().min(1).max(64), message: z.string().max(1024) }).optional(),
  traceId: z.string().max(128).optional(),
  receivedAt: z.string(),
});
export type Command = z.infer<typeof CommandSchema>;

export type EventType = 'ItemPut' | 'ItemPatched' | 'ItemDeleted' | 'AttachmentAdded' | 'AttachmentRemoved';

/** Current state of one item as the write side holds it. */
export interface ItemState {
  tenant: string;
  collection: string;
  id: string;
  version: number;
  deleted: boolean;
  data: JsonObject | null;
  updatedAt: string;
}

export const RejectionCode = z.enum([
  'version_conflict',
  'already_exists',
  'not_found',
  'item_parked',
  'invalid_command',
  /** The document breaks the document contract (core/document.ts) or the database refuses its content: it can never succeed. */
  'invalid_document',
  // Attachments (core/attachments.ts): the worker's checks, and a removal of an unknown attachment.
  'attachment_size_mismatch',
  'attachment_sha256_mismatch',
  'attachment_type_mismatch',
  'attachment_too_large',
  'upload_expired',
  'attachment_not_found',
  'too_many_attachments',
]);
export type RejectionCode = z.infer<typeof RejectionCode>;

export interface Rejection {
  code: RejectionCode;
  message: string;
}

export type AckStage = 'queued' | 'committed' | 'rejected';
export type FinalStage = Exclude<AckStage, 'queued'>;

/** An ack as pushed to a WebSocket client. `cursor` grows per principal. */
export interface Ack {
  type: 'ack';
  stage: AckStage;
  requestId: string;
  idempotencyKey?: string;
  collection: string;
  id: string;
  version?: number;
  reason?: Rejection;
  /** `committed` only: `<shardId>:<sequenceNumber>`, for a listing's `consistentWith`. */
  consistencyToken?: string;
  cursor: number;
  at: string;
}

/** An ack before the ack log has given it a cursor. */
export type AckDraft = Omit<Ack, 'cursor'>;

/** Who an ack belongs to: the principal that made the write. */
export interface AckRoute {
  tenant: string;
  principal: string;
}

/** Request status as served by `GET /v1/requests/{id}`. */
export interface RequestStatus {
  requestId: string;
  status: AckStage;
  collection: string;
  id: string;
  version?: number;
  reason?: Rejection;
  at: string;
}

/** The public shape of an item in the read model (`GET .../items/{id}`). */
export interface ItemDocument {
  collection: string;
  id: string;
  version: number;
  updatedAt: string;
  data: JsonObject;
  /** Present once the item has had an attachment (core/attachments.ts AttachmentMeta). */
  attachments?: JsonObject[];
}

/** The 202 answer of a write. */
export interface WriteAccepted {
  requestId: string;
  status: 'queued';
  shardId: string;
  sequenceNumber: string;
}
