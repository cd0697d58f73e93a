-- Version 17: imports. An import brings one uploaded file (CSV or Excel) into one object,
-- as durable job chunks that commit their rows together with the import's progress
-- (`next_offset` into the normalised UTF-8 CSV stored beside the original). `import_rows`
-- says what each written row did, for undo; `import_errors` holds every refused or skipped
-- row with its reason and the original cells, for the error report.
CREATE TABLE imports (
    id            uuid PRIMARY KEY,
    object        text NOT NULL,
    status        text NOT NULL,
    options       jsonb NOT NULL,
    file_name     text NOT NULL,
    format        text NOT NULL,
    encoding      text NOT NULL,
    separator     text,
    headers       text[] NOT NULL,
    original_key  text NOT NULL,
    data_key      text NOT NULL,
    data_bytes    bigint NOT NULL,
    total         bigint NOT NULL,
    next_offset   bigint NOT NULL,
    next_row      bigint NOT NULL DEFAULT 1,
    created       bigint NOT NULL DEFAULT 0,
    updated       bigint NOT NULL DEFAULT 0,
    skipped       bigint NOT NULL DEFAULT 0,
    failed        bigint NOT NULL DEFAULT 0,
    busy_ms       bigint NOT NULL DEFAULT 0,
    error         text,
    undo          jsonb,
    undo_next_row bigint,
    created_by    uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    files_expire_at timestamptz NOT NULL
);
ALTER TABLE imports OWNER TO {{tenant_role}};

CREATE TABLE import_rows (
    import_id  uuid NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    row_no     bigint NOT NULL,
    record_id  uuid NOT NULL,
    action     text NOT NULL,
    -- The record's version right after the import wrote it.
    version    bigint NOT NULL,
    -- Updates: {field path: {"before": …, "after": …}} of what the import changed.
    changes    jsonb,
    PRIMARY KEY (import_id, row_no)
);
ALTER TABLE import_rows OWNER TO {{tenant_role}};

CREATE TABLE import_errors (
    import_id  uuid NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    row_no     bigint NOT NULL,
    seq        integer NOT NULL,
    -- failed | skipped | undo
    kind       text NOT NULL,
    column_name text,
    field      text,
    value      text,
    code       text NOT NULL,
    message    text NOT NULL,
    -- The row's cells as read (first error of a row only).
    cells      text[],
    PRIMARY KEY (import_id, row_no, kind, seq)
);
ALTER TABLE import_errors OWNER TO {{tenant_role}};
