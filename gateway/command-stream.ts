/** The stream commands are put on (Kinesis: gateway/batching-stream.ts). A put resolves only once the stream accepted the record. */
import type { Command } from '../core/contracts';

export interface StreamPosition {
  shardId: string;
  sequenceNumber: string;
}

export interface CommandStream {
  put(command: Command): Promise<StreamPosition>;
  close(): Promise<void>;
}
