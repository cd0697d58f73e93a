-- Version 10: two-factor authentication (TOTP, RFC 6238) and the tenant's password policy.

-- Who must use MFA, and the password rules. The defaults are what a tenant gets without
-- touching them: at least 10 characters, no class rules, common passwords refused, no expiry,
-- no history.
ALTER TABLE settings
    ADD COLUMN mfa_required_roles      text[] NOT NULL DEFAULT '{}',
    ADD COLUMN password_min_length     integer NOT NULL DEFAULT 10
        CHECK (password_min_length BETWEEN 8 AND 128),
    ADD COLUMN password_require_upper  boolean NOT NULL DEFAULT false,
    ADD COLUMN password_require_lower  boolean NOT NULL DEFAULT false,
    ADD COLUMN password_require_digit  boolean NOT NULL DEFAULT false,
    ADD COLUMN password_require_symbol boolean NOT NULL DEFAULT false,
    ADD COLUMN password_reject_common  boolean NOT NULL DEFAULT true,
    ADD COLUMN password_expiry_days    integer CHECK (password_expiry_days BETWEEN 1 AND 3650),
    ADD COLUMN password_history        integer NOT NULL DEFAULT 0
        CHECK (password_history BETWEEN 0 AND 24);

-- A session limited to putting the account in order: 'password_change' (the password
-- expired) or 'mfa_enrollment' (a role requires MFA); NULL: a full session.
ALTER TABLE sessions ADD COLUMN restriction text
    CHECK (restriction IN ('password_change', 'mfa_enrollment'));

-- A user's TOTP secret, sealed under the tenant's data key; confirmed_at NULL while the
-- enrolment waits for its first code. last_step: the newest 30-second step used (no replay).
CREATE TABLE user_mfa (
    user_id      uuid PRIMARY KEY REFERENCES users (id),
    secret       bytea NOT NULL,
    confirmed_at timestamptz,
    last_step    bigint,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- One-time recovery codes, SHA-256 of the code (80 random bits each).
CREATE TABLE mfa_recovery_codes (
    user_id   uuid NOT NULL REFERENCES users (id),
    code_hash text NOT NULL,
    used_at   timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

-- The second step of a login: a short-lived token (SHA-256) given after the password.
CREATE TABLE mfa_challenges (
    token_hash text PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id),
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mfa_challenges_user_idx ON mfa_challenges (user_id);

-- Earlier password hashes of a user, newest last (at most 24 kept).
CREATE TABLE password_history (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id),
    password_hash text NOT NULL,
    replaced_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX password_history_user_idx ON password_history (user_id, id);

ALTER TABLE user_mfa OWNER TO {{tenant_role}};
ALTER TABLE mfa_recovery_codes OWNER TO {{tenant_role}};
ALTER TABLE mfa_challenges OWNER TO {{tenant_role}};
ALTER TABLE password_history OWNER TO {{tenant_role}};
