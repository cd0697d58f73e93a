-- Version 15: custom objects. The catalogue of a tenant's own objects; each one's records
-- live in a table `o_<key>` the record engine creates (owned by the tenant role, like every
-- table here) when the object is created. `objects:manage` goes to every role that may
-- define fields, so existing administrators can define objects at once.
CREATE TABLE object_defs (
    key          text PRIMARY KEY,
    name         text NOT NULL,
    name_plural  text NOT NULL,
    labels       jsonb NOT NULL DEFAULT '{}',
    icon         text,
    description  text,
    created_by   uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE object_defs OWNER TO {{tenant_role}};

-- A relation field says what deleting the record it points to does to the records that
-- point (restrict, set_null, cascade; NULL on fields made before: the foreign key alone).
-- A roll-up field keeps an aggregate of related records (its definition).
-- `searchable` says whether `q` searches a field (NULL: by its type, text fields yes).
ALTER TABLE field_defs ADD COLUMN on_delete text, ADD COLUMN rollup jsonb, ADD COLUMN searchable boolean;

INSERT INTO casbin_rule (ptype, v0, v1, v2, v3)
SELECT 'p', v0, v1, 'objects', 'manage' FROM casbin_rule
WHERE ptype = 'p' AND v2 = 'fields' AND v3 = 'manage'
ON CONFLICT DO NOTHING;
UPDATE settings SET policy_version = policy_version + 1;

-- Record types (per object: which fields a kind of record shows, requires and defaults) and
-- the column every record table keeps its type in; a role may be limited to some types of an
-- object (`{object: [type keys]}`; an object not named: every type).
CREATE TABLE record_types (
    object       text NOT NULL,
    key          text NOT NULL,
    name         text NOT NULL,
    labels       jsonb NOT NULL DEFAULT '{}',
    description  text,
    fields       jsonb NOT NULL DEFAULT '[]',
    required     jsonb NOT NULL DEFAULT '[]',
    defaults     jsonb NOT NULL DEFAULT '{}',
    position     integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (object, key)
);
ALTER TABLE record_types OWNER TO {{tenant_role}};
ALTER TABLE customers ADD COLUMN record_type text;
ALTER TABLE contacts ADD COLUMN record_type text;
ALTER TABLE opportunities ADD COLUMN record_type text;
ALTER TABLE activities ADD COLUMN record_type text;
ALTER TABLE tasks ADD COLUMN record_type text;
ALTER TABLE tickets ADD COLUMN record_type text;
ALTER TABLE roles ADD COLUMN record_types jsonb NOT NULL DEFAULT '{}';
