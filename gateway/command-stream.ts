/** The stream commands are put on (Kinesis). A put resolves only once the stream accepted the record. */
import { type KinesisClient, PutRecordCommand } from '@aws-sdk/client-kinesis';
import type { Command } from '../core/contracts';
import { ServiceUnavailableError } from '../core/errors';
import { partitionKey } from '../core/keys';

export interface StreamPosition {
  shardId: string;
  sequenceNumber: string;
}

export interface CommandStream {
  put(command: Command): Promise<StreamPosition>;
  close(): Promise<void>;
}

export class KinesisCommandStream implements CommandStream {
  constructor(
    private readonly kinesis: KinesisClient,
    private readonly stream: string,
  ) {}

  async put(command: Command): Promise<StreamPosition> {
    try {
      const out = await this.kinesis.send(
        new PutRecordCommand({
          StreamName: this.stream,
          PartitionKey: partitionKey(command.tenant, command.collection, command.id),
          Data: Buffer.from(JSON.stringify(command)),
        }),
      );
      return { shardId: out.ShardId!, sequenceNumber: out.SequenceNumber! };
    } catch (err) {
      throw new ServiceUnavailableError(`The stream did not accept the write (${(err as Error).name}); it was not queued.`, 1);
    }
  }

  async close(): Promise<void> {}
}
