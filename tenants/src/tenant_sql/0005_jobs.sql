-- Tenant schema v5: durable jobs (reminders, mail, later SLA timers and workflow steps) and
-- in-app notifications.

CREATE TABLE jobs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL,
    -- At most one job per key ever: enqueueing the same key again is a no-op (or a reschedule
    -- while it is still pending), so a retried request never doubles a job.
    dedupe_key   text UNIQUE,
    -- The record the job is about, to cancel or reschedule it when the record changes.
    subject_id   uuid,
    payload      jsonb NOT NULL DEFAULT '{}',
    run_at       timestamptz NOT NULL DEFAULT now(),
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'running', 'done', 'dead', 'cancelled')),
    attempts     integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 8,
    -- Set while running: who holds it and until when (after that another worker may take it).
    claim_token  uuid,
    locked_until timestamptz,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX jobs_pending ON jobs (run_at) WHERE status = 'pending';
CREATE INDEX jobs_running ON jobs (locked_until) WHERE status = 'running';
CREATE INDEX jobs_subject ON jobs (subject_id, kind) WHERE subject_id IS NOT NULL;
CREATE INDEX jobs_status ON jobs (status, id);

CREATE TABLE notifications (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id),
    kind        text NOT NULL,
    title       text NOT NULL,
    body        text,
    object      text,
    record_id   uuid,
    -- The job that produced it: a job re-run after a crash cannot notify twice.
    job_id      bigint UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    read_at     timestamptz
);
CREATE INDEX notifications_user ON notifications (user_id, id);
CREATE INDEX notifications_unread ON notifications (user_id) WHERE read_at IS NULL;

ALTER TABLE jobs OWNER TO {{tenant_role}};
ALTER TABLE notifications OWNER TO {{tenant_role}};
