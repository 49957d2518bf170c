import type { RequestWrite } from './writes';

/** Writes many final request statuses at once (unconditionally: a final status is immutable). */
export interface RequestBatchWriter {
  putFinalRequests(writes: RequestWrite[]): Promise<void>;
}
