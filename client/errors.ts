/** Typed errors of the Ackstream client. */
import type { Ack, Rejection, RejectionCode } from '../core/contracts';

export class AckstreamError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The system decided against the write (`rejected` ack or request status); `code` says why. */
export class WriteRejectedError extends AckstreamError {
  readonly code: RejectionCode;
  constructor(
    readonly requestId: string,
    readonly reason: Rejection,
    /** The rejected ack, when it came over the WebSocket (absent when learnt from GET /v1/requests/{id}). */
    readonly ack?: Ack,
  ) {
    super(`Write ${requestId} was rejected: ${reason.code}: ${reason.message}`);
    this.code = reason.code;
  }
}

/** The HTTP API answered with a problem (RFC 9457): nothing was queued. */
export class HttpProblemError extends AckstreamError {
  constructor(
    readonly status: number,
    readonly problem: { type?: string; title?: string; status?: number; detail?: string; [k: string]: unknown },
  ) {
    super(`HTTP ${status}: ${problem.detail ?? problem.title ?? 'request failed'}`);
  }
}

/**
 * The document breaks the document contract (README, "Documents"), found before sending: nothing
 * was sent. `rule` and `pointer` (RFC 6901) are the same the gateway's 400 would name.
 */
export class InvalidDocumentError extends AckstreamError {
  readonly rule: string;
  readonly pointer: string;
  constructor(violation: { rule: string; pointer: string; message: string }) {
    super(violation.message);
    this.rule = violation.rule;
    this.pointer = violation.pointer;
  }
}

/** The client was closed while the write was still waiting for its ack. */
export class ClientClosedError extends AckstreamError {
  constructor(readonly requestId?: string) {
    super(requestId ? `Client closed before write ${requestId} was decided.` : 'Client closed.');
  }
}
