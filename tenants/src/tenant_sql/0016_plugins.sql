-- Version 16: plugins. A package is an uploaded WebAssembly component (its bytes and the
-- manifest its `describe()` returned); an install is a package at work in this tenant with
-- its config, sealed secrets, grants and allowed hosts, acting as its own principal. `kv` is
-- each install's key/value data, `runs` the log of every call.
CREATE TABLE plugin_packages (
    id           uuid PRIMARY KEY,
    name         text NOT NULL,
    version      text NOT NULL,
    wit_version  text NOT NULL,
    sha256       text NOT NULL,
    size         integer NOT NULL,
    manifest     jsonb NOT NULL,
    wasm         bytea NOT NULL,
    created_by   uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, version)
);
ALTER TABLE plugin_packages OWNER TO {{tenant_role}};

CREATE TABLE plugin_installs (
    id                   uuid PRIMARY KEY,
    package_id           uuid NOT NULL REFERENCES plugin_packages (id),
    enabled              boolean NOT NULL DEFAULT true,
    config               jsonb NOT NULL DEFAULT '{}',
    secrets              bytea,
    secret_keys          text[] NOT NULL DEFAULT '{}',
    grants               text[] NOT NULL DEFAULT '{}',
    allowed_hosts        text[] NOT NULL DEFAULT '{}',
    -- The manifest's event patterns, copied so the event listener reads one small row.
    events               text[] NOT NULL DEFAULT '{}',
    limits               jsonb NOT NULL DEFAULT '{}',
    consecutive_failures integer NOT NULL DEFAULT 0,
    disabled_reason      text,
    created_by           uuid,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE plugin_installs OWNER TO {{tenant_role}};
CREATE INDEX plugin_installs_enabled ON plugin_installs (enabled) WHERE enabled;

CREATE TABLE plugin_kv (
    install_id uuid NOT NULL REFERENCES plugin_installs (id) ON DELETE CASCADE,
    key        text NOT NULL,
    value      bytea NOT NULL,
    PRIMARY KEY (install_id, key)
);
ALTER TABLE plugin_kv OWNER TO {{tenant_role}};

CREATE TABLE plugin_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    install_id   uuid NOT NULL REFERENCES plugin_installs (id) ON DELETE CASCADE,
    trigger      jsonb NOT NULL,
    started_at   timestamptz NOT NULL,
    duration_us  bigint NOT NULL,
    fuel_used    bigint NOT NULL,
    memory_peak  bigint NOT NULL,
    outcome      text NOT NULL,
    error        jsonb,
    actions      jsonb NOT NULL DEFAULT '[]',
    logs         text NOT NULL DEFAULT ''
);
ALTER TABLE plugin_runs OWNER TO {{tenant_role}};
CREATE INDEX plugin_runs_install ON plugin_runs (install_id, id DESC);
