//! crm-core: TC CRM's domain types and the services every interface shares — the tenant
//! transaction (the only way to reach tenant data), identity (passwords, sessions, API keys),
//! authorization (casbin, per-tenant enforcers), users, roles, teams and the audit log.
//!
//! It knows nothing of HTTP, GraphQL or the platform registry: callers hand it a [`db::Db`]
//! and a [`db::TenantCtx`]; errors are [`error::Error`] with stable codes that the edge maps.

pub mod audit;
pub mod authz;
pub mod business_hours;
pub mod context;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod error;
pub mod files;
pub mod identity;
pub mod jobs;
pub mod keys;
pub mod mail;
pub mod mfa;
pub mod notifications;
pub mod objects;
pub mod outbound;
pub mod password_policy;
pub mod read_limit;
pub mod roles;
pub mod security;
pub mod staff;
pub mod teams;
pub mod users;

pub use error::{Error, FieldError, Result};
