//! crm-tenants: the platform side of TC CRM — the tenant registry (`platform.tenants`),
//! self-service provisioning of a tenant's schema and role in one transaction (or claiming one
//! provisioned ahead from the warm sign-up pool), versioned per-tenant migrations run in
//! bounded parallel batches, sign-up, password login (with MFA's second step) and change,
//! cross-tenant login throttling, and per-tenant backups and restores (`backup`).
//!
//! It owns the `platform` schema and the tenant DDL; it reaches tenant data only through
//! crm-core's services inside a [`crm_core::db::TenantTx`].

pub mod backup;
pub mod cache;
pub mod jobs;
pub mod login;
pub mod mfa;
pub mod migrations;
pub mod password;
pub mod pool;
pub mod provision;
pub mod registry;
pub mod signup;
pub mod slug;
pub mod throttle;

pub use provision::{
    deprovision_tenant, provision_tenant, provision_tenant_at, NewAdmin, NewTenant, Provisioned,
};
pub use registry::Tenant;
pub use slug::TenantSlug;
