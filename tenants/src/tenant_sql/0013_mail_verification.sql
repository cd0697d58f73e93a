-- Version 13: mail that cannot be forged (crm_core::mail).

-- verified_at: when the sign-up address was confirmed; until then the company mails only
-- its own users and its records' contacts and customers. mail_from now holds a confirmed
-- sender only; a wanted one waits in mail_from_pending for its confirmation link. A sender
-- set before this version was never confirmed, so it becomes pending.
ALTER TABLE settings
    ADD COLUMN verified_at       timestamptz,
    ADD COLUMN mail_from_pending text;
UPDATE settings SET mail_from_pending = mail_from, mail_from = NULL WHERE mail_from IS NOT NULL;

-- Confirmation links (sign-up address, sender address): SHA-256 of the token, used once.
CREATE TABLE mail_confirmations (
    token_hash text PRIMARY KEY,
    purpose    text NOT NULL CHECK (purpose IN ('signup', 'sender')),
    address    text NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Messages enqueued per clock hour, for the hourly and daily quotas (two days kept).
CREATE TABLE mail_quota (
    hour timestamptz PRIMARY KEY,
    sent integer NOT NULL DEFAULT 0
);

ALTER TABLE mail_confirmations OWNER TO {{tenant_role}};
ALTER TABLE mail_quota OWNER TO {{tenant_role}};
