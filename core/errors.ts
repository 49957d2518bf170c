/**
 * Typed errors raised at the edges; each service maps them once to HTTP problem+json
 * (RFC 9457) or a WebSocket close code.
 */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  [extension: string]: unknown;
}

export class ProblemError extends Error {
  constructor(
    readonly status: number,
    readonly slug: string,
    readonly title: string,
    detail: string,
    readonly headers: Record<string, string> = {},
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(detail);
    this.name = new.target.name;
  }

  toProblem(instance?: string): Problem {
    return {
      type: `urn:ackstream:problem:${this.slug}`,
      title: this.title,
      status: this.status,
      detail: this.message,
      ...(instance ? { instance } : {}),
      ...this.extensions,
    };
  }
}

export class BadRequestError extends ProblemError {
  constructor(detail: string, extensions: Record<string, unknown> = {}) {
    super(400, 'bad-request', 'Bad Request', detail, {}, extensions);
  }
}
/** JSON that breaks the document contract (core/document.ts): names the rule and the JSON Pointer of the place. */
export class InvalidDocumentError extends ProblemError {
  constructor(detail: string, violation: { rule: string; pointer: string }) {
    super(400, 'invalid-document', 'Invalid Document', detail, {}, { rule: violation.rule, pointer: violation.pointer });
  }
}
export class UnauthorizedError extends ProblemError {
  constructor(detail: string) {
    super(401, 'unauthorized', 'Unauthorized', detail, { 'WWW-Authenticate': 'Bearer' });
  }
}
export class ForbiddenError extends ProblemError {
  constructor(detail: string) {
    super(403, 'forbidden', 'Forbidden', detail);
  }
}
export class NotFoundError extends ProblemError {
  constructor(detail: string) {
    super(404, 'not-found', 'Not Found', detail);
  }
}
export class MethodNotAllowedError extends ProblemError {
  constructor(detail: string, allow: string) {
    super(405, 'method-not-allowed', 'Method Not Allowed', detail, { Allow: allow });
  }
}
export class ConflictError extends ProblemError {
  constructor(detail: string, extensions: Record<string, unknown> = {}) {
    super(409, 'conflict', 'Conflict', detail, {}, extensions);
  }
}
/**
 * A tenant's attachments (committed plus pending uploads) would exceed its quota. 409, not 413:
 * the request itself is fine (413 is kept for an object over the per-object limit, which no retry
 * can fix); it conflicts with the tenant's current stored state, and succeeds once attachments are
 * removed or pending uploads decided. Not 429 either: waiting alone does not free committed bytes.
 */
export class AttachmentQuotaError extends ProblemError {
  constructor(detail: string, extensions: { quotaBytes: number; committedBytes: number; reservedBytes: number; requestedBytes: number }) {
    super(409, 'attachment-quota-exceeded', 'Attachment Quota Exceeded', detail, {}, extensions);
  }
}
export class PayloadTooLargeError extends ProblemError {
  constructor(detail: string) {
    super(413, 'payload-too-large', 'Payload Too Large', detail);
  }
}
export class UnsupportedMediaTypeError extends ProblemError {
  constructor(detail: string) {
    super(415, 'unsupported-media-type', 'Unsupported Media Type', detail);
  }
}
export class UnprocessableError extends ProblemError {
  constructor(detail: string) {
    super(422, 'unprocessable', 'Unprocessable Content', detail);
  }
}
export class TooManyRequestsError extends ProblemError {
  constructor(detail: string, retryAfterSeconds: number, headers: Record<string, string> = {}) {
    super(429, 'too-many-requests', 'Too Many Requests', detail, {
      'Retry-After': String(Math.max(1, Math.ceil(retryAfterSeconds))),
      ...headers,
    });
  }
}
export class ServiceUnavailableError extends ProblemError {
  constructor(detail: string, retryAfterSeconds = 1) {
    super(503, 'unavailable', 'Service Unavailable', detail, {
      'Retry-After': String(Math.max(1, Math.ceil(retryAfterSeconds))),
    });
  }
}

/** Raised at start-up when configuration is invalid: the process prints it and exits. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Maps anything thrown to a problem; unknown errors become a 500 without internals. */
export function toProblemError(err: unknown): ProblemError {
  if (err instanceof ProblemError) return err;
  return new ProblemError(500, 'internal', 'Internal Server Error', 'The server failed to handle this request.');
}
