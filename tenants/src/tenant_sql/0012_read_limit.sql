-- Version 12: the read limit (a user reading more customer records per window than the tenant
-- allows is frozen) and the read-access log (who read which customer when). Both are off
-- until an administrator turns them on; the log keeps 180 days unless told otherwise.
ALTER TABLE settings
    ADD COLUMN read_limit_enabled        boolean NOT NULL DEFAULT false,
    ADD COLUMN read_limit_max            integer NOT NULL DEFAULT 1000
        CHECK (read_limit_max BETWEEN 1 AND 1000000),
    ADD COLUMN read_limit_window_minutes integer NOT NULL DEFAULT 60
        CHECK (read_limit_window_minutes BETWEEN 1 AND 10080),
    ADD COLUMN read_limit_exempt_roles   text[] NOT NULL DEFAULT '{}',
    ADD COLUMN read_log_enabled          boolean NOT NULL DEFAULT false,
    ADD COLUMN read_log_retention_days   integer NOT NULL DEFAULT 180
        CHECK (read_log_retention_days BETWEEN 1 AND 3650);

-- A frozen user keeps its status but can do nothing until an administrator unfreezes it.
ALTER TABLE users
    ADD COLUMN frozen_at     timestamptz,
    ADD COLUMN frozen_reason text;

-- One customer record read: by a user's session, or by an API key (user_id is then the key's
-- creator). `via`: get, list or export.
CREATE TABLE read_access_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    user_id     uuid,
    api_key_id  uuid,
    customer_id uuid NOT NULL,
    via         text NOT NULL CHECK (via IN ('get', 'list', 'export')),
    request_id  text
);
CREATE INDEX read_access_log_user_idx ON read_access_log (user_id, id);
CREATE INDEX read_access_log_customer_idx ON read_access_log (customer_id, id);
CREATE INDEX read_access_log_at_idx ON read_access_log (at);

-- Reads counted in a user's current window (one row per user, reset when a new window opens).
CREATE TABLE read_counters (
    user_id      uuid PRIMARY KEY REFERENCES users (id),
    window_start timestamptz NOT NULL,
    reads        integer NOT NULL
);

ALTER TABLE read_access_log OWNER TO {{tenant_role}};
ALTER TABLE read_counters OWNER TO {{tenant_role}};
