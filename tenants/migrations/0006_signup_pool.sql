-- The sign-up pool (crm_tenants::pool): tenant schemas provisioned ahead of sign-up, each with
-- its NOLOGIN role, every table at `schema_version` and the default roles (casbin domain = the
-- entry's id), but no registry row and no user. Without a `platform.tenants` row no credential
-- can name it; sign-up claims an entry (FOR UPDATE SKIP LOCKED), deletes its row here and
-- inserts the registry row with the same id in one transaction.
CREATE TABLE platform.tenant_pool (
    id             uuid PRIMARY KEY,
    schema_version integer NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenant_pool_claim_idx ON platform.tenant_pool (schema_version, created_at);

-- Each claim tells the servers' refill tasks on `crm_signup_pool` when it commits. A trigger,
-- like 0005's, so an entry removed by hand is replaced too.
CREATE FUNCTION platform.notify_signup_pool() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('crm_signup_pool', '');
    RETURN NULL;
END $$;

CREATE TRIGGER tenant_pool_taken AFTER DELETE ON platform.tenant_pool
    FOR EACH STATEMENT EXECUTE FUNCTION platform.notify_signup_pool();
