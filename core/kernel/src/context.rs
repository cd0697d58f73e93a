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
    /// How many workflow rules deep this change is (0: a person or the system made it). Events
    /// of changes made by rules carry it, and rules stop firing past a bound, so two rules
    /// that update each other's triggers cannot loop forever.
    pub rule_depth: u8,
    /// The import writing these records, if an import is: its events say so (`import_id`),
    /// and rules whose trigger says `"imports": false` let them pass.
    pub import_id: Option<uuid::Uuid>,
}

/// A page of results with an opaque cursor for the next one.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Reads a cursor this API handed out earlier (400 `request.invalid_cursor` otherwise).
pub fn parse_cursor<T: std::str::FromStr>(raw: Option<&str>) -> crate::Result<Option<T>> {
    raw.map(|c| {
        c.parse().map_err(|_| {
            crate::Error::bad_request(
                "request.invalid_cursor",
                "cursor is not one this API returned; start again without it",
            )
        })
    })
    .transpose()
}

/// Cuts a result fetched with `limit + 1` rows down to `limit`, returning the cursor of the
/// last kept row when more remain.
pub fn cut_page<T, C: ToString>(
    rows: &mut Vec<T>,
    limit: i64,
    cursor_of: impl Fn(&T) -> C,
) -> Option<String> {
    if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| cursor_of(r).to_string())
    } else {
        None
    }
}

/// Largest page any list returns.
pub const MAX_PAGE: i64 = 200;

/// Clamps a requested page size to 1..=MAX_PAGE (default 50).
pub fn page_size(requested: Option<i64>) -> i64 {
    requested.unwrap_or(50).clamp(1, MAX_PAGE)
}
