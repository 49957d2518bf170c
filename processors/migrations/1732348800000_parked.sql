-- Up Migration
-- Poison records and the later writes of the same item held behind them, in arrival order
-- (id): `npm run dlq -- redrive` replays them in this order, so the item's order is restored.
-- The command is kept as JSON text, not jsonb: a poison record may hold what jsonb refuses (\u0000).
CREATE TABLE parked (
  id              bigserial PRIMARY KEY,
  request_id      text        NOT NULL UNIQUE,
  tenant          text        NOT NULL,
  collection      text        NOT NULL,
  item_id         text        NOT NULL,
  kind            text        NOT NULL CHECK (kind IN ('poison', 'held')),
  command         text        NOT NULL,
  error           text,
  attempts        integer     NOT NULL DEFAULT 0,
  shard_id        text,
  sequence_number text,
  parked_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX parked_item ON parked (tenant, collection, item_id, id);

-- Failed attempts of a record still being retried; at MAX_ATTEMPTS it is parked.
CREATE TABLE record_attempts (
  request_id text PRIMARY KEY,
  attempts   integer     NOT NULL,
  last_error text,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE record_attempts;
DROP TABLE parked;
