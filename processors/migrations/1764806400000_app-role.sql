-- Up Migration
-- The application's login role: the processors and the operator CLIs connect as ackstream_app in
-- AWS (infra/lib/constructs/database.ts); the master user only runs migrations. Its password is set
-- by the deploy's migration function from its own rotated secret, never here.
-- Roles belong to the cluster, not the database: another database may have created it already.
DO $$
BEGIN
  CREATE ROLE ackstream_app LOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL;
END
$$;

GRANT USAGE ON SCHEMA public TO ackstream_app;
-- The event log is append-only for the application.
GRANT SELECT, INSERT ON events TO ackstream_app;
GRANT SELECT, INSERT ON requests TO ackstream_app;
GRANT SELECT, INSERT, UPDATE ON items, checkpoints TO ackstream_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON parked, record_attempts TO ackstream_app;
GRANT USAGE, SELECT ON SEQUENCE events_position_seq, parked_id_seq TO ackstream_app;

-- Down Migration
REVOKE ALL ON events, requests, items, checkpoints, parked, record_attempts FROM ackstream_app;
REVOKE ALL ON SEQUENCE events_position_seq, parked_id_seq FROM ackstream_app;
REVOKE USAGE ON SCHEMA public FROM ackstream_app;
