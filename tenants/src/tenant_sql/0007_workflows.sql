-- Tenant schema v7: workflow rules (versioned, with a run log), approvals, managers, and the
-- tenant's webhook allow-list.

CREATE TABLE rules (
    id                   uuid PRIMARY KEY,
    name                 text NOT NULL,
    -- The object the rule is about (customers, tickets, …).
    object               text NOT NULL,
    trigger              jsonb NOT NULL,
    -- Derived from `trigger` so the outbox fan-out is one indexed statement.
    trigger_kind         text NOT NULL CHECK (trigger_kind IN ('event', 'schedule', 'manual')),
    trigger_event        text,
    trigger_fields       text[],
    condition            text,
    script               text NOT NULL,
    enabled              boolean NOT NULL DEFAULT true,
    -- The role whose permissions the rule's effects need.
    run_as_role          text NOT NULL DEFAULT 'admin',
    version              integer NOT NULL DEFAULT 1,
    version_id           bigint,
    consecutive_failures integer NOT NULL DEFAULT 0,
    -- Why the server turned the rule off (too many failures in a row); cleared on enable.
    disabled_reason      text,
    created_by           uuid,
    updated_by           uuid,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at           timestamptz
);
CREATE INDEX rules_event ON rules (trigger_event) WHERE enabled AND deleted_at IS NULL;

CREATE TABLE rule_versions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id     uuid NOT NULL REFERENCES rules (id),
    version     integer NOT NULL,
    name        text NOT NULL,
    object      text NOT NULL,
    trigger     jsonb NOT NULL,
    condition   text,
    script      text NOT NULL,
    enabled     boolean NOT NULL,
    run_as_role text NOT NULL,
    created_by  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (rule_id, version)
);

CREATE TABLE rule_runs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id         uuid NOT NULL REFERENCES rules (id),
    rule_version_id bigint NOT NULL REFERENCES rule_versions (id),
    version         integer NOT NULL,
    -- {kind: event|schedule|manual|action, event?, outbox_id?, fire_at?, …}
    trigger         jsonb NOT NULL,
    record_id       uuid,
    -- One run in effect per (rule version, event): a redelivered job finds its run here.
    idempotency_key text NOT NULL UNIQUE,
    outcome         text NOT NULL CHECK (outcome IN ('succeeded', 'not_matched', 'failed')),
    effects         jsonb NOT NULL DEFAULT '[]',
    error           jsonb,
    duration_us     bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rule_runs_rule ON rule_runs (rule_id, id);

CREATE TABLE approvals (
    id              uuid PRIMARY KEY,
    object          text NOT NULL,
    record_id       uuid NOT NULL,
    title           text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'approved', 'rejected', 'recalled')),
    -- [{approvers: [spec], users: [uuid], mode, quorum?, escalate_after_seconds?,
    --   escalated_at?, escalated_to?: [uuid]}]
    steps           jsonb NOT NULL,
    current_step    integer NOT NULL DEFAULT 0,
    requested_by    uuid,
    rule_id         uuid,
    rule_version_id bigint,
    on_approve      jsonb NOT NULL DEFAULT '[]',
    on_reject       jsonb NOT NULL DEFAULT '[]',
    step_started_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    decided_at      timestamptz
);
-- A record has at most one pending approval; it is locked against edits meanwhile.
CREATE UNIQUE INDEX approvals_pending_record ON approvals (object, record_id)
    WHERE status = 'pending';
CREATE INDEX approvals_list ON approvals (created_at, id);

CREATE TABLE approval_decisions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    approval_id uuid NOT NULL REFERENCES approvals (id),
    step        integer NOT NULL,
    user_id     uuid NOT NULL REFERENCES users (id),
    decision    text NOT NULL CHECK (decision IN ('approve', 'reject')),
    comment     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (approval_id, step, user_id)
);

ALTER TABLE users ADD COLUMN manager_id uuid REFERENCES users (id);
ALTER TABLE settings ADD COLUMN webhook_hosts text[] NOT NULL DEFAULT '{}';
ALTER TABLE settings ADD COLUMN rule_failure_limit integer NOT NULL DEFAULT 5
    CHECK (rule_failure_limit BETWEEN 1 AND 1000);

ALTER TABLE rules OWNER TO {{tenant_role}};
ALTER TABLE rule_versions OWNER TO {{tenant_role}};
ALTER TABLE rule_runs OWNER TO {{tenant_role}};
ALTER TABLE approvals OWNER TO {{tenant_role}};
ALTER TABLE approval_decisions OWNER TO {{tenant_role}};
