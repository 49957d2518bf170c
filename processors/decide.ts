/**
 * The write side's decisions, as pure functions: given a command and the item's current state,
 * the event to append and the next state, or a rejection with its reason.
 */
import { ATTACHMENTS_STATE_KEY, MAX_ATTACHMENTS_PER_ITEM } from '../core/attachments';
import { type Command, type EventType, type ItemState, type JsonObject, type Rejection, RejectionCode } from '../core/contracts';
import { checkDocumentValue, DOCUMENT_LIMITS, getMember, setMember } from '../core/document';

export type Decision =
  | { kind: 'accept'; type: EventType; eventData: JsonObject | null; version: number; deleted: boolean; data: JsonObject | null }
  | { kind: 'reject'; reason: Rejection };

export function decide(cmd: Command, state: ItemState | undefined): Decision {
  const exists = state !== undefined && !state.deleted;
  const current = exists ? state.version : undefined;

  if (cmd.kind === 'attach' && cmd.reject) {
    const code = RejectionCode.safeParse(cmd.reject.code);
    return reject(code.success ? code.data : 'invalid_command', cmd.reject.message);
  }
  if (cmd.kind !== 'put' && !exists) {
    return reject('not_found', `Item ${cmd.collection}/${cmd.id} does not exist.`);
  }
  if (cmd.ifNoneMatch && exists) {
    return reject('already_exists', `Item ${cmd.collection}/${cmd.id} already exists (version ${current}); If-None-Match: * forbids overwriting it.`);
  }
  if (cmd.ifMatch !== undefined && cmd.ifMatch !== current) {
    return reject(
      'version_conflict',
      current === undefined
        ? `If-Match expected version ${cmd.ifMatch}, but item ${cmd.collection}/${cmd.id} does not exist.`
        : `If-Match expected version ${cmd.ifMatch}, but the current version is ${current}.`,
    );
  }

  // Versions keep counting across a delete, so a re-created item never reuses an old version.
  const version = (state?.version ?? 0) + 1;
  switch (cmd.kind) {
    case 'put': {
      const bad = documentRejection(cmd.data ?? {}, 'document');
      if (bad) return bad;
      return { kind: 'accept', type: 'ItemPut', eventData: cmd.data ?? {}, version, deleted: false, data: keepAttachments(state, cmd.data ?? {}) };
    }
    case 'patch': {
      // The patch itself (a record put straight on the stream skipped the gateway's check), then
      // the merged document: a patch can grow it past the member or size limits.
      const badPatch = documentRejection(cmd.data ?? {}, 'merge patch');
      if (badPatch) return badPatch;
      const data = keepAttachments(state, applyMergePatch(userData(state), cmd.data ?? {}));
      const bad = documentRejection(data, 'document after this merge patch');
      if (bad) return bad;
      return { kind: 'accept', type: 'ItemPatched', eventData: cmd.data ?? {}, version, deleted: false, data };
    }
    case 'delete':
      return { kind: 'accept', type: 'ItemDeleted', eventData: null, version, deleted: true, data: null };
    case 'attach': {
      const list = attachmentsOf(state);
      const attachmentId = String(cmd.data?.attachmentId ?? '');
      if (list.some((a) => a.attachmentId === attachmentId)) {
        return reject('invalid_command', `Attachment ${attachmentId} is already on item ${cmd.collection}/${cmd.id}.`);
      }
      if (list.length >= MAX_ATTACHMENTS_PER_ITEM) {
        return reject('too_many_attachments', `Item ${cmd.collection}/${cmd.id} already has ${list.length} attachments (the limit).`);
      }
      const added = { ...cmd.data, version, addedAt: cmd.receivedAt };
      return { kind: 'accept', type: 'AttachmentAdded', eventData: added, version, deleted: false, data: withAttachments(state, [...list, added]) };
    }
    case 'detach': {
      const attachmentId = String(cmd.data?.attachmentId ?? '');
      const list = attachmentsOf(state);
      if (!list.some((a) => a.attachmentId === attachmentId)) {
        return reject('attachment_not_found', `Item ${cmd.collection}/${cmd.id} has no attachment ${attachmentId}.`);
      }
      const rest = list.filter((a) => a.attachmentId !== attachmentId);
      return { kind: 'accept', type: 'AttachmentRemoved', eventData: { attachmentId }, version, deleted: false, data: withAttachments(state, rest) };
    }
  }
}

