-- Servers cache the registry (crm_tenants::cache): every change to a tenant row tells them,
-- with the tenant's id, on `crm_tenant_changed` when it commits. A trigger rather than the
-- application's own NOTIFY, so an operator's UPDATE by hand is heard too.
CREATE FUNCTION platform.notify_tenant_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('crm_tenant_changed', OLD.id::text);
    RETURN NULL;
END $$;

CREATE TRIGGER tenants_changed AFTER UPDATE OR DELETE ON platform.tenants
    FOR EACH ROW EXECUTE FUNCTION platform.notify_tenant_changed();
