-- Tenant schema v2: customers and contacts on the record engine, custom field metadata,
-- change history, outbox, tags and idempotency keys. Custom fields become real columns
-- `cf_<key>` added by the engine (ALTER TABLE) in the same transaction as their metadata.

ALTER TABLE settings ADD COLUMN metadata_version bigint NOT NULL DEFAULT 1;
-- The tenant's data key, wrapped by the server master key (created on first use).
ALTER TABLE settings ADD COLUMN data_key bytea;

CREATE TABLE field_defs (
    object        text NOT NULL,
    key           text NOT NULL,
    label         text NOT NULL,
    labels        jsonb NOT NULL DEFAULT '{}',
    type          text NOT NULL,
    required      boolean NOT NULL DEFAULT false,
    is_unique     boolean NOT NULL DEFAULT false,
    indexed       boolean NOT NULL DEFAULT false,
    default_value jsonb,
    options       jsonb NOT NULL DEFAULT '[]',
    option_labels jsonb NOT NULL DEFAULT '{}',
    target        text,
    sensitive     boolean NOT NULL DEFAULT false,
    encrypted     boolean NOT NULL DEFAULT false,
    position      integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (object, key)
);

CREATE TABLE customers (
    id           uuid PRIMARY KEY,
    name         text NOT NULL,
    kind         text NOT NULL DEFAULT 'company' CHECK (kind IN ('person', 'company')),
    phone        text,
    email        text,
    address      jsonb NOT NULL DEFAULT '{}',
    region       text,
    industry     text,
    source       text,
    level        text CHECK (level IN ('A', 'B', 'C', 'D')),
    stage        text NOT NULL DEFAULT 'lead' CHECK (stage IN ('lead', 'prospect', 'customer', 'churned')),
    owner_id     uuid REFERENCES users (id),
    tags         text[] NOT NULL DEFAULT '{}',
    name_grams   text[] NOT NULL DEFAULT '{}',
    merged_into  uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    created_by   uuid,
    version      bigint NOT NULL DEFAULT 1,
    deleted_at   timestamptz
);
CREATE INDEX customers_name_trgm ON customers USING gin (name gin_trgm_ops);
CREATE INDEX customers_phone_trgm ON customers USING gin (phone gin_trgm_ops);
CREATE INDEX customers_email_trgm ON customers USING gin (email gin_trgm_ops);
CREATE INDEX customers_name_grams ON customers USING gin (name_grams);
CREATE INDEX customers_tags ON customers USING gin (tags);
CREATE INDEX customers_phone ON customers (phone) WHERE deleted_at IS NULL;
CREATE INDEX customers_email ON customers (email) WHERE deleted_at IS NULL;
CREATE INDEX customers_owner ON customers (owner_id, id);
CREATE INDEX customers_updated ON customers (updated_at, id);

CREATE TABLE contacts (
    id           uuid PRIMARY KEY,
    customer_id  uuid NOT NULL REFERENCES customers (id),
    name         text NOT NULL,
    title        text,
    phone        text,
    email        text,
    is_primary   boolean NOT NULL DEFAULT false,
    owner_id     uuid REFERENCES users (id),
    tags         text[] NOT NULL DEFAULT '{}',
    name_grams   text[] NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    created_by   uuid,
    version      bigint NOT NULL DEFAULT 1,
    deleted_at   timestamptz
);
CREATE INDEX contacts_customer ON contacts (customer_id, id);
CREATE INDEX contacts_name_trgm ON contacts USING gin (name gin_trgm_ops);
CREATE INDEX contacts_phone_trgm ON contacts USING gin (phone gin_trgm_ops);
CREATE INDEX contacts_email_trgm ON contacts USING gin (email gin_trgm_ops);
CREATE INDEX contacts_name_grams ON contacts USING gin (name_grams);
CREATE INDEX contacts_tags ON contacts USING gin (tags);

-- Append-only change log, written by the engine in the same transaction as the change.
CREATE TABLE record_history (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    object      text NOT NULL,
    record_id   uuid NOT NULL,
    action      text NOT NULL,
    actor_kind  text NOT NULL,
    actor_id    uuid,
    at          timestamptz NOT NULL DEFAULT now(),
    request_id  text,
    changes     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX record_history_record ON record_history (object, record_id, id);

-- Events for workflows and plugins, written in the same transaction as the change.
CREATE TABLE outbox (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event         text NOT NULL,
    object        text NOT NULL,
    record_id     uuid NOT NULL,
    payload       jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    dispatched_at timestamptz
);
CREATE INDEX outbox_pending ON outbox (id) WHERE dispatched_at IS NULL;

CREATE TABLE tags (
    name       text PRIMARY KEY,
    color      text,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Responses of POSTs sent with an Idempotency-Key, replayed for 24 hours.
CREATE TABLE idempotency_keys (
    principal  text NOT NULL,
    key        text NOT NULL,
    request    text NOT NULL,
    status     integer,
    body       jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key)
);

ALTER TABLE field_defs OWNER TO {{tenant_role}};
ALTER TABLE customers OWNER TO {{tenant_role}};
ALTER TABLE contacts OWNER TO {{tenant_role}};
ALTER TABLE record_history OWNER TO {{tenant_role}};
ALTER TABLE outbox OWNER TO {{tenant_role}};
ALTER TABLE tags OWNER TO {{tenant_role}};
ALTER TABLE idempotency_keys OWNER TO {{tenant_role}};
