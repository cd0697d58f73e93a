-- Wake the workers on commit: a job due now (or within the second) sends a notification on
-- `crm_jobs` when its transaction commits (PostgreSQL delivers NOTIFY at commit, folds
-- identical ones of one transaction into one, and drops them on rollback). Workers LISTEN and
-- look for due tenants at once instead of at their next poll; the poll stays as the fallback.
CREATE OR REPLACE FUNCTION platform_api.wake_jobs(p_tenant uuid, p_at timestamptz) RETURNS void
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
    IF p_at <= clock_timestamp() + interval '1 second' THEN
        PERFORM pg_notify('crm_jobs', '');
    END IF;
END $$;
