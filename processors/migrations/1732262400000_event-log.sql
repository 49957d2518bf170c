-- Up Migration
-- The event log is append-only; position is the global order replays follow.
CREATE TABLE events (
  position        bigserial PRIMARY KEY,
  tenant          text        NOT NULL,
  collection      text        NOT NULL,
  item_id         text        NOT NULL,
  version         integer     NOT NULL,
  type            text        NOT NULL,
  data            jsonb,
  request_id      text        NOT NULL UNIQUE,
  idempotency_key text,
  principal       text        NOT NULL,
  trace_id        text,
  recorded_at     timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant, collection, item_id, version)
);

-- Current state of each item (deleted items stay as tombstones: versions keep counting).
CREATE TABLE items (
  tenant     text        NOT NULL,
  collection text        NOT NULL,
  item_id    text        NOT NULL,
  version    integer     NOT NULL,
  deleted    boolean     NOT NULL DEFAULT false,
  data       jsonb,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (tenant, collection, item_id)
);

-- One row per decided request: a replayed record finds it and re-emits the same final ack.
CREATE TABLE requests (
  request_id  text PRIMARY KEY,
  tenant      text        NOT NULL,
  principal   text        NOT NULL,
  collection  text        NOT NULL,
  item_id     text        NOT NULL,
  status      text        NOT NULL CHECK (status IN ('committed', 'rejected')),
  version     integer,
  reason      jsonb,
  idempotency_key text,
  decided_at  timestamptz NOT NULL DEFAULT now()
);

-- Per-shard position of a stream consumer; never ahead of a committed effect.
CREATE TABLE checkpoints (
  consumer        text NOT NULL,
  stream          text NOT NULL,
  shard_id        text NOT NULL,
  sequence_number text NOT NULL,
  finished        boolean NOT NULL DEFAULT false,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, stream, shard_id)
);

-- Down Migration
DROP TABLE checkpoints;
DROP TABLE requests;
DROP TABLE items;
DROP TABLE events;
