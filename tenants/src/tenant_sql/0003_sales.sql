-- Tenant schema v3: sales pipelines and opportunities (on the record engine).

CREATE TABLE pipelines (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CONSTRAINT pipelines_name_key UNIQUE,
    -- Ordered open stages: [{"key": "qualified", "name": "需求确认", "probability": 30}, …].
    -- The terminal stages "won" and "lost" exist in every pipeline.
    stages      jsonb NOT NULL,
    position    integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO pipelines (id, name, stages, position) VALUES (
    gen_random_uuid(), '销售流程 Sales',
    '[{"key": "lead", "name": "线索 Lead", "probability": 10},
      {"key": "qualified", "name": "需求确认 Qualified", "probability": 30},
      {"key": "proposal", "name": "方案报价 Proposal", "probability": 60},
      {"key": "negotiation", "name": "商务谈判 Negotiation", "probability": 80}]',
    0);

CREATE TABLE opportunities (
    id              uuid PRIMARY KEY,
    name            text NOT NULL,
    customer_id     uuid NOT NULL REFERENCES customers (id),
    contact_id      uuid REFERENCES contacts (id),
    pipeline_id     uuid NOT NULL REFERENCES pipelines (id),
    stage           text NOT NULL,
    amount          numeric(20,4),
    currency        text NOT NULL DEFAULT 'CNY',
    discount_pct    numeric,
    expected_close  date,
    probability     bigint,
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'won', 'lost')),
    lost_reason     text,
    owner_id        uuid REFERENCES users (id),
    tags            text[] NOT NULL DEFAULT '{}',
    name_grams      text[] NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid,
    version         bigint NOT NULL DEFAULT 1,
    deleted_at      timestamptz
);
CREATE INDEX opportunities_pipeline_stage ON opportunities (pipeline_id, stage) WHERE deleted_at IS NULL;
CREATE INDEX opportunities_customer ON opportunities (customer_id);
CREATE INDEX opportunities_owner ON opportunities (owner_id, id);
CREATE INDEX opportunities_name_trgm ON opportunities USING gin (name gin_trgm_ops);
CREATE INDEX opportunities_name_grams ON opportunities USING gin (name_grams);
CREATE INDEX opportunities_tags ON opportunities USING gin (tags);
CREATE INDEX opportunities_expected_close ON opportunities (expected_close, id);

ALTER TABLE pipelines OWNER TO {{tenant_role}};
ALTER TABLE opportunities OWNER TO {{tenant_role}};
