-- Version 18: per-tenant backups. `backups` is the register of this tenant's archives (the
-- archives themselves are in the file store) with the one-time confirmation of a restore;
-- `backup_schedule` says when scheduled backups run and how many are kept. Neither table is
-- part of an archive, and a restore into this tenant keeps both as they are.
CREATE TABLE backups (
    id                       uuid PRIMARY KEY,
    status                   text NOT NULL DEFAULT 'queued'
                             CHECK (status IN ('queued', 'running', 'done', 'failed')),
    trigger                  text NOT NULL CHECK (trigger IN ('manual', 'scheduled')),
    storage_key              text UNIQUE,
    size_bytes               bigint,
    sha256                   text,
    schema_version           integer,
    -- The manifest's summary: format version, row counts per table, files.
    summary                  jsonb NOT NULL DEFAULT '{}',
    error                    text,
    created_by               uuid,
    created_at               timestamptz NOT NULL DEFAULT now(),
    finished_at              timestamptz,
    restore_token_hash       text,
    restore_token_by         uuid,
    restore_token_expires_at timestamptz
);
CREATE INDEX backups_created ON backups (created_at DESC, id);
ALTER TABLE backups OWNER TO {{tenant_role}};

CREATE TABLE backup_schedule (
    only_row    boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    enabled     boolean NOT NULL DEFAULT false,
    time_of_day time NOT NULL DEFAULT '02:00',
    timezone    text NOT NULL DEFAULT 'UTC',
    keep_daily  integer NOT NULL DEFAULT 7 CHECK (keep_daily BETWEEN 1 AND 366),
    keep_weekly integer NOT NULL DEFAULT 4 CHECK (keep_weekly BETWEEN 0 AND 520),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO backup_schedule DEFAULT VALUES;
ALTER TABLE backup_schedule OWNER TO {{tenant_role}};

-- `backups:manage` goes to every role that may change the company's settings.
INSERT INTO casbin_rule (ptype, v0, v1, v2, v3)
SELECT 'p', v0, v1, 'backups', 'manage' FROM casbin_rule
WHERE ptype = 'p' AND v2 = 'tenant' AND v3 = 'manage'
ON CONFLICT DO NOTHING;
UPDATE settings SET policy_version = policy_version + 1;
