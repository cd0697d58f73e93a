//! Counters of the mail policy for `/metrics`: messages enqueued, messages refused by reason,
//! and quota refusals by company — only companies that hit their quota appear, at most
//! [`MAX_TENANTS`] of them, so the label's cardinality stays bounded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Companies kept in the per-company quota counter.
pub const MAX_TENANTS: usize = 500;

static ENQUEUED: AtomicU64 = AtomicU64::new(0);
static REFUSED: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());
static QUOTA_BY_TENANT: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

/// What the counters hold now.
#[derive(Debug, Clone, Default)]
pub struct MailStats {
    pub enqueued: u64,
    /// By reason: `unverified_tenant`, `quota_exceeded`, `smtp_host`.
    pub refused: Vec<(&'static str, u64)>,
    /// Quota refusals by tenant slug.
    pub quota_refused_by_tenant: Vec<(String, u64)>,
}

pub(crate) fn enqueued() {
    ENQUEUED.fetch_add(1, Ordering::Relaxed);
}

/// Counts a refused message.
pub fn refused(reason: &'static str) {
    if let Ok(mut map) = REFUSED.lock() {
        *map.entry(reason).or_default() += 1;
    }
}

pub(crate) fn refused_quota(tenant: &str) {
    refused("quota_exceeded");
    if let Ok(mut map) = QUOTA_BY_TENANT.lock() {
        if let Some(n) = map.get_mut(tenant) {
            *n += 1;
        } else if map.len() < MAX_TENANTS {
            map.insert(tenant.to_owned(), 1);
        }
    }
}

/// A snapshot of every counter.
pub fn snapshot() -> MailStats {
    MailStats {
        enqueued: ENQUEUED.load(Ordering::Relaxed),
        refused: REFUSED
            .lock()
            .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default(),
        quota_refused_by_tenant: QUOTA_BY_TENANT
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default(),
    }
}
