//! The context every service call carries: which tenant, who, and which request.

use crate::db::TenantCtx;
use crate::identity::Principal;
use serde::Serialize;

/// An authenticated request inside one tenant.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    pub tenant: TenantCtx,
    pub principal: Principal,
    pub meta: RequestMeta,
}

/// Facts about the HTTP request, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub request_id: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A page of results with an opaque cursor for the next one.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Largest page any list returns.
pub const MAX_PAGE: i64 = 200;

/// Clamps a requested page size to 1..=MAX_PAGE (default 50).
pub fn page_size(requested: Option<i64>) -> i64 {
    requested.unwrap_or(50).clamp(1, MAX_PAGE)
}
