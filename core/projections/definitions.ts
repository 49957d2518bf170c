/**
 * Projections: pure functions from a decided command (or a folded event) to read-model writes.
 * They are registered by name and version so a changed projection can be rebuilt side by side.
 */
import { ATTACHMENTS_STATE_KEY } from '../attachments';
import type { Command, ItemDocument, ItemState, Rejection, RequestStatus } from '../contracts';
import { type ItemWrite, RANK_FINAL, RANK_QUEUED, type RequestWrite } from '../read-store';

/** A command's decision as the projections see it (processors' Outcome, without how it was reached). */
export type DecidedOutcome =
  | { status: 'committed'; version: number; decidedAt: string; state: ItemState }
  | { status: 'rejected'; reason: Rejection; decidedAt: string };

export interface ReadModelChange {
  item?: ItemWrite;
  request: RequestWrite;
}

export interface Projection {
  name: string;
  version: number;
  /** The read-model writes for one item state. */
  item(state: ItemState): ItemWrite;
}

export const itemsProjection: Projection = {
  name: 'items',
  version: 1,
  item(state) {
    let doc: ItemDocument | null = null;
    if (!state.deleted) {
      // Attachments sit under a reserved key of the state (core/attachments.ts); the document lists them apart from data.
      const { [ATTACHMENTS_STATE_KEY]: attachments, ...data } = state.data ?? {};
      doc = { collection: state.collection, id: state.id, version: state.version, updatedAt: state.updatedAt, data };
      if (Array.isArray(attachments)) doc.attachments = attachments as ItemDocument['attachments'];
    }
    return {
      tenant: state.tenant, collection: state.collection, id: state.id,
      version: state.version, updatedAt: state.updatedAt, json: doc && JSON.stringify(doc),
    };
  },
};

export const PROJECTIONS: Record<string, Projection> = { [itemsProjection.name]: itemsProjection };

export function requestStatusWrite(tenant: string, status: RequestStatus): RequestWrite {
  return {
    tenant,
    requestId: status.requestId,
    rank: status.status === 'queued' ? RANK_QUEUED : RANK_FINAL,
    json: JSON.stringify(status),
  };
}

/** The read-model writes that follow a decided command. */
export function projectOutcome(cmd: Command, outcome: DecidedOutcome, projection: Projection = itemsProjection): ReadModelChange {
  const status: RequestStatus =
    outcome.status === 'committed'
      ? { requestId: cmd.requestId, status: 'committed', collection: cmd.collection, id: cmd.id, version: outcome.version, at: outcome.decidedAt }
      : { requestId: cmd.requestId, status: 'rejected', collection: cmd.collection, id: cmd.id, reason: outcome.reason, at: outcome.decidedAt };
  return {
    ...(outcome.status === 'committed' ? { item: projection.item(outcome.state) } : {}),
    request: requestStatusWrite(cmd.tenant, status),
  };
}
