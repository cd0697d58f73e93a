-- Version 19: exports. An export too large to answer at once runs as a job (`export.file`);
-- its row says who asked (only they may see or download it), what they asked for, how it
-- ended, and where its file is in the file store until it expires.
CREATE TABLE exports (
    id                  uuid PRIMARY KEY,
    object              text NOT NULL,
    format              text NOT NULL,
    requested_by_kind   text NOT NULL,
    requested_by        uuid NOT NULL,
    request             jsonb NOT NULL,
    status              text NOT NULL DEFAULT 'queued',
    job_id              bigint,
    row_count           bigint,
    file_key            text,
    file_bytes          bigint,
    error               text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,
    expires_at          timestamptz
);
ALTER TABLE exports OWNER TO {{tenant_role}};
CREATE INDEX exports_requested_by ON exports (requested_by, created_at DESC);
