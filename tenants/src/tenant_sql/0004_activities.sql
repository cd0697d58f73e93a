-- Tenant schema v4: activities (calls, visits, e-mails, meetings, notes), tasks (follow-ups
-- with due and reminder times), follow-up status on customers, calendar feed tokens.

-- Maintained by the engine (no triggers) whenever activities or tasks of the customer change.
ALTER TABLE customers ADD COLUMN last_activity_at timestamptz, ADD COLUMN next_task_due timestamptz;
CREATE INDEX customers_last_activity ON customers (last_activity_at, id);
CREATE INDEX customers_next_task_due ON customers (next_task_due, id);

CREATE TABLE activities (
    id                uuid PRIMARY KEY,
    kind              text NOT NULL CHECK (kind IN ('call', 'visit', 'email', 'meeting', 'note')),
    direction         text CHECK (direction IN ('inbound', 'outbound')),
    subject           text,
    body              text,
    occurred_at       timestamptz NOT NULL DEFAULT now(),
    duration_minutes  bigint,
    outcome           text,
    customer_id       uuid REFERENCES customers (id),
    contact_id        uuid REFERENCES contacts (id),
    opportunity_id    uuid REFERENCES opportunities (id),
    owner_id          uuid REFERENCES users (id),
    tags              text[] NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    created_by        uuid,
    version           bigint NOT NULL DEFAULT 1,
    deleted_at        timestamptz
);
CREATE INDEX activities_customer ON activities (customer_id, occurred_at) WHERE deleted_at IS NULL;
CREATE INDEX activities_owner ON activities (owner_id, id);
CREATE INDEX activities_occurred ON activities (occurred_at, id);
CREATE INDEX activities_subject_trgm ON activities USING gin (subject gin_trgm_ops);
CREATE INDEX activities_tags ON activities USING gin (tags);

CREATE TABLE tasks (
    id              uuid PRIMARY KEY,
    title           text NOT NULL,
    notes           text,
    due_at          timestamptz,
    remind_at       timestamptz,
    assignee_id     uuid REFERENCES users (id),
    customer_id     uuid REFERENCES customers (id),
    contact_id      uuid REFERENCES contacts (id),
    opportunity_id  uuid REFERENCES opportunities (id),
    priority        text NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    done_at         timestamptz,
    tags            text[] NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid,
    version         bigint NOT NULL DEFAULT 1,
    deleted_at      timestamptz
);
CREATE INDEX tasks_assignee_due ON tasks (assignee_id, due_at) WHERE deleted_at IS NULL AND done_at IS NULL;
CREATE INDEX tasks_customer_due ON tasks (customer_id, due_at) WHERE deleted_at IS NULL AND done_at IS NULL;
CREATE INDEX tasks_due ON tasks (due_at, id);
CREATE INDEX tasks_title_trgm ON tasks USING gin (title gin_trgm_ops);
CREATE INDEX tasks_tags ON tasks USING gin (tags);

-- One iCalendar feed token per user (hashed; a new one replaces the old).
CREATE TABLE calendar_tokens (
    user_id     uuid PRIMARY KEY REFERENCES users (id),
    token_hash  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE activities OWNER TO {{tenant_role}};
ALTER TABLE tasks OWNER TO {{tenant_role}};
ALTER TABLE calendar_tokens OWNER TO {{tenant_role}};
