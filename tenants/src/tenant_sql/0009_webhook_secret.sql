-- Version 9: the secret rule webhooks are signed with (Standard Webhooks), sealed under the
-- tenant's data key; shown once when an admin creates or rotates it.
ALTER TABLE settings ADD COLUMN webhook_secret bytea;
