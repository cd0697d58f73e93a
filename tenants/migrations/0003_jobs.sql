-- Durable jobs: the jobs themselves live in each tenant's schema (written in the same
-- transaction as the change that causes them); here is only one row per tenant saying when
-- its earliest job is due, so the worker finds due tenants without visiting every schema.

CREATE TABLE platform.job_hints (
    tenant_id    uuid PRIMARY KEY REFERENCES platform.tenants (id) ON DELETE CASCADE,
    -- Earliest pending run time (or lease expiry of a running job); NULL = nothing to do.
    next_run_at  timestamptz,
    -- A worker is visiting the tenant until then.
    leased_until timestamptz
);
CREATE INDEX job_hints_due ON platform.job_hints (next_run_at) WHERE next_run_at IS NOT NULL;

-- Tenant transactions run as the tenant's role, which has no privileges in `platform`. This
-- one function (SECURITY DEFINER, owned by the application role) lets them lower their own
-- tenant's hint and nothing else: the caller's SET ROLE must name that tenant.
CREATE SCHEMA platform_api;
GRANT USAGE ON SCHEMA platform_api TO PUBLIC;

CREATE FUNCTION platform_api.wake_jobs(p_tenant uuid, p_at timestamptz) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = platform, pg_temp AS $$
DECLARE
    caller text := current_setting('role');
BEGIN
    IF caller <> 'none' AND caller <> 't_' || replace(p_tenant::text, '-', '') THEN
        RAISE EXCEPTION 'a tenant may only wake its own jobs' USING ERRCODE = '42501';
    END IF;
    INSERT INTO platform.job_hints AS h (tenant_id, next_run_at) VALUES (p_tenant, p_at)
    ON CONFLICT (tenant_id) DO UPDATE
        SET next_run_at = LEAST(h.next_run_at, EXCLUDED.next_run_at);
END $$;

-- Called by the worker after visiting a tenant: recomputes the hint from the tenant's jobs
-- under the hint row's lock. A transaction that enqueues a job meanwhile lowers the hint
-- after this (it waits for the lock), so a new job is never hidden behind a later hint.
CREATE FUNCTION platform_api.settle_jobs(p_tenant uuid) RETURNS timestamptz
LANGUAGE plpgsql SECURITY DEFINER SET search_path = platform, pg_temp AS $$
DECLARE
    caller text := current_setting('role');
    tenant_schema text;
    next_at timestamptz;
BEGIN
    IF caller <> 'none' AND caller <> 't_' || replace(p_tenant::text, '-', '') THEN
        RAISE EXCEPTION 'a tenant may only settle its own jobs' USING ERRCODE = '42501';
    END IF;
    SELECT schema_name INTO tenant_schema FROM platform.tenants WHERE id = p_tenant;
    IF tenant_schema IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM platform.job_hints WHERE tenant_id = p_tenant FOR UPDATE;
    EXECUTE format(
        'SELECT LEAST((SELECT min(run_at) FROM %1$I.jobs WHERE status = ''pending''), '
        '(SELECT min(locked_until) FROM %1$I.jobs WHERE status = ''running''))',
        tenant_schema) INTO next_at;
    INSERT INTO platform.job_hints AS h (tenant_id, next_run_at) VALUES (p_tenant, next_at)
    ON CONFLICT (tenant_id) DO UPDATE SET next_run_at = EXCLUDED.next_run_at, leased_until = NULL;
    RETURN next_at;
END $$;
