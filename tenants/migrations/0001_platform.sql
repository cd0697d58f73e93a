-- Platform schema: the tenant registry and cross-tenant login throttling. Tenant data never
-- lives here. Run with search_path = platform (see crm_tenants::migrations).

CREATE TABLE platform.tenants (
    id             uuid PRIMARY KEY,
    slug           text NOT NULL UNIQUE,
    name           text NOT NULL,
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    plan           text NOT NULL DEFAULT 'standard',
    schema_name    text NOT NULL UNIQUE,
    schema_version integer NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Failed-login counters keyed by a hash of (tenant, e-mail) or of the client IP.
CREATE TABLE platform.login_throttle (
    key          text PRIMARY KEY,
    failures     integer NOT NULL DEFAULT 0,
    locked_until timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
