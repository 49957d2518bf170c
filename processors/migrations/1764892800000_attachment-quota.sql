-- Up Migration
-- The per-tenant attachment quota (issue #16), kept where the truth is:
--  * attachment_usage: the bytes of a tenant's committed attachments, changed by the commit
--    transaction that adds or removes them (AttachmentAdded, AttachmentRemoved, ItemDeleted);
--  * attachment_reservations: the declared size of each upload URL the gateway handed out and
--    whose attach request is not decided yet; the commit transaction that decides the request
--    (committed or rejected, upload_expired included) deletes the row.
-- The gateway checks usage + reservations + the new size against the quota while holding the
-- tenant's usage row, so parallel POSTs cannot overshoot it.
CREATE TABLE attachment_usage (
  tenant          text   PRIMARY KEY,
  committed_bytes bigint NOT NULL DEFAULT 0
);

CREATE TABLE attachment_reservations (
  attachment_id text        PRIMARY KEY,
  tenant        text        NOT NULL,
  bytes         bigint      NOT NULL CHECK (bytes > 0),
  expires_at    timestamptz NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attachment_reservations_tenant ON attachment_reservations (tenant);

-- Attachments committed before this migration.
INSERT INTO attachment_usage (tenant, committed_bytes)
SELECT it.tenant, sum((a->>'size')::bigint)
  FROM items it, jsonb_array_elements(CASE WHEN jsonb_typeof(it.data->'@attachments') = 'array' THEN it.data->'@attachments' ELSE '[]'::jsonb END) a
 WHERE NOT it.deleted
 GROUP BY it.tenant;

GRANT SELECT, INSERT, UPDATE ON attachment_usage TO ackstream_app;
GRANT SELECT, INSERT, DELETE ON attachment_reservations TO ackstream_app;

-- Down Migration
DROP TABLE attachment_reservations;
DROP TABLE attachment_usage;
