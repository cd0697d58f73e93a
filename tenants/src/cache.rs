//! The tenant registry cached in the process, so a request does not ask `platform.tenants`
//! who its tenant is. Every change to a tenant row (suspension, resumption, schema upgrade,
//! removal) notifies [`CHANGED_CHANNEL`] from a trigger on `platform.tenants`; each server
//! listens on a connection of its own and evicts the tenant at once, so a suspension takes
//! effect on every server within the notification's delivery. While the listener is not
//! connected (start-up, a lost connection) nothing is served from the cache.
//!
//! A read that raced an eviction must not put the old row back: every eviction bumps a
//! generation, and a row read from the database is cached only if no eviction happened
//! while it was being read.

use crate::registry::{self, Tenant};
use crm_core::{Error, Result};
use lru::LruCache;
use sqlx::PgPool;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// The channel the `platform.tenants` trigger notifies with the changed tenant's id.
pub const CHANGED_CHANNEL: &str = "crm_tenant_changed";

/// Active tenants by id, bounded, kept true by notifications.
pub struct TenantCache {
    pool: PgPool,
    entries: Mutex<LruCache<Uuid, Tenant>>,
    /// Bumped by every eviction.
    generation: AtomicU64,
    /// The listener is connected: cached rows are current.
    live: AtomicBool,
}

impl TenantCache {
    /// A cache of at most `capacity` tenants; [`TenantCache::listen`] makes it serve.
    pub fn new(pool: PgPool, capacity: usize) -> Arc<TenantCache> {
        let capacity = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        Arc::new(TenantCache {
            pool,
            entries: Mutex::new(LruCache::new(capacity)),
            generation: AtomicU64::new(0),
            live: AtomicBool::new(false),
        })
    }

    /// A tenant by id: from the cache while the listener is connected, else from the
    /// registry.
    pub async fn by_id(&self, id: Uuid) -> Result<Option<Tenant>> {
        if self.live.load(Ordering::Acquire) {
            if let Some(hit) = self.lock()?.get(&id) {
                return Ok(Some(hit.clone()));
            }
        }
        let generation = self.generation.load(Ordering::Acquire);
        let found = registry::by_id(&self.pool, id).await?;
        // Only active tenants are cached: a suspended one is read each time, so resuming it
        // takes effect on its very next request.
        if let Some(tenant) = found.as_ref().filter(|t| t.is_active()) {
            let mut entries = self.lock()?;
            // Checked under the lock that evictions take too.
            if self.live.load(Ordering::Acquire)
                && self.generation.load(Ordering::Acquire) == generation
            {
                entries.put(id, tenant.clone());
            }
        }
        Ok(found)
    }

    /// Number of cached tenants (for metrics).
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, LruCache<Uuid, Tenant>>> {
        self.entries
            .lock()
            .map_err(|_| Error::internal("tenant cache lock poisoned"))
    }

    /// Forgets one tenant, or (`None`) every tenant.
    fn evict(&self, id: Option<Uuid>) {
        if let Ok(mut entries) = self.entries.lock() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            match id {
                Some(id) => {
                    entries.pop(&id);
                }
                None => entries.clear(),
            }
        }
    }

    /// Listens for changes until the process ends, reconnecting after a lost connection;
    /// the cache serves only while connected.
    pub async fn listen(self: Arc<Self>) {
        loop {
            if let Err(e) = self.listen_once().await {
                tracing::warn!(error = %e, "tenant change listener lost its connection; reading the registry meanwhile");
            }
            self.live.store(false, Ordering::Release);
            self.evict(None);
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }

    async fn listen_once(&self) -> std::result::Result<(), sqlx::Error> {
        let mut listener = crm_core::db::listen(&self.pool, CHANGED_CHANNEL).await?;
        // Anything cached before this point may have missed a notification.
        self.evict(None);
        self.live.store(true, Ordering::Release);
        loop {
            let note = listener.try_recv().await?;
            match note {
                Some(n) => self.evict(Uuid::parse_str(n.payload()).ok()),
                // The connection dropped and was re-established: notifications may be lost.
                None => self.evict(None),
            }
        }
    }
}
