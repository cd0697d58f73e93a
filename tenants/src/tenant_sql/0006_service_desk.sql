-- Tenant schema v6: the service desk. Tickets on the record engine, their status machine,
-- business-hours calendars and SLA policies, conversation, attachments, team assignment, the
-- customer portal and satisfaction surveys.

-- Team assignment: manual, or automatic among available members.
ALTER TABLE teams ADD COLUMN assignment text NOT NULL DEFAULT 'manual'
    CHECK (assignment IN ('manual', 'round_robin', 'least_open'));
ALTER TABLE teams ADD COLUMN last_assigned_user uuid REFERENCES users (id);
ALTER TABLE users ADD COLUMN available boolean NOT NULL DEFAULT true;

-- The status machine: one document (states, initial state, transitions, ticket types).
CREATE TABLE ticket_workflow (
    only_row   boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    spec       jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO ticket_workflow (spec) VALUES ('{
  "initial": "new",
  "states": [
    {"key": "new",      "name": "新建",   "labels": {"en": "New"},      "sla": "counting", "category": "open"},
    {"key": "open",     "name": "处理中", "labels": {"en": "Open"},     "sla": "counting", "category": "open"},
    {"key": "pending",  "name": "待回复", "labels": {"en": "Pending"},  "sla": "paused",   "category": "open"},
    {"key": "resolved", "name": "已解决", "labels": {"en": "Resolved"}, "sla": "paused",   "category": "resolved"},
    {"key": "closed",   "name": "已关闭", "labels": {"en": "Closed"},   "sla": "paused",   "category": "closed"}
  ],
  "transitions": {
    "new":      ["open", "pending", "resolved", "closed"],
    "open":     ["pending", "resolved", "closed"],
    "pending":  ["open", "resolved", "closed"],
    "resolved": ["open", "closed"],
    "closed":   []
  },
  "types": ["consultation", "complaint", "service_request", "after_sales"]
}');

CREATE TABLE business_calendars (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CONSTRAINT business_calendars_name_key UNIQUE,
    spec        jsonb NOT NULL,
    is_default  boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX business_calendars_one_default ON business_calendars (is_default) WHERE is_default;
INSERT INTO business_calendars (id, name, spec, is_default) VALUES (gen_random_uuid(), '工作时间 Office hours', '{
  "timezone": "Asia/Shanghai",
  "hours": {"mon": [{"start": "09:00", "end": "18:00"}], "tue": [{"start": "09:00", "end": "18:00"}],
            "wed": [{"start": "09:00", "end": "18:00"}], "thu": [{"start": "09:00", "end": "18:00"}],
            "fri": [{"start": "09:00", "end": "18:00"}]},
  "holidays": [], "workdays": []
}', true);

CREATE TABLE sla_policies (
    id                     uuid PRIMARY KEY,
    name                   text NOT NULL,
    -- Lower first: the first enabled policy whose conditions all match applies.
    position               integer NOT NULL,
    priorities             text[] NOT NULL DEFAULT '{}',
    types                  text[] NOT NULL DEFAULT '{}',
    customer_levels        text[] NOT NULL DEFAULT '{}',
    first_response_minutes integer CHECK (first_response_minutes > 0),
    resolution_minutes     integer CHECK (resolution_minutes > 0),
    calendar_id            uuid NOT NULL REFERENCES business_calendars (id),
    enabled                boolean NOT NULL DEFAULT true,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
INSERT INTO sla_policies (id, name, position, priorities, first_response_minutes, resolution_minutes, calendar_id)
SELECT gen_random_uuid(), p.name, p.position, ARRAY[p.priority], p.fr, p.res, c.id
FROM business_calendars c, (VALUES
    ('紧急 Urgent', 10, 'urgent', 30, 240),
    ('高 High', 20, 'high', 60, 480),
    ('普通 Normal', 30, 'normal', 240, 1440),
    ('低 Low', 40, 'low', 480, 2400)) AS p (name, position, priority, fr, res)
WHERE c.is_default;

CREATE SEQUENCE ticket_numbers;

CREATE TABLE tickets (
    id                     uuid PRIMARY KEY,
    number                 text NOT NULL UNIQUE
                           DEFAULT ('T-' || lpad(nextval('ticket_numbers')::text, 6, '0')),
    subject                text NOT NULL,
    description            text,
    customer_id            uuid REFERENCES customers (id),
    contact_id             uuid REFERENCES contacts (id),
    channel                text CHECK (channel IN ('phone', 'email', 'web', 'portal', 'api')),
    type                   text,
    priority               text NOT NULL DEFAULT 'normal'
                           CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    status                 text NOT NULL,
    assignee_id            uuid REFERENCES users (id),
    team_id                uuid REFERENCES teams (id),
    tags                   text[] NOT NULL DEFAULT '{}',
    -- SLA, maintained by the service desk (read-only for clients).
    sla_policy_id          uuid REFERENCES sla_policies (id) ON DELETE SET NULL,
    first_response_due_at  timestamptz,
    resolution_due_at      timestamptz,
    first_responded_at     timestamptz,
    resolved_at            timestamptz,
    closed_at              timestamptz,
    -- Set while the ticket is in a state that pauses SLA time.
    sla_paused_at          timestamptz,
    -- Business seconds spent paused so far; net business times subtract it.
    paused_seconds         bigint NOT NULL DEFAULT 0,
    first_response_seconds bigint,
    resolution_seconds     bigint,
    -- Each SLA event is emitted once per target: these say it was.
    first_response_warned_at   timestamptz,
    first_response_breached_at timestamptz,
    resolution_warned_at       timestamptz,
    resolution_breached_at     timestamptz,
    status_changed_at      timestamptz NOT NULL DEFAULT now(),
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    created_by             uuid,
    version                bigint NOT NULL DEFAULT 1,
    deleted_at             timestamptz
);
CREATE INDEX tickets_status ON tickets (status, id) WHERE deleted_at IS NULL;
CREATE INDEX tickets_assignee ON tickets (assignee_id, id);
CREATE INDEX tickets_team ON tickets (team_id, id);
CREATE INDEX tickets_customer ON tickets (customer_id, created_at);
CREATE INDEX tickets_contact ON tickets (contact_id, created_at);
CREATE INDEX tickets_created ON tickets (created_at, id);
CREATE INDEX tickets_subject_trgm ON tickets USING gin (subject gin_trgm_ops);
CREATE INDEX tickets_tags ON tickets USING gin (tags);

CREATE TABLE ticket_comments (
    id          uuid PRIMARY KEY,
    ticket_id   uuid NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    body        text NOT NULL,
    public      boolean NOT NULL,
    -- `user` (staff), `contact` (through the portal) or `system`.
    author_kind text NOT NULL CHECK (author_kind IN ('user', 'contact', 'system')),
    author_id   uuid,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ticket_comments_ticket ON ticket_comments (ticket_id, created_at, id);

CREATE TABLE ticket_attachments (
    id           uuid PRIMARY KEY,
    ticket_id    uuid NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    comment_id   uuid REFERENCES ticket_comments (id) ON DELETE CASCADE,
    file_name    text NOT NULL,
    content_type text NOT NULL,
    size_bytes   bigint NOT NULL,
    sha256       text NOT NULL,
    storage_key  text NOT NULL UNIQUE,
    uploaded_by_kind text NOT NULL CHECK (uploaded_by_kind IN ('user', 'contact')),
    uploaded_by  uuid,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ticket_attachments_ticket ON ticket_attachments (ticket_id, created_at);

-- Customer portal: single-use sign-in links and sessions of contacts (never staff users).
CREATE TABLE portal_links (
    token_hash  text PRIMARY KEY,
    contact_id  uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE portal_sessions (
    token_hash   text PRIMARY KEY,
    contact_id   uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    customer_id  uuid NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX portal_sessions_contact ON portal_sessions (contact_id);

-- Satisfaction surveys: one per ticket, answered once.
CREATE TABLE csat_surveys (
    ticket_id   uuid PRIMARY KEY REFERENCES tickets (id) ON DELETE CASCADE,
    contact_id  uuid REFERENCES contacts (id) ON DELETE SET NULL,
    token_hash  text NOT NULL UNIQUE,
    sent_at     timestamptz NOT NULL DEFAULT now(),
    rating      smallint CHECK (rating BETWEEN 1 AND 5),
    comment     text,
    rated_at    timestamptz
);

-- Per-tenant mail settings (override the server's): the SMTP URL is encrypted with the
-- tenant's data key.
ALTER TABLE settings ADD COLUMN mail_from text;
ALTER TABLE settings ADD COLUMN mail_smtp_url bytea;

ALTER TABLE ticket_workflow OWNER TO {{tenant_role}};
ALTER TABLE business_calendars OWNER TO {{tenant_role}};
ALTER TABLE sla_policies OWNER TO {{tenant_role}};
ALTER SEQUENCE ticket_numbers OWNER TO {{tenant_role}};
ALTER TABLE tickets OWNER TO {{tenant_role}};
ALTER TABLE ticket_comments OWNER TO {{tenant_role}};
ALTER TABLE ticket_attachments OWNER TO {{tenant_role}};
ALTER TABLE portal_links OWNER TO {{tenant_role}};
ALTER TABLE portal_sessions OWNER TO {{tenant_role}};
ALTER TABLE csat_surveys OWNER TO {{tenant_role}};
