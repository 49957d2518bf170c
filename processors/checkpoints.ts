/** Per-shard checkpoints of a stream consumer, stored in PostgreSQL beside the effects they guard. */
import type { Pool } from 'pg';

export interface Checkpoint {
  sequenceNumber: string;
  finished: boolean;
}

export interface CheckpointStore {
  get(shardId: string): Promise<Checkpoint | undefined>;
  /** Moves the checkpoint to `sequenceNumber` (never backwards); `finished` marks a closed shard read to its end. */
  save(shardId: string, sequenceNumber: string, finished?: boolean): Promise<void>;
}

export class PgCheckpointStore implements CheckpointStore {
  constructor(
    private readonly pool: Pool,
    private readonly consumer: string,
    private readonly stream: string,
  ) {}

  async get(shardId: string): Promise<Checkpoint | undefined> {
    const res = await this.pool.query<{ sequence_number: string; finished: boolean }>({
      name: 'ackstream-checkpoint-get',
      text: 'SELECT sequence_number, finished FROM checkpoints WHERE consumer = $1 AND stream = $2 AND shard_id = $3',
      values: [this.consumer, this.stream, shardId],
    });
    const row = res.rows[0];
    return row && { sequenceNumber: row.sequence_number, finished: row.finished };
  }

  async save(shardId: string, sequenceNumber: string, finished = false): Promise<void> {
    // Sequence numbers are decimal strings of up to 128 bits: compare them as numerics.
    // Named: parsed and planned once per connection, not at every save.
    await this.pool.query({
      name: 'ackstream-checkpoint-save',
      text: `INSERT INTO checkpoints (consumer, stream, shard_id, sequence_number, finished) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (consumer, stream, shard_id) DO UPDATE
         SET sequence_number = EXCLUDED.sequence_number, finished = EXCLUDED.finished, updated_at = now()
         WHERE checkpoints.sequence_number::numeric <= EXCLUDED.sequence_number::numeric`,
      values: [this.consumer, this.stream, shardId, sequenceNumber, finished],
    });
  }
}
