-- Tenant schema v1: identity, authorization and audit. Runs inside the tenant's schema
-- (search_path set), as the application role; every table is then handed to the tenant role.
-- Identity columns, no triggers: the layout stays portable to Citus schema-based sharding.

CREATE TABLE _schema_version (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    version  integer NOT NULL
);

CREATE TABLE settings (
    only_row       boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    policy_version bigint NOT NULL DEFAULT 1,
    locale         text NOT NULL DEFAULT 'zh-CN',
    timezone       text NOT NULL DEFAULT 'Asia/Shanghai',
    updated_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO settings DEFAULT VALUES;

CREATE TABLE users (
    id                  uuid PRIMARY KEY,
    email               text NOT NULL CONSTRAINT users_email_key UNIQUE,
    name                text NOT NULL,
    password_hash       text NOT NULL,
    status              text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    locale              text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    last_login_at       timestamptz,
    password_changed_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE teams (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CONSTRAINT teams_name_key UNIQUE,
    description text NOT NULL DEFAULT '',
    lead_id     uuid REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE team_members (
    team_id  uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    user_id  uuid NOT NULL REFERENCES users (id),
    added_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user_idx ON team_members (user_id);

CREATE TABLE roles (
    name        text PRIMARY KEY,
    description text NOT NULL DEFAULT '',
    scopes      jsonb NOT NULL DEFAULT '{}',
    builtin     boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- casbin policies: p = (role, domain, object, action), g = (subject, role, domain).
CREATE TABLE casbin_rule (
    id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ptype text NOT NULL,
    v0    text NOT NULL DEFAULT '',
    v1    text NOT NULL DEFAULT '',
    v2    text NOT NULL DEFAULT '',
    v3    text NOT NULL DEFAULT '',
    CONSTRAINT casbin_rule_unique UNIQUE (ptype, v0, v1, v2, v3)
);
CREATE INDEX casbin_rule_role_idx ON casbin_rule (ptype, v1);

CREATE TABLE sessions (
    id           uuid PRIMARY KEY,
    token_hash   text NOT NULL UNIQUE,
    user_id      uuid NOT NULL REFERENCES users (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    ip           text,
    user_agent   text
);
CREATE INDEX sessions_user_idx ON sessions (user_id) WHERE revoked_at IS NULL;

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    name         text NOT NULL,
    prefix       text NOT NULL,
    token_hash   text NOT NULL UNIQUE,
    role         text NOT NULL,
    created_by   uuid REFERENCES users (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    action      text NOT NULL,
    actor_kind  text NOT NULL,
    actor_id    uuid,
    actor_name  text,
    target_kind text,
    target_id   text,
    ip          text,
    user_agent  text,
    request_id  text,
    detail      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_action_idx ON audit_log (action, id);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, id);

ALTER TABLE _schema_version OWNER TO {{tenant_role}};
ALTER TABLE settings OWNER TO {{tenant_role}};
ALTER TABLE users OWNER TO {{tenant_role}};
ALTER TABLE teams OWNER TO {{tenant_role}};
ALTER TABLE team_members OWNER TO {{tenant_role}};
ALTER TABLE roles OWNER TO {{tenant_role}};
ALTER TABLE casbin_rule OWNER TO {{tenant_role}};
ALTER TABLE sessions OWNER TO {{tenant_role}};
ALTER TABLE api_keys OWNER TO {{tenant_role}};
ALTER TABLE audit_log OWNER TO {{tenant_role}};
