-- Version 8: which custom ticket fields a customer may fill in on the portal (none until an
-- admin marks them), and an index that lets expired idempotency keys be pruned cheaply.
ALTER TABLE field_defs ADD COLUMN portal_editable boolean NOT NULL DEFAULT false;
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
