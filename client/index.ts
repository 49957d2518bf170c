/** Public surface of the Ackstream client SDK. */
export { AckstreamClient, createClient } from './client';
export type { AttachmentFile, AttachmentHandle, ClientEvent, ClientOptions, Committed, Queued, WriteHandle, WriteOptions } from './client';
export { AckstreamError, ClientClosedError, HttpProblemError, InvalidDocumentError, WriteRejectedError } from './errors';
export type { MinimalWebSocket, WebSocketConstructor } from './websocket';
export type { Ack, AckStage, JsonObject, Rejection, RejectionCode, RequestStatus, WriteAccepted } from '../core/contracts';