/** Folds one event onto a state: the same result `decide` produced, used to rebuild from the log. */
export function evolve(state: Pick<ItemState, 'deleted' | 'data'> | undefined, event: { type: EventType; data: JsonObject | null; version: number }): Pick<ItemState, 'version' | 'deleted' | 'data'> {
  switch (event.type) {
    case 'ItemPut':
      return { version: event.version, deleted: false, data: keepAttachments(state, event.data ?? {}) };
    case 'ItemPatched':
      return { version: event.version, deleted: false, data: keepAttachments(state, applyMergePatch(userData(state), event.data ?? {})) };
    case 'ItemDeleted':
      return { version: event.version, deleted: true, data: null };
    case 'AttachmentAdded':
      return { version: event.version, deleted: false, data: withAttachments(state, [...attachmentsOf(state), event.data ?? {}]) };
    case 'AttachmentRemoved': {
      const gone = event.data?.attachmentId;
      return { version: event.version, deleted: false, data: withAttachments(state, attachmentsOf(state).filter((a) => a.attachmentId !== gone)) };
    }
  }
}

/**
 * The document contract (core/document.ts), enforced here too: the processors must not depend on
 * the gateway having checked a record. A document that breaks it can never be stored exactly:
 * `rejected` with `invalid_document`, never retried or parked.
 */
function documentRejection(doc: JsonObject, what: string): Decision | undefined {
  const v = checkDocumentValue(doc, DOCUMENT_LIMITS);
  return v && reject('invalid_document', `The ${what} breaks the document contract. ${v.message}`);
}

/**
 * An item's attachments live under a reserved key of its state (core/attachments.ts): a PUT or a
 * PATCH replaces or merges the user's data and keeps them; a DELETE drops them with the item.
 */
function attachmentsOf(state: Pick<ItemState, 'deleted' | 'data'> | undefined): JsonObject[] {
  if (!state || state.deleted) return [];
  const list = state.data?.[ATTACHMENTS_STATE_KEY];
  return Array.isArray(list) ? (list as JsonObject[]) : [];
}

function userData(state: Pick<ItemState, 'data'> | undefined): JsonObject {
  const { [ATTACHMENTS_STATE_KEY]: _kept, ...rest } = state?.data ?? {};
  return rest;
}

function withAttachments(state: Pick<ItemState, 'deleted' | 'data'> | undefined, list: JsonObject[]): JsonObject {
  return list.length ? { ...userData(state), [ATTACHMENTS_STATE_KEY]: list } : userData(state);
}

function keepAttachments(state: Pick<ItemState, 'deleted' | 'data'> | undefined, data: JsonObject): JsonObject {
  const list = attachmentsOf(state);
  const { [ATTACHMENTS_STATE_KEY]: _ignored, ...rest } = data;
  return list.length ? { ...rest, [ATTACHMENTS_STATE_KEY]: list } : rest;
}

/**
 * JSON Merge Patch (RFC 7396) of an object by an object. Members are defined, never assigned,
 * and read as own members only, so `__proto__` or `constructor` are ordinary names here.
 */
export function applyMergePatch(target: JsonObject, patch: JsonObject): JsonObject {
  const out: JsonObject = { ...target };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) {
      delete out[key];
    } else if (isObject(value)) {
      const base = getMember(out, key);
      setMember(out, key, applyMergePatch(isObject(base) ? base : {}, value));
    } else {
      setMember(out, key, value);
    }
  }
  return out;
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function reject(code: Rejection['code'], message: string): Decision {
  return { kind: 'reject', reason: { code, message } };
}
